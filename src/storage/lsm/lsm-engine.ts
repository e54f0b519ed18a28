/**
 * The `lsm` engine: impulse's own log-structured merge tree.
 *
 * How to use: `new LsmEngine({ dataDir, sync, vfs?, ...tuning })`, then the
 * `Engine` API (open, get, put, del, batch, range, stats, close). Tests call
 * `checkLevels()` for the engine's structural invariants.
 *
 * Write path: `_write` (one call per group commit, see engine.ts) appends ONE
 * WAL record (and with sync one fdatasync), then applies the ops to the active
 * memtable. When the memtable passes its byte budget it becomes immutable, a
 * new WAL segment starts, and the background worker flushes it to a level-0
 * table. Writes stall (counted in `write_stalls`) while too many memtables
 * wait for flushing or level 0 has too many tables: the bound on how far
 * writes may run ahead of compaction.
 *
 * Read path: active memtable, immutable memtables newest first, level-0
 * tables newest first, then one table per deeper level (binary search on key
 * ranges). Bloom filters skip tables; blocks come from the block cache, and a
 * lookup whose blocks are all cached never awaits.
 *
 * Background work (flush, then compaction) is one promise-driven loop, never
 * a timer: it starts when a write creates work and ends when there is none.
 * Range scans pin a snapshot (memtable sequence number + reference-counted
 * version), so flushes and compactions may replace files underneath them;
 * a table file is deleted only when no version that lists it is referenced.
 *
 * Crash safety argument: see README.md in this folder.
 */
import { ImpulseError, isImpulseError } from '../../errors.js';
import { assert } from '../../util/assert.js';
import { type Clock, SystemClock } from '../../util/clock.js';
import { type Random, SeededRandom } from '../../util/random.js';
import { type Vfs, joinPath } from '../../vfs/vfs.js';
import { NodeVfs } from '../../vfs/node-vfs.js';
import { Engine, type EngineOptions, type EngineStats, type Entry, type KeyRange, type WriteOp, aboveLower, belowUpper } from '../engine.js';
import { bloomHashes } from './bloom.js';
import { compareBytes } from './block.js';
import { BlockCache } from './block-cache.js';
import { corruption } from './coding.js';
import {
  MANIFEST_NAME,
  MANIFEST_TEMP_NAME,
  type ManifestState,
  type TableMeta,
  decodeManifest,
  parseFileName,
  tableFileName,
  walFileName,
  writeManifest,
} from './manifest.js';
import { Memtable } from './memtable.js';
import { LevelSource, MemtableSource, type SortedSource, type Step, TableSource } from './sources.js';
import { TABLE_MISS, TABLE_TOMBSTONE, TableBuilder, TableIterator, TableReader } from './table.js';
import { WalWriter, replaySegment } from './wal.js';

/** Tuning options. Every size is in bytes. */
export interface LsmTuning {
  /** Active memtable budget before it is frozen and flushed. Default 8 MiB. */
  readonly memtableBytes: number;
  /** Frozen memtables waiting for flush before writes stall. Default 2. */
  readonly immutableMemtablesMax: number;
  /** Target size of one SSTable written by flush or compaction. Default 4 MiB. */
  readonly tableTargetBytes: number;
  /** Target size of one data block. Default 4 KiB. */
  readonly blockBytes: number;
  /** Keys between restart points in a block. Default 16. */
  readonly restartInterval: number;
  /** Bloom filter bits per key (0 < bits <= 64). Default 10 (about 1% false positives). */
  readonly bloomBitsPerKey: number;
  /** Block cache budget. Default 64 MiB. */
  readonly blockCacheBytes: number;
  /** Level-0 table count that starts a level-0 compaction. Default 4. */
  readonly level0CompactionTrigger: number;
  /** Level-0 table count at which writes stall until compaction catches up. Default 12. */
  readonly level0StopWritesTrigger: number;
  /** Size target of level 1; each deeper level is `levelSizeMultiplier` times larger. Default 32 MiB. */
  readonly level1TargetBytes: number;
  /** Default 10. */
  readonly levelSizeMultiplier: number;
  /** Levels including level 0. Default 7. */
  readonly levelCount: number;
}

export const DEFAULT_LSM_TUNING: LsmTuning = Object.freeze({
  memtableBytes: 8 * 1024 * 1024,
  immutableMemtablesMax: 2,
  tableTargetBytes: 4 * 1024 * 1024,
  blockBytes: 4096,
  restartInterval: 16,
  bloomBitsPerKey: 10,
  blockCacheBytes: 64 * 1024 * 1024,
  level0CompactionTrigger: 4,
  level0StopWritesTrigger: 12,
  level1TargetBytes: 32 * 1024 * 1024,
  levelSizeMultiplier: 10,
  levelCount: 7,
});

export interface LsmEngineOptions extends EngineOptions, Partial<LsmTuning> {
  /** File system. Default: the real one (NodeVfs). */
  readonly vfs?: Vfs;
  /** Randomness for memtable skip-list heights. Default: seeded. */
  readonly random?: Random;
  /** Time source for stall durations. Default: the system clock. */
  readonly clock?: Clock;
}

/** Longest key the block search scratch space holds; the engine's key limit may not exceed it. */
const KEY_BYTES_LIMIT = 64 * 1024;

/** An open table and how many versions list it. */
class Table implements TableMeta {
  /** Versions that list this table; the file is deleted when this drops to 0 after it left the current version. */
  versionRefs = 0;
  /** Key bounds as latin1 strings, for the point-read hot path (string `<` is byte order). */
  readonly smallestString: string;
  readonly largestString: string;

  constructor(
    readonly meta: TableMeta,
    readonly reader: TableReader,
  ) {
    this.smallestString = meta.smallest.toString('latin1');
    this.largestString = meta.largest.toString('latin1');
  }

  get fileNumber(): number {
    return this.meta.fileNumber;
  }
  get sizeBytes(): number {
    return this.meta.sizeBytes;
  }
  get entryCount(): number {
    return this.meta.entryCount;
  }
  get smallest(): Buffer {
    return this.meta.smallest;
  }
  get largest(): Buffer {
    return this.meta.largest;
  }
}

/** An immutable set of tables per level. Readers pin it with `refs`. */
class Version {
  refs = 0;
  constructor(readonly levels: ReadonlyArray<readonly Table[]>) {}
}

interface FrozenMemtable {
  readonly memtable: Memtable;
  /** The WAL segment started when this memtable froze: after it is flushed, older segments are garbage. */
  readonly nextLogNumber: number;
}

interface Compaction {
  readonly level: number;
  readonly inputs: readonly Table[];
  readonly overlapping: readonly Table[];
}

export class LsmEngine extends Engine {
  readonly name = 'lsm';
  readonly supports = { durable: true, cheapKeyCount: false } as const;

  private readonly vfs: Vfs;
  private readonly dir: string;
  private readonly tuning: LsmTuning;
  private readonly random: Random;
  private readonly clock: Clock;
  private readonly cache: BlockCache;

  /** The live tree. Holds one reference of its own (released when replaced). */
  private current = LsmEngine.emptyVersion();
  private active: Memtable;
  private frozen: FrozenMemtable[] = [];
  private wal: WalWriter | undefined;
  private nextFileNumber = 1;
  private logNumber = 0;
  /** Sequence number of the last applied operation. */
  private seq = 0;
  /** Sequence numbers of open range snapshots, non-decreasing. */
  private readonly snapshots: number[] = [];
  private readonly compactPointers: Array<Buffer | undefined> = [];

  private backgroundRunning = false;
  private backgroundDone: Promise<void> = Promise.resolve();
  /** Set when a WAL append or background job failed: writes are refused until reopen (fail-stop). */
  private failure: ImpulseError | undefined;
  private closing = false;
  private progressWaiters: Array<() => void> = [];
  private readonly pendingDeletes = new Set<Promise<void>>();

  // Scratch for the synchronous part of `_get` (never held across an await).
  private readonly hashes = new Uint32Array(2);
  private readonly found: { value: Buffer | undefined } = { value: undefined };

  // Figures.
  private userBytesWritten = 0;
  private walBytesWritten = 0;
  private flushBytesWritten = 0;
  private compactionBytesRead = 0;
  private compactionBytesWritten = 0;
  private flushCount = 0;
  private compactionCount = 0;
  private trivialMoveCount = 0;
  private writeStalls = 0;
  private writeStallMs = 0;
  private bloomUseful = 0;
  private bloomFalsePositive = 0;
  private tornWalTails = 0;

  constructor(options: LsmEngineOptions) {
    super(options);
    if (options.dataDir === undefined || options.dataDir.length === 0) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'the lsm engine needs a data directory (dataDir)');
    }
    this.dir = options.dataDir;
    this.vfs = options.vfs ?? new NodeVfs();
    const tuning: Record<string, number> = { ...DEFAULT_LSM_TUNING };
    for (const name of Object.keys(DEFAULT_LSM_TUNING)) {
      const value = (options as Record<string, unknown>)[name];
      if (value === undefined) continue;
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
        throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `lsm option ${name} must be a positive integer, got ${String(value)}`);
      }
      tuning[name] = value;
    }
    this.tuning = Object.freeze(tuning as unknown as LsmTuning);
    const t = this.tuning;
    if (t.bloomBitsPerKey > 64) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'lsm bloomBitsPerKey must be at most 64');
    if (t.levelCount < 2 || t.levelCount > 16) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'lsm levelCount must be 2..16');
    if (t.level0StopWritesTrigger < t.level0CompactionTrigger) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'lsm level0StopWritesTrigger must be >= level0CompactionTrigger');
    }
    if (this.limits.keyBytesMax > KEY_BYTES_LIMIT) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `the lsm engine supports keys up to ${KEY_BYTES_LIMIT} bytes`);
    }
    this.random = options.random ?? new SeededRandom(0x15a);
    this.clock = options.clock ?? new SystemClock();
    this.cache = new BlockCache(t.blockCacheBytes);
    this.active = new Memtable(this.random);
  }

  private static emptyVersion(): Version {
    const version = new Version([]);
    version.refs = 1;
    return version;
  }

  // ---- open / recovery ------------------------------------------------------------------

  protected async _open(): Promise<void> {
    const opened: Table[] = [];
    try {
      await this.vfs.mkdir(this.dir);
      const names = await this.vfs.list(this.dir);
      if (names.includes(MANIFEST_TEMP_NAME)) await this.vfs.unlink(this.path(MANIFEST_TEMP_NAME));
      let state: ManifestState;
      if (names.includes(MANIFEST_NAME)) {
        const path = this.path(MANIFEST_NAME);
        state = decodeManifest(await this.vfs.readFile(path), path);
      } else {
        // The manifest is written before any WAL or table exists, so its absence means a new store.
        if (names.some((name) => parseFileName(name) !== undefined)) {
          throw corruption(this.dir, `has table or log files but no ${MANIFEST_NAME}`);
        }
        state = { nextFileNumber: 1, logNumber: 0, levels: [] };
        await writeManifest(this.vfs, this.dir, this.manifestOf(state.levels, state.nextFileNumber, state.logNumber));
      }
      if (state.levels.slice(this.tuning.levelCount).some((level) => level.length > 0)) {
        throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `the store has tables below level ${this.tuning.levelCount - 1}; raise levelCount`);
      }
      // Open every live table; a missing or damaged one is corruption.
      const live = new Set<number>();
      const levels: Table[][] = [];
      for (let level = 0; level < this.tuning.levelCount; level++) {
        const tables: Table[] = [];
        for (const meta of state.levels[level] ?? []) {
          const path = this.path(tableFileName(meta.fileNumber));
          if (!names.includes(tableFileName(meta.fileNumber))) throw corruption(path, 'table listed in the manifest is missing');
          const reader = await TableReader.open(this.vfs, path, meta.fileNumber, this.cache);
          const table = new Table(meta, reader);
          opened.push(table);
          tables.push(table);
          live.add(meta.fileNumber);
        }
        levels.push(tables);
      }
      // Files the manifest does not list are leftovers of an interrupted flush or compaction.
      let highestNumber = state.nextFileNumber - 1;
      const logs: number[] = [];
      for (const name of names) {
        const parsed = parseFileName(name);
        if (parsed === undefined) continue;
        highestNumber = Math.max(highestNumber, parsed.fileNumber);
        if (parsed.kind === 'sst' && !live.has(parsed.fileNumber)) await this.vfs.unlink(this.path(name));
        else if (parsed.kind === 'log' && parsed.fileNumber < state.logNumber) await this.vfs.unlink(this.path(name));
        else if (parsed.kind === 'log') logs.push(parsed.fileNumber);
      }
      // Replay the WAL segments the manifest does not cover, oldest first.
      logs.sort((a, b) => a - b);
      for (const number of logs) {
        const path = this.path(walFileName(number));
        const result = await replaySegment(this.vfs, path, (key, value) => {
          this.seq++;
          this.active.put(key.toString('latin1'), value === null ? null : Buffer.from(value), this.seq, Infinity);
        });
        if (result.tornTail) this.tornWalTails++;
      }
      this.nextFileNumber = highestNumber + 1;
      this.logNumber = state.logNumber;
      this.install(new Version(levels));
      // A fresh segment for new writes: old ones are never appended to (their tail may be torn).
      this.wal = await this.createWal();
      if (logs.length > 0) {
        // Freeze what was replayed: its flush advances the log number past every old segment,
        // so segments do not pile up across reopens.
        this.frozen.push({ memtable: this.active, nextLogNumber: this.wal.number });
        this.active = new Memtable(this.random);
      }
    } catch (error) {
      for (const table of opened) await table.reader.close().catch(() => undefined);
      throw error;
    }
    this.scheduleBackground();
  }

  // ---- reads ---------------------------------------------------------------------------

  protected async _get(key: Buffer): Promise<Buffer | undefined> {
    const keyString = key.toString('latin1');
    const inActive = this.active.get(keyString);
    if (inActive !== undefined) return inActive.value === null ? undefined : Buffer.from(inActive.value);
    for (let i = this.frozen.length - 1; i >= 0; i--) {
      const version = this.frozen[i]!.memtable.get(keyString);
      if (version !== undefined) return version.value === null ? undefined : Buffer.from(version.value);
    }
    const version = this.current;
    const hashes = this.hashes;
    bloomHashes(key, hashes);
    const found = this.found;
    const levels = version.levels;
    for (let level = 0; level < levels.length; level++) {
      const tables = levels[level]!;
      if (tables.length === 0) continue;
      let first: number;
      let last: number;
      if (level === 0) {
        first = 0;
        last = tables.length - 1;
      } else {
        first = findTableByString(tables, keyString);
        last = first;
        if (first >= tables.length) continue;
      }
      for (let i = first; i <= last; i++) {
        const table = tables[i]!;
        if (keyString < table.smallestString || keyString > table.largestString) continue;
        const reader = table.reader;
        if (!reader.mayContain(hashes)) continue;
        const blockIndex = reader.findBlockByString(keyString);
        const block = reader.cachedBlock(blockIndex) ?? reader.readBlockSync(blockIndex);
        if (block === undefined) {
          // Slow path: from here on, tables are read with awaits, holding the version.
          return this.getSlow(version, key, Uint32Array.from(hashes), level, i);
        }
        const result = reader.searchIn(block, key, found);
        if (result === TABLE_MISS) continue;
        if (result === TABLE_TOMBSTONE) return undefined;
        const value = found.value;
        found.value = undefined;
        return value;
      }
    }
    return undefined;
  }

  /** `_get` from table `index` of `level` on, reading blocks from disk as needed. */
  private async getSlow(version: Version, key: Buffer, hashes: Uint32Array, level: number, index: number): Promise<Buffer | undefined> {
    version.refs++;
    try {
      const found: { value: Buffer | undefined } = { value: undefined };
      // The table at (level, index) already passed its range and Bloom checks.
      let skipChecks = true;
      for (; level < version.levels.length; level++) {
        const tables = version.levels[level]!;
        let first = index;
        let last = index;
        if (index < 0) {
          if (level === 0) {
            first = 0;
            last = tables.length - 1;
          } else {
            first = findTable(tables, key);
            last = first;
          }
        }
        index = -1;
        for (let i = first; i <= last && i < tables.length; i++) {
          const table = tables[i]!;
          if (!skipChecks) {
            if (Buffer.compare(key, table.smallest) < 0 || Buffer.compare(key, table.largest) > 0) continue;
            if (!table.reader.mayContain(hashes)) continue;
          }
          skipChecks = false;
          const block = await table.reader.block(table.reader.findBlock(key));
          const result = table.reader.searchIn(block, key, found);
          if (result === TABLE_MISS) continue;
          return result === TABLE_TOMBSTONE ? undefined : found.value;
        }
      }
      return undefined;
    } finally {
      this.unrefVersion(version);
    }
  }

  protected async _range(range: KeyRange, reverse: boolean, limit: number): Promise<Entry[]> {
    // Snapshot: memtables as of `seq`, and the current version pinned.
    const snapshotSeq = this.seq;
    const version = this.current;
    version.refs++;
    this.snapshots.push(snapshotSeq);
    try {
      const sources: SortedSource[] = [new MemtableSource(this.active, snapshotSeq)];
      for (let i = this.frozen.length - 1; i >= 0; i--) sources.push(new MemtableSource(this.frozen[i]!.memtable, snapshotSeq));
      for (const table of version.levels[0] ?? []) sources.push(new TableSource(table.reader));
      for (let level = 1; level < version.levels.length; level++) {
        const tables = version.levels[level]!;
        if (tables.length > 0) sources.push(new LevelSource(tables, true));
      }
      return await mergeRange(sources, range, reverse, limit);
    } finally {
      this.snapshots.splice(this.snapshots.indexOf(snapshotSeq), 1);
      this.unrefVersion(version);
    }
  }

  // ---- writes --------------------------------------------------------------------------

  protected async _write(ops: readonly WriteOp[], sync: boolean): Promise<void> {
    const room = this.makeRoomForWrite();
    if (room !== undefined) await room;
    const wal = this.wal;
    assert(wal !== undefined, 'lsm write without a WAL');
    try {
      this.walBytesWritten += await wal.append(ops, sync);
    } catch (error) {
      // The segment may now end in a partial record: nothing may follow it (fail-stop until reopen).
      throw this.fail(error, 'WAL append');
    }
    // Applying cannot fail, so the batch becomes visible whole.
    const memtable = this.active;
    const oldestSnapshot = this.snapshots.length > 0 ? this.snapshots[0]! : Infinity;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      const key = op.key;
      const keyString = (Buffer.isBuffer(key) ? key : Buffer.from(key.buffer, key.byteOffset, key.byteLength)).toString('latin1');
      this.seq++;
      if (op.type === 'put') {
        // Copy: the caller may reuse its buffer once the write is acknowledged.
        memtable.put(keyString, Buffer.from(op.value), this.seq, oldestSnapshot);
        this.userBytesWritten += key.byteLength + op.value.byteLength;
      } else {
        memtable.put(keyString, null, this.seq, oldestSnapshot);
        this.userBytesWritten += key.byteLength;
      }
    }
  }

  /** Undefined when there is room now; otherwise a promise that freezes the memtable or waits out a stall. */
  private makeRoomForWrite(): Promise<void> | undefined {
    if (this.failure !== undefined) throw this.refusal();
    if (this.active.approximateBytes < this.tuning.memtableBytes && (this.current.levels[0]?.length ?? 0) < this.tuning.level0StopWritesTrigger) {
      return undefined;
    }
    return this.makeRoomSlow();
  }

  private async makeRoomSlow(): Promise<void> {
    let stallStartedMs: number | undefined;
    try {
      for (;;) {
        if (this.failure !== undefined) throw this.refusal();
        const level0Tables = this.current.levels[0]?.length ?? 0;
        const memtableFull = this.active.approximateBytes >= this.tuning.memtableBytes;
        if (level0Tables >= this.tuning.level0StopWritesTrigger || (memtableFull && this.frozen.length >= this.tuning.immutableMemtablesMax)) {
          // Stall: compaction or flushing is behind; wait for the background to make progress.
          if (stallStartedMs === undefined) {
            stallStartedMs = this.clock.now();
            this.writeStalls++;
          }
          await this.waitForProgress();
          continue;
        }
        if (memtableFull) await this.freezeMemtable();
        return;
      }
    } finally {
      if (stallStartedMs !== undefined) this.writeStallMs += this.clock.now() - stallStartedMs;
    }
  }

  /** Freezes the active memtable behind a new WAL segment and wakes the background flusher. */
  private async freezeMemtable(): Promise<void> {
    let wal: WalWriter;
    try {
      wal = await this.createWal();
    } catch (error) {
      throw this.fail(error, 'starting a WAL segment');
    }
    const previous = this.wal;
    this.frozen.push({ memtable: this.active, nextLogNumber: wal.number });
    this.active = new Memtable(this.random);
    this.wal = wal;
    this.scheduleBackground();
    // Its records are all written; with sync on they were synced when acknowledged.
    if (previous !== undefined) await previous.close().catch(() => undefined);
  }

  private async createWal(): Promise<WalWriter> {
    const number = this.allocateFileNumber();
    const file = await this.vfs.open(this.path(walFileName(number)), { create: true, truncate: true });
    // The segment's name must be durable before any record in it is acknowledged.
    await this.vfs.syncDir(this.dir);
    return new WalWriter(file, number);
  }

  // ---- background: flush and compaction ------------------------------------------------

  private scheduleBackground(): void {
    if (this.backgroundRunning || this.failure !== undefined || this.closing) return;
    this.backgroundRunning = true;
    this.backgroundDone = this.runBackground();
  }

  private async runBackground(): Promise<void> {
    try {
      while (this.failure === undefined && !this.closing) {
        if (this.frozen.length > 0) {
          await this.flushOldest();
        } else {
          const compaction = this.pickCompaction();
          if (compaction === undefined) break;
          await this.compact(compaction);
        }
        this.notifyProgress();
      }
    } catch (error) {
      this.fail(error, 'background flush or compaction');
    } finally {
      this.backgroundRunning = false;
      this.notifyProgress();
    }
  }

  private waitForProgress(): Promise<void> {
    this.scheduleBackground();
    if (!this.backgroundRunning) return Promise.resolve();
    return new Promise((resolve) => this.progressWaiters.push(resolve));
  }

  private notifyProgress(): void {
    const waiters = this.progressWaiters;
    this.progressWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Resolves when no background work is running or queued (for tests and benchmarks). */
  async waitForBackgroundIdle(): Promise<void> {
    for (;;) {
      await this.backgroundDone;
      if (!this.backgroundRunning) return;
    }
  }

  private async flushOldest(): Promise<void> {
    const frozen = this.frozen[0]!;
    const added: Array<{ level: number; table: Table }> = [];
    if (frozen.memtable.entryCount > 0) {
      const builder = this.newTableBuilder();
      for (let node = frozen.memtable.first(); node !== undefined; node = node.next[0]) {
        builder.add(Buffer.from(node.key, 'latin1'), node.value);
      }
      const table = await this.writeTable(builder);
      this.flushBytesWritten += table.sizeBytes;
      added.push({ level: this.levelForFlush(table), table });
    }
    await this.logAndApply(added, new Set(), frozen.nextLogNumber);
    // The new version lists the table; only now may readers stop seeing the memtable.
    this.frozen.shift();
    this.flushCount++;
    await this.deleteObsoleteLogs();
  }

  /**
   * Where a flushed table goes: level 0, unless it overlaps nothing in level 0
   * and the next level, in which case it may go straight down (at most to
   * level 2), as LevelDB does: sequential loads then skip level-0 compactions.
   * Safe because the table is newer than everything below it and nothing at or
   * above its new level covers its keys.
   */
  private levelForFlush(table: Table): number {
    const levels = this.current.levels;
    const overlaps = (level: number): boolean =>
      levels[level]!.some((other) => Buffer.compare(other.largest, table.smallest) >= 0 && Buffer.compare(other.smallest, table.largest) <= 0);
    if (overlaps(0)) return 0;
    let level = 0;
    while (level < 2 && level + 1 < levels.length - 1 && !overlaps(level + 1)) level++;
    return level;
  }

  private async deleteObsoleteLogs(): Promise<void> {
    const names = await this.vfs.list(this.dir);
    for (const name of names) {
      const parsed = parseFileName(name);
      if (parsed?.kind === 'log' && parsed.fileNumber < this.logNumber) await this.vfs.unlink(this.path(name));
    }
  }

  private levelTargetBytes(level: number): number {
    return this.tuning.level1TargetBytes * Math.pow(this.tuning.levelSizeMultiplier, level - 1);
  }

  /** The most urgent compaction (score >= 1), or undefined when the tree is within its targets. */
  private pickCompaction(): Compaction | undefined {
    const levels = this.current.levels;
    let bestLevel = -1;
    let bestScore = 1;
    const level0Score = levels[0]!.length / this.tuning.level0CompactionTrigger;
    if (level0Score >= bestScore) {
      bestLevel = 0;
      bestScore = level0Score;
    }
    // The last level has no level below it to compact into.
    for (let level = 1; level < levels.length - 1; level++) {
      const score = levelBytes(levels[level]!) / this.levelTargetBytes(level);
      if (score > bestScore) {
        bestLevel = level;
        bestScore = score;
      }
    }
    if (bestLevel < 0) return undefined;
    let inputs: Table[];
    if (bestLevel === 0) {
      // All of level 0: its tables overlap, and leaving an older one behind would let it shadow newer data.
      inputs = [...levels[0]!];
    } else {
      const tables = levels[bestLevel]!;
      const pointer = this.compactPointers[bestLevel];
      const next = pointer === undefined ? undefined : tables.find((table) => Buffer.compare(table.smallest, pointer) > 0);
      inputs = [next ?? tables[0]!];
    }
    let smallest = inputs[0]!.smallest;
    let largest = inputs[0]!.largest;
    for (const table of inputs) {
      if (Buffer.compare(table.smallest, smallest) < 0) smallest = table.smallest;
      if (Buffer.compare(table.largest, largest) > 0) largest = table.largest;
    }
    const overlapping = levels[bestLevel + 1]!.filter((table) => Buffer.compare(table.largest, smallest) >= 0 && Buffer.compare(table.smallest, largest) <= 0);
    return { level: bestLevel, inputs, overlapping };
  }

  private async compact(compaction: Compaction): Promise<void> {
    const { level, inputs, overlapping } = compaction;
    const outputLevel = level + 1;
    this.compactPointers[level] = inputs[inputs.length - 1]!.largest;
    if (inputs.length === 1 && overlapping.length === 0) {
      // Trivial move: nothing to merge with, so the file changes level without being rewritten.
      const table = inputs[0]!;
      await this.logAndApply([{ level: outputLevel, table }], new Set([table.fileNumber]), this.logNumber);
      this.trivialMoveCount++;
      return;
    }
    const version = this.current;
    version.refs++;
    const outputs: Table[] = [];
    try {
      // Newest first: level-0 tables (already newest first), then the older level as one source.
      const sources: SortedSource[] = [];
      if (level === 0) for (const table of inputs) sources.push(new TableSource(table.reader, false));
      else sources.push(new LevelSource(inputs, false));
      sources.push(new LevelSource(overlapping, false));
      for (const table of [...inputs, ...overlapping]) this.compactionBytesRead += table.sizeBytes;
      const deeper = version.levels.slice(outputLevel + 1);
      const deeperPositions = deeper.map(() => 0);
      let builder = this.newTableBuilder();
      await mergeAll(sources, (key, value) => {
        // A tombstone may go only when no deeper level could hold an older version of the key.
        if (value === null && isBottomForKey(deeper, deeperPositions, key)) return undefined;
        builder.add(key, value);
        if (builder.estimatedBytes < this.tuning.tableTargetBytes) return undefined;
        const full = builder;
        builder = this.newTableBuilder();
        return this.writeTable(full).then((table) => {
          outputs.push(table);
        });
      });
      if (!builder.empty) outputs.push(await this.writeTable(builder));
      for (const table of outputs) this.compactionBytesWritten += table.sizeBytes;
      const removed = new Set([...inputs, ...overlapping].map((table) => table.fileNumber));
      await this.logAndApply(
        outputs.map((table) => ({ level: outputLevel, table })),
        removed,
        this.logNumber,
      );
      this.compactionCount++;
    } catch (error) {
      for (const table of outputs) if (table.versionRefs === 0) await table.reader.close().catch(() => undefined);
      throw error;
    } finally {
      this.unrefVersion(version);
    }
  }

  private newTableBuilder(): TableBuilder {
    return new TableBuilder({ blockBytes: this.tuning.blockBytes, restartInterval: this.tuning.restartInterval, bloomBitsPerKey: this.tuning.bloomBitsPerKey });
  }

  /** Writes and syncs a finished table and opens it. Its name becomes durable with the next manifest's directory sync. */
  private async writeTable(builder: TableBuilder): Promise<Table> {
    const { image, smallest, largest, entryCount } = builder.finish();
    const fileNumber = this.allocateFileNumber();
    const path = this.path(tableFileName(fileNumber));
    const file = await this.vfs.open(path, { create: true, truncate: true });
    try {
      await file.write(0, image);
      await file.sync();
    } finally {
      await file.close();
    }
    const reader = await TableReader.open(this.vfs, path, fileNumber, this.cache);
    return new Table({ fileNumber, sizeBytes: image.length, entryCount, smallest, largest }, reader);
  }

  /**
   * Makes `current - removed + added` the durable and then the current
   * version: the manifest is replaced atomically first, so a crash leaves
   * either the old tree or the new one. Only the background loop and open call
   * this, one at a time.
   */
  private async logAndApply(added: ReadonlyArray<{ level: number; table: Table }>, removed: ReadonlySet<number>, logNumber: number): Promise<void> {
    const levels = this.current.levels.map((tables) => tables.filter((table) => !removed.has(table.fileNumber)));
    for (const { level, table } of added) levels[level]!.push(table);
    levels[0]!.sort((a, b) => b.fileNumber - a.fileNumber);
    for (let level = 1; level < levels.length; level++) levels[level]!.sort((a, b) => Buffer.compare(a.smallest, b.smallest));
    await writeManifest(this.vfs, this.dir, this.manifestOf(levels, this.nextFileNumber, logNumber));
    this.logNumber = logNumber;
    this.install(new Version(levels));
  }

  private manifestOf(levels: ReadonlyArray<readonly TableMeta[]>, nextFileNumber: number, logNumber: number): ManifestState {
    const padded: Array<readonly TableMeta[]> = [];
    for (let level = 0; level < this.tuning.levelCount; level++) {
      padded.push((levels[level] ?? []).map((table) => ({ fileNumber: table.fileNumber, sizeBytes: table.sizeBytes, entryCount: table.entryCount, smallest: table.smallest, largest: table.largest })));
    }
    return { nextFileNumber, logNumber, levels: padded };
  }

  private install(version: Version): void {
    version.refs++;
    for (const tables of version.levels) for (const table of tables) table.versionRefs++;
    const previous = this.current;
    this.current = version;
    this.unrefVersion(previous);
  }

  private unrefVersion(version: Version): void {
    version.refs--;
    assert(version.refs >= 0, 'lsm version reference count went negative');
    if (version.refs > 0) return;
    for (const tables of version.levels) {
      for (const table of tables) {
        table.versionRefs--;
        if (table.versionRefs === 0) this.deleteTable(table);
      }
    }
  }

  /** Closes and deletes a table no version lists any more. A failed unlink leaves an orphan that the next open removes. */
  private deleteTable(table: Table): void {
    const deletion = (async () => {
      await table.reader.close();
      if (!this.closing) await this.vfs.unlink(table.reader.path);
    })()
      .catch(() => undefined)
      .finally(() => this.pendingDeletes.delete(deletion));
    this.pendingDeletes.add(deletion);
  }

  private allocateFileNumber(): number {
    const number = this.nextFileNumber++;
    assert(Number.isSafeInteger(number), 'lsm file numbers exhausted', number);
    return number;
  }

  // ---- failure handling ----------------------------------------------------------------

  /** Records a fail-stop error (first one wins) and returns the error to throw to the current caller. */
  private fail(error: unknown, during: string): unknown {
    if (this.failure === undefined) {
      const code = isImpulseError(error) ? error.code : 'IMPULSE_ERR_ENGINE_IO';
      const message = error instanceof Error ? error.message : String(error);
      this.failure = new ImpulseError(code, `lsm: ${during} failed (${message}); writes are refused until the engine is reopened`, { cause: error });
      this.notifyProgress();
    }
    return error;
  }

  private refusal(): ImpulseError {
    return this.failure!;
  }

  // ---- stats, invariants, close ------------------------------------------------------

  protected async _stats(): Promise<EngineStats> {
    const figures: Record<string, number> = {};
    const levels = this.current.levels;
    let tableBytes = 0;
    let backlogBytes = 0;
    for (let level = 0; level < levels.length; level++) {
      const bytes = levelBytes(levels[level]!);
      tableBytes += bytes;
      figures[`level_${level}_tables`] = levels[level]!.length;
      figures[`level_${level}_bytes`] = bytes;
      if (level === 0) {
        if (levels[0]!.length >= this.tuning.level0CompactionTrigger) backlogBytes += bytes;
      } else if (level < levels.length - 1) {
        backlogBytes += Math.max(0, bytes - this.levelTargetBytes(level));
      }
    }
    let bloomUseful = this.bloomUseful;
    let bloomFalsePositive = this.bloomFalsePositive;
    for (const tables of levels) {
      for (const table of tables) {
        bloomUseful += table.reader.bloomUseful;
        bloomFalsePositive += table.reader.bloomFalsePositive;
      }
    }
    const walBytes = this.wal?.position ?? 0;
    const diskWritten = this.walBytesWritten + this.flushBytesWritten + this.compactionBytesWritten;
    Object.assign(figures, {
      memtable_bytes: this.active.approximateBytes,
      memtables_frozen: this.frozen.length,
      user_bytes_written: this.userBytesWritten,
      wal_bytes_written: this.walBytesWritten,
      flush_bytes_written: this.flushBytesWritten,
      compaction_bytes_read: this.compactionBytesRead,
      compaction_bytes_written: this.compactionBytesWritten,
      write_amplification: this.userBytesWritten === 0 ? 0 : diskWritten / this.userBytesWritten,
      flushes: this.flushCount,
      compactions: this.compactionCount,
      compaction_trivial_moves: this.trivialMoveCount,
      compaction_backlog_bytes: backlogBytes,
      write_stalls: this.writeStalls,
      write_stall_ms: Math.round(this.writeStallMs),
      bloom_useful: bloomUseful,
      bloom_false_positive: bloomFalsePositive,
      block_cache_bytes: this.cache.usedBytes,
      block_cache_hits: this.cache.hits,
      block_cache_misses: this.cache.misses,
      block_cache_hit_ratio: this.cache.hits + this.cache.misses === 0 ? 0 : this.cache.hits / (this.cache.hits + this.cache.misses),
      wal_torn_tails_recovered: this.tornWalTails,
      failed: this.failure === undefined ? 0 : 1,
    });
    return { diskBytes: tableBytes + walBytes, figures };
  }

  /**
   * Checks the tree's invariants and throws AssertionError on the first
   * violation: every table's keys strictly ascending and within its recorded
   * smallest/largest and entry count; level-0 newest first; deeper levels
   * sorted without overlap; every listed table file present with its recorded
   * size; the manifest on disk equal to the current version. Reads every
   * table: for tests, not for production paths. Waits for background work first.
   */
  async checkLevels(): Promise<void> {
    await this.waitForBackgroundIdle();
    const version = this.current;
    version.refs++;
    try {
      const levels = version.levels;
      for (let i = 1; i < levels[0]!.length; i++) {
        assert(levels[0]![i - 1]!.fileNumber > levels[0]![i]!.fileNumber, 'level 0 is not newest first', i);
      }
      for (let level = 1; level < levels.length; level++) {
        const tables = levels[level]!;
        for (let i = 1; i < tables.length; i++) {
          assert(Buffer.compare(tables[i - 1]!.largest, tables[i]!.smallest) < 0, 'tables overlap within a level', level, tables[i - 1]!.fileNumber, tables[i]!.fileNumber);
        }
      }
      const names = new Set(await this.vfs.list(this.dir));
      for (let level = 0; level < levels.length; level++) {
        for (const table of levels[level]!) {
          const name = tableFileName(table.fileNumber);
          assert(names.has(name), 'table file missing', name);
          assert((await this.vfs.size(this.path(name))) === table.sizeBytes, 'table file size differs from the manifest', name);
          assert(Buffer.compare(table.smallest, table.largest) <= 0, 'table smallest > largest', name);
          const iterator = new TableIterator(table.reader, false);
          let step = iterator.seekFirst();
          if (step !== undefined) await step;
          let previous: Buffer | undefined;
          let count = 0;
          while (iterator.valid) {
            const key = iterator.key;
            if (previous === undefined) assert(key.equals(table.smallest), 'first key differs from the recorded smallest', name);
            else assert(Buffer.compare(previous, key) < 0, 'keys out of order in table', name, previous, key);
            previous = key;
            count++;
            step = iterator.next();
            if (step !== undefined) await step;
          }
          assert(previous !== undefined && previous.equals(table.largest), 'last key differs from the recorded largest', name);
          assert(count === table.entryCount, 'entry count differs from the manifest', name, count, table.entryCount);
        }
      }
      const path = this.path(MANIFEST_NAME);
      const onDisk = decodeManifest(await this.vfs.readFile(path), path);
      assert(onDisk.logNumber === this.logNumber, 'manifest log number differs', onDisk.logNumber, this.logNumber);
      for (let level = 0; level < levels.length; level++) {
        const expected = levels[level]!.map((table) => table.fileNumber).join(',');
        const actual = (onDisk.levels[level] ?? []).map((table) => table.fileNumber).join(',');
        assert(expected === actual, 'manifest differs from the current version', level, expected, actual);
      }
    } finally {
      this.unrefVersion(version);
    }
  }

  protected async _close(): Promise<void> {
    this.closing = true;
    await this.waitForBackgroundIdle();
    const errors: unknown[] = [];
    if (this.wal !== undefined) await this.wal.close().catch((error: unknown) => errors.push(error));
    this.wal = undefined;
    for (const tables of this.current.levels) for (const table of tables) await table.reader.close().catch(() => undefined);
    await Promise.all([...this.pendingDeletes]);
    this.cache.clear();
    // A background failure no write may have seen yet still reaches a caller.
    if (this.failure !== undefined) throw this.failure;
    if (errors.length > 0) throw errors[0];
  }

  private path(name: string): string {
    return joinPath(this.dir, name);
  }
}

// ---- merging -------------------------------------------------------------------------------

/** Index of the first table (sorted, non-overlapping) whose largest key is >= `key`. */
function findTable(tables: readonly Table[], key: Buffer): number {
  let low = 0;
  let high = tables.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (Buffer.compare(tables[mid]!.largest, key) < 0) low = mid + 1;
    else high = mid;
  }
  return low;
}

function findTableByString(tables: readonly Table[], key: string): number {
  let low = 0;
  let high = tables.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (tables[mid]!.largestString < key) low = mid + 1;
    else high = mid;
  }
  return low;
}

function levelBytes(tables: readonly Table[]): number {
  let bytes = 0;
  for (const table of tables) bytes += table.sizeBytes;
  return bytes;
}

/**
 * True when no table in `deeper` levels may hold `key`. `positions` are
 * per-level cursors that only move forward: keys arrive in ascending order.
 */
function isBottomForKey(deeper: ReadonlyArray<readonly Table[]>, positions: number[], key: Buffer): boolean {
  for (let level = 0; level < deeper.length; level++) {
    const tables = deeper[level]!;
    let position = positions[level]!;
    while (position < tables.length && Buffer.compare(tables[position]!.largest, key) < 0) position++;
    positions[level] = position;
    if (position < tables.length && Buffer.compare(tables[position]!.smallest, key) <= 0) return false;
  }
  return true;
}

/** Byte order of two keys, in JS: cheaper than a native call for keys of tens of bytes. */
function compareKeys(a: Buffer, b: Buffer): number {
  return compareBytes(a, 0, a.length, b, 0, b.length);
}

async function settle(step: Step): Promise<void> {
  if (step !== undefined) await step;
}

/**
 * Merges `sources` (newest first: on equal keys the earliest source wins) in
 * key order over `range`, dropping tombstones and shadowed versions, up to `limit` entries.
 */
async function mergeRange(sources: SortedSource[], range: KeyRange, reverse: boolean, limit: number): Promise<Entry[]> {
  for (const source of sources) {
    let step: Step;
    if (!reverse) step = range.lower !== undefined ? source.seekGE(range.lower, !range.lowerInclusive) : source.seekFirst();
    else step = range.upper !== undefined ? source.seekLE(range.upper, !range.upperInclusive) : source.seekLast();
    if (step !== undefined) await step;
  }
  const entries: Entry[] = [];
  const direction = reverse ? -1 : 1;
  while (entries.length < limit) {
    let best: SortedSource | undefined;
    for (const source of sources) {
      if (!source.valid) continue;
      if (best === undefined || compareKeys(source.key, best.key) * direction < 0) best = source;
    }
    if (best === undefined) break;
    const key = best.key;
    if (reverse ? !aboveLower(key, range) : !belowUpper(key, range)) break;
    const value = best.value;
    if (value !== null) {
      entries.push({ key, value: Buffer.from(value) });
      // Done: advancing now could only decode (or read) blocks nobody will look at.
      if (entries.length >= limit) break;
    }
    for (const source of sources) {
      if (source.valid && (source === best || compareKeys(source.key, key) === 0)) {
        const step = reverse ? source.prev() : source.next();
        if (step !== undefined) await step;
      }
    }
  }
  return entries;
}

/** Feeds every newest version (tombstones included) of `sources` in ascending key order to `emit`. */
async function mergeAll(sources: SortedSource[], emit: (key: Buffer, value: Buffer | null) => Promise<void> | undefined): Promise<void> {
  for (const source of sources) await settle(source.seekFirst());
  for (;;) {
    let best: SortedSource | undefined;
    for (const source of sources) {
      if (source.valid && (best === undefined || compareKeys(source.key, best.key) < 0)) best = source;
    }
    if (best === undefined) return;
    const key = best.key;
    const emitted = emit(key, best.value);
    if (emitted !== undefined) await emitted;
    for (const source of sources) {
      if (source.valid && (source === best || compareKeys(source.key, key) === 0)) {
        const step = source.next();
        if (step !== undefined) await step;
      }
    }
  }
}
