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
 * new WAL segment starts, and the flush loop writes it as a table. Writes
 * stall (counted in `write_stalls`) while too many memtables
 * wait for flushing or level 0 has too many tables: the bound on how far
 * writes may run ahead of compaction.
 *
 * Read path: active memtable, immutable memtables newest first, then the
 * tables (point-read.ts). Range scans pin a snapshot (memtable sequence
 * number + reference-counted version, version.ts), so flushes and
 * compactions may replace files underneath them.
 *
 * Background work: a flush loop and a compaction loop, promise-driven, never
 * a timer in the normal course (background.ts); their jobs run in worker
 * threads on the real disk and inline otherwise (job-runner.ts), and the
 * results are installed here. What to compact is compaction-picker.ts; the
 * work itself compaction.ts; opening and WAL replay recovery.ts; which error
 * does what health.ts.
 *
 * Crash safety argument: see README.md in this folder.
 */
import { ImpulseError } from '../../errors.js';
import { assert } from '../../util/assert.js';
import { type Clock, SystemClock } from '../../util/clock.js';
import { type Vfs, joinPath } from '../../vfs/vfs.js';
import { NodeVfs } from '../../vfs/node-vfs.js';
import { Engine, type EngineHealth, type EngineLog, type EngineStats, type Entry, type KeyRange, type RecoveryReport, type SyncRead, type WriteOp } from '../engine.js';
import { BlockCache } from './block-cache.js';
import { checkLevels } from './check-levels.js';
import { BackgroundScheduler, type BackgroundWork } from './background.js';
import { type JobEnvironment, type TableRef, deleteTableFiles } from './compaction.js';
import { encodeMemtable } from './job.js';
import { InlineJobRunner, type JobRunner, WorkerJobRunner, yieldToEventLoop } from './job-runner.js';
import { HealthState, asTransientError } from './health.js';
import { CompactionPicker } from './compaction-picker.js';
import { ManifestUncertainError, type TableMeta, parseFileName, tableFileName, walFileName } from './manifest.js';
import { Memtable } from './memtable.js';
import { mergeRange } from './merge.js';
import { type LsmEngineOptions, type LsmMutations, type LsmTuning, pickJobTuning, resolveTuning, resolveWalRecovery } from './options.js';
import { getFromTables, newLookupScratch } from './point-read.js';
import { DISCARDED_SUFFIX, type WalRecoveryReport, describeWalRecovery, recover } from './recovery.js';
import { LevelSource, MemtableSource, type SortedSource, TableSource } from './sources.js';
import { TableReader } from './table.js';
import { type AddedTable, Table, type Version, type VersionEdit, VersionSet, levelBytes } from './version.js';
import { WalWriter } from './wal.js';
import type { WalRecoveryMode } from './wal-recovery.js';

export { DEFAULT_LSM_TUNING, type LsmEngineOptions, type LsmMutations, type LsmTuning } from './options.js';

/** Group commits between yields to the event loop while a worker job is in flight (~1-2 ms of writes at full speed). */
const COMMITS_BETWEEN_YIELDS = 8;

interface FrozenMemtable {
  readonly memtable: Memtable;
  /** The WAL segment started when this memtable froze: after it is flushed, older segments are garbage. */
  readonly nextLogNumber: number;
}

export class LsmEngine extends Engine {
  readonly name = 'lsm';
  readonly supports = { durable: true, cheapKeyCount: false } as const;

  private readonly vfs: Vfs;
  private readonly dir: string;
  private readonly tuning: LsmTuning;
  private readonly clock: Clock;
  private readonly cache: BlockCache;
  private readonly versions: VersionSet;
  private readonly picker: CompactionPicker;
  /** Where flushes and compactions write (and, inline, run). */
  private readonly jobEnvironment: JobEnvironment;
  /** Runs flush jobs; a second runner runs compactions, so a long compaction never holds up a flush (job-runner.ts). */
  private readonly flushRunner: JobRunner;
  private readonly compactionRunner: JobRunner;
  private readonly scheduler: BackgroundScheduler;
  private readonly walRecovery: WalRecoveryMode;
  private readonly mutations: LsmMutations;
  /** Zeros a new WAL segment starts with: room for a memtable's records, so appends rarely grow the file. */
  private readonly walPreallocatedBytes: number;

  private active: Memtable;
  private frozen: FrozenMemtable[] = [];
  private wal: WalWriter | undefined;
  /** Sequence number of the last applied operation. */
  private seq = 0;
  /** Sequence numbers of open range snapshots, non-decreasing. */
  private readonly snapshots: number[] = [];

  /** Fail-stop and transient degradations (health.ts: which error does what). */
  private readonly condition: HealthState;
  private readonly log: EngineLog | undefined;
  private closing = false;
  /** Group commits since the write path last let the event loop turn (see `_write`). */
  private commitsSinceYield = 0;

  // Scratch for the synchronous part of `_get` (never held across an await).
  private readonly lookup = newLookupScratch();

  // Figures.
  private userBytesWritten = 0;
  private walBytesWritten = 0;
  private flushBytesWritten = 0;
  private compactionBytesRead = 0;
  private compactionBytesWritten = 0;
  private flushCount = 0;
  /** Time from a flush's start to its table installed, summed (it is the stall budget: see write_stalls). */
  private flushMs = 0;
  private compactionMs = 0;
  private compactionCount = 0;
  private trivialMoveCount = 0;
  private writeStalls = 0;
  /** Stalls that began because level 0 was full (the rest: frozen memtables waiting for flushes). */
  private writeStallsLevel0 = 0;
  private writeStallMs = 0;
  /** What WAL recovery did at open (shown in stats and `/status`). */
  private walRecoveryReport: WalRecoveryReport | undefined;
  /** Segments that lost data in recovery: renamed `*.log.discarded` rather than deleted. */
  private keptSegments: ReadonlySet<number> = new Set();

  constructor(options: LsmEngineOptions) {
    super(options);
    if (options.dataDir === undefined || options.dataDir.length === 0) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'the lsm engine needs a data directory (dataDir)');
    }
    this.dir = options.dataDir;
    this.log = options.log;
    this.condition = new HealthState(options.log, { engine: 'lsm', dir: options.dataDir });
    this.vfs = options.vfs ?? new NodeVfs();
    this.tuning = resolveTuning(options, this.limits.keyBytesMax);
    this.clock = options.clock ?? new SystemClock();
    this.cache = new BlockCache(this.tuning.blockCacheBytes);
    this.active = new Memtable();
    this.mutations = options.mutations ?? {};
    this.versions = new VersionSet(this.vfs, this.dir, this.tuning.levelCount, this.mutations);
    this.picker = new CompactionPicker(this.tuning);
    this.jobEnvironment = { vfs: this.vfs, dir: this.dir, tuning: this.tuning, allocateFileNumber: () => this.versions.allocateFileNumber() };
    // Flushes and compactions run in worker threads on the real disk, inline on any other Vfs (a worker
    // opens its own NodeVfs; a MemVfs cannot be shared across threads).
    const inWorker = (options.backgroundThreads ?? (this.vfs instanceof NodeVfs ? 'worker' : 'inline')) === 'worker';
    if (inWorker && !(this.vfs instanceof NodeVfs)) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `lsm backgroundThreads 'worker' needs the real disk (NodeVfs); a worker cannot use ${this.vfs.name}`);
    }
    const newRunner = (): JobRunner =>
      inWorker ? new WorkerJobRunner({ dir: this.dir, tuning: pickJobTuning(this.tuning) }, () => this.versions.allocateFileNumber()) : new InlineJobRunner(this.jobEnvironment);
    this.flushRunner = newRunner();
    this.compactionRunner = newRunner();
    this.scheduler = new BackgroundScheduler(this.backgroundWork(), this.clock);
    this.walRecovery = resolveWalRecovery(options.walRecovery);
    this.walPreallocatedBytes = Math.ceil((this.tuning.memtableBytes * 1.25) / 4096) * 4096;
  }

  // ---- open ------------------------------------------------------------------------------

  protected async _open(): Promise<void> {
    const env = { vfs: this.vfs, dir: this.dir, cache: this.cache, levelCount: this.tuning.levelCount, walRecovery: this.walRecovery, mutations: this.mutations };
    const { plan, report } = await recover(env, this.versions, (key, value) => {
      this.seq++;
      this.active.put(key.toString('latin1'), value === null ? null : Buffer.from(value), this.seq, Infinity);
    });
    this.walRecoveryReport = report;
    this.keptSegments = plan.keep;
    this.logRecovery();
    try {
      // A fresh segment for new writes: old ones are never appended to (their tail may be torn).
      this.wal = await this.createWal(plan.last);
      if (report.segments > 0) {
        // Freeze what was replayed: its flush advances the log number past every old segment,
        // so segments do not pile up across reopens.
        this.frozen.push({ memtable: this.active, nextLogNumber: this.wal.number });
        this.active = new Memtable();
        // After damage was discarded, make the replayed state durable in a table before serving,
        // so no later open meets the damage again (and the damaged segments are set aside now).
        if (plan.damaged) await this.flushOldest();
      } else {
        // The manifest names the oldest segment still needed, which must exist from now on.
        await this.versions.logAndApply(() => ({ logNumber: this.wal!.number }));
      }
    } catch (error) {
      await this.wal?.close().catch(() => undefined);
      await this.closeTables();
      throw error;
    }
    this.scheduler.schedule();
  }

  // ---- reads ---------------------------------------------------------------------------

  protected _get(key: Buffer): Promise<Buffer | undefined> {
    const value = this.read(key.toString('latin1'), key, true);
    return value instanceof Promise ? value : Promise.resolve(value);
  }

  /** `_get` without waiting: READ_NOT_SYNC exactly when `_get` would await a block read (point-read.ts). */
  protected override _getSync(key: Buffer): SyncRead {
    return this.read(key.toString('latin1'), key, false);
  }

  protected override _getSyncLatin1(keyLatin1: string): SyncRead {
    return this.read(keyLatin1, undefined, false);
  }

  /**
   * The point read both paths share: active memtable, frozen memtables newest
   * first, then the tables. With `mayWait` false a block that can only be
   * read asynchronously makes it READ_NOT_SYNC instead of a Promise.
   * `keyString` is the key as latin1; `key` its bytes, made from the string
   * only when the tables are searched (a memtable hit needs none).
   */
  private read(keyString: string, key: Buffer | undefined, mayWait: true): Buffer | undefined | Promise<Buffer | undefined>;
  private read(keyString: string, key: Buffer | undefined, mayWait: false): SyncRead;
  private read(keyString: string, key: Buffer | undefined, mayWait: boolean): SyncRead | Promise<Buffer | undefined> {
    // The memtable's own buffer, not a copy: it is never modified after the put (which copied the caller's), and readers must not modify it (the Engine contract).
    const inActive = this.active.get(keyString);
    if (inActive !== undefined) return inActive.value ?? undefined;
    for (let i = this.frozen.length - 1; i >= 0; i--) {
      const version = this.frozen[i]!.memtable.get(keyString);
      if (version !== undefined) return version.value ?? undefined;
    }
    return getFromTables(this.versions, key ?? Buffer.from(keyString, 'latin1'), keyString, this.lookup, mayWait);
  }

  protected async _range(range: KeyRange, reverse: boolean, limit: number): Promise<Entry[]> {
    // Snapshot: memtables as of `seq`, and the current version pinned.
    const snapshotSeq = this.seq;
    const version = this.versions.ref(this.versions.current);
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
      this.versions.unref(version);
    }
  }

  // ---- writes --------------------------------------------------------------------------

  protected async _write(ops: readonly WriteOp[], sync: boolean): Promise<void> {
    const room = this.makeRoomForWrite();
    if (room !== undefined) await room;
    let wal = this.wal;
    assert(wal !== undefined, 'lsm write without a WAL');
    // An earlier append failed for a transient reason and may have left a partial record: continue in a new segment.
    if (wal.sealed) wal = await this.replaceSealedWal(wal);
    try {
      this.walBytesWritten += await wal.append(ops, sync);
    } catch (error) {
      throw this.writeFailed(error, wal.failedOperation === 'sync' ? 'syncing the WAL' : 'appending to the WAL', wal.failedOperation !== 'sync');
    }
    this.condition.recover('writes');
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
    // With sync off a write never waits for I/O, so back-to-back writes run on microtasks alone and
    // the event loop would not turn until writes stall: a worker's "table written" message (and the
    // install that frees a frozen memtable) would wait for the stall it should prevent. So while a
    // worker job is in flight, yield every few commits.
    if ((this.flushRunner.awaitsMessages || this.compactionRunner.awaitsMessages) && ++this.commitsSinceYield >= COMMITS_BETWEEN_YIELDS) {
      this.commitsSinceYield = 0;
      await yieldToEventLoop();
    }
  }

  /** Undefined when there is room now; otherwise a promise that freezes the memtable or waits out a stall. */
  private makeRoomForWrite(): Promise<void> | undefined {
    const refusal = this.condition.refusal;
    if (refusal !== undefined) throw refusal;
    if (this.active.approximateBytes < this.tuning.memtableBytes && (this.versions.current.levels[0]?.length ?? 0) < this.tuning.level0StopWritesTrigger) {
      return undefined;
    }
    return this.makeRoomSlow();
  }

  private async makeRoomSlow(): Promise<void> {
    let stallStartedMs: number | undefined;
    try {
      for (;;) {
        const refusal = this.condition.refusal;
        if (refusal !== undefined) throw refusal;
        const level0Tables = this.versions.current.levels[0]?.length ?? 0;
        const memtableFull = this.active.approximateBytes >= this.tuning.memtableBytes;
        if (level0Tables >= this.tuning.level0StopWritesTrigger || (memtableFull && this.frozen.length >= this.tuning.immutableMemtablesMax)) {
          // Stall: compaction or flushing is behind; wait for the background to make progress,
          // unless it is waiting out a transient error (a full disk): then fail now rather than hang.
          const blocked = this.condition.degradation('background');
          if (blocked !== undefined && this.scheduler.retryPending) throw blocked;
          if (stallStartedMs === undefined) {
            stallStartedMs = this.clock.now();
            this.writeStalls++;
            if (level0Tables >= this.tuning.level0StopWritesTrigger) this.writeStallsLevel0++;
          }
          await this.scheduler.waitForProgress();
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
    const previous = this.wal;
    assert(previous !== undefined, 'lsm freeze without a WAL');
    await this.syncBeforeSuccessor(previous);
    let wal: WalWriter;
    try {
      wal = await this.createWal({ number: previous.number, end: previous.validEnd });
    } catch (error) {
      throw this.writeFailed(error, 'starting a WAL segment', true);
    }
    this.frozen.push({ memtable: this.active, nextLogNumber: wal.number });
    this.active = new Memtable();
    this.wal = wal;
    this.scheduler.schedule();
    // Name the successor at the end of the old segment, so a lost newest segment is noticed. Best
    // effort: the successor's header already says where the old one's records end.
    const sync = this.syncMode === 'fsync';
    if (!previous.sealed) await previous.appendEnd(wal.number, sync).catch((error: unknown) => {
      // Only a full disk or file table is shrugged off here; a failed fsync (the old segment's synced
      // state is unknown: fsyncgate) or an I/O error stops writes as anywhere else.
      if (previous.failedOperation === 'sync' || asTransientError(error, '') === undefined) this.condition.stop(error, 'ending a WAL segment');
    });
    await previous.close().catch(() => undefined);
  }

  /**
   * The next segment's header says where `previous`'s records end, and a
   * synced write in it must make every earlier write durable (the `_write`
   * contract): so records written in `previous` without sync (per-write
   * `sync: false` under fsync mode) are synced before the next segment exists
   * (else a power loss could keep the successor and lose them, and open would
   * find its predecessor short). A failed fsync is never transient (fsyncgate).
   */
  private async syncBeforeSuccessor(previous: WalWriter): Promise<void> {
    if (this.syncMode !== 'fsync' || !previous.hasUnsyncedRecords) return;
    await previous.syncRecords().catch((error: unknown) => {
      throw this.writeFailed(error, 'syncing a WAL segment before the next one', false);
    });
  }

  /** A new segment after `sealed` (whose append failed): it follows the records `sealed` holds, not what the failure left. */
  private async replaceSealedWal(sealed: WalWriter): Promise<WalWriter> {
    await this.syncBeforeSuccessor(sealed);
    let wal: WalWriter;
    try {
      wal = await this.createWal({ number: sealed.number, end: sealed.validEnd });
    } catch (error) {
      throw this.writeFailed(error, 'starting a WAL segment after a failed append', true);
    }
    this.wal = wal;
    await sealed.close().catch(() => undefined);
    return wal;
  }

  /**
   * Classifies a failed write step (health.ts) and returns what the writer
   * gets: a transient resource error degrades the engine and comes back under
   * its own code (`mayBeTransient` false for steps never retried, a WAL fsync);
   * anything else stops writes until reopen and comes back as it was.
   */
  private writeFailed(error: unknown, during: string, mayBeTransient: boolean): unknown {
    const transient = mayBeTransient ? asTransientError(error, during) : undefined;
    if (transient !== undefined) {
      this.condition.degrade('writes', transient);
      return transient;
    }
    this.condition.stop(error, during);
    this.scheduler.notifyProgress();
    return error;
  }

  /** Creates the next WAL segment, following `previous` (its number and where its records end). */
  private async createWal(previous: { readonly number: number; readonly end: number } | undefined): Promise<WalWriter> {
    const number = this.versions.allocateFileNumber();
    return WalWriter.create(this.vfs, this.dir, this.path(walFileName(number)), number, {
      syncMode: this.syncMode === 'fsync' ? 'fsync' : 'none',
      preallocatedBytes: this.walPreallocatedBytes,
      ...(previous === undefined ? {} : { previous }),
    });
  }

  // ---- background: flush and compaction (when: background.ts; what: compaction-picker.ts; the work: job.ts) ----

  /** Resolves when no background work is running (for tests and benchmarks); a retry waiting out a full disk does not count. */
  async waitForBackgroundIdle(): Promise<void> {
    await this.scheduler.waitForIdle();
  }

  /** The scheduler's view of the engine (background.ts `BackgroundWork`). */
  private backgroundWork(): BackgroundWork {
    return {
      flushDue: () => this.frozen.length > 0,
      flushOne: () => this.flushOldest(),
      compactionDue: () => this.picker.due(this.versions.current),
      compactOne: () => this.compactOne(),
      mayRun: () => !this.closing && this.condition.refusal === undefined,
      succeeded: () => this.condition.recover('background'),
      failed: (error) => this.backgroundFailed(error),
    };
  }

  /**
   * A flush or compaction failed (its outputs are deleted, its inputs
   * untouched). A transient resource error (a full disk) degrades the engine
   * and the scheduler retries; anything else, or a manifest that may or may not
   * have reached the disk, stops writes.
   */
  private backgroundFailed(error: unknown): 'retry' | 'stop' {
    const transient = asTransientError(error, 'background flush or compaction');
    if (transient === undefined || error instanceof ManifestUncertainError || this.closing) {
      this.condition.stop(error, 'background flush or compaction');
      this.scheduler.notifyProgress();
      return 'stop';
    }
    this.condition.degrade('background', transient);
    return 'retry';
  }

  private async flushOldest(): Promise<void> {
    const startedMs = this.clock.now();
    const frozen = this.frozen[0]!;
    let table: Table | undefined;
    if (frozen.memtable.entryCount > 0) {
      const metas = await this.flushRunner.run({ kind: 'flush', entries: encodeMemtable(frozen.memtable) });
      [table] = await this.openOutputs(metas);
      this.flushBytesWritten += table!.sizeBytes;
    }
    await this.installOrDiscard((current) => ({
      // While a compaction runs, its outputs may cover any key range of the next levels: only level 0 is safe.
      added: table === undefined ? [] : [{ level: this.scheduler.compactionRunning ? 0 : this.picker.levelForFlush(current, table), table }],
      logNumber: frozen.nextLogNumber,
    }));
    // The new version lists the table; only now may readers stop seeing the memtable.
    this.frozen.shift();
    this.flushCount++;
    this.flushMs += this.clock.now() - startedMs;
    await this.deleteObsoleteLogs();
  }

  /** Deletes WAL segments below the log number; one that lost data in recovery is renamed `*.log.discarded` for the operator instead. */
  private async deleteObsoleteLogs(): Promise<void> {
    const obsolete = (await this.vfs.list(this.dir)).map(parseFileName).filter((parsed) => parsed?.kind === 'log' && parsed.fileNumber < this.versions.logNumber);
    const kept = obsolete.filter((parsed) => this.keptSegments.has(parsed!.fileNumber));
    for (const parsed of kept) await this.vfs.rename(this.path(walFileName(parsed!.fileNumber)), this.path(walFileName(parsed!.fileNumber) + DISCARDED_SUFFIX));
    // Renames durable before any unlink: no crash may keep a later unlink and lose an earlier rename.
    if (kept.length > 0) await this.vfs.syncDir(this.dir);
    for (const parsed of obsolete) if (!this.keptSegments.has(parsed!.fileNumber)) await this.vfs.unlink(this.path(walFileName(parsed!.fileNumber)));
  }

  /** Runs the most urgent compaction; false when none is due. */
  private async compactOne(): Promise<boolean> {
    const compaction = this.picker.pick(this.versions.current);
    if (compaction === undefined) return false;
    const { level, inputs, overlapping } = compaction;
    const outputLevel = level + 1;
    const removed = new Set([...inputs, ...overlapping].map((table) => table.fileNumber));
    if (inputs.length === 1 && overlapping.length === 0) {
      // Trivial move: nothing to merge with, so the file changes level without being rewritten.
      await this.versions.logAndApply(() => ({ added: [{ level: outputLevel, table: inputs[0]! }], removed }));
      this.trivialMoveCount++;
      return true;
    }
    const startedMs = this.clock.now();
    const version = this.versions.ref(this.versions.current);
    try {
      for (const table of [...inputs, ...overlapping]) this.compactionBytesRead += table.sizeBytes;
      const ref = (table: Table): TableRef => ({ fileNumber: table.fileNumber, path: table.reader.path, sizeBytes: table.sizeBytes, smallest: table.smallest, largest: table.largest });
      const deeper = version.levels.slice(outputLevel + 1).map((tables) => tables.map((table) => ({ smallest: table.smallest, largest: table.largest })));
      const metas = await this.compactionRunner.run({ kind: 'compact', level, inputs: inputs.map(ref), overlapping: overlapping.map(ref), deeper });
      const outputs = await this.openOutputs(metas);
      for (const table of outputs) this.compactionBytesWritten += table.sizeBytes;
      await this.installOrDiscard(() => ({ added: outputs.map((table) => ({ level: outputLevel, table })), removed }));
      this.compactionCount++;
      this.compactionMs += this.clock.now() - startedMs;
    } finally {
      this.versions.unref(version);
    }
    return true;
  }

  /** Opens the tables a job wrote; if one fails to open, closes the others and deletes all of them. */
  private async openOutputs(metas: readonly TableMeta[]): Promise<Table[]> {
    const tables: Table[] = [];
    try {
      for (const meta of metas) tables.push(new Table(meta, await TableReader.open(this.vfs, this.path(tableFileName(meta.fileNumber)), meta.fileNumber, this.cache)));
      return tables;
    } catch (error) {
      for (const table of tables) await table.reader.close().catch(() => undefined);
      await deleteTableFiles(this.jobEnvironment, metas);
      throw error;
    }
  }

  /**
   * `logAndApply`; when it fails, the new tables (listed nowhere) are closed
   * and deleted, unless the manifest that lists them may have reached the
   * disk (then they stay, and the engine stops writing).
   */
  private async installOrDiscard(edit: (current: Version) => VersionEdit): Promise<void> {
    let added: readonly AddedTable[] = [];
    try {
      await this.versions.logAndApply((current) => {
        const result = edit(current);
        added = result.added ?? [];
        return result;
      });
    } catch (error) {
      const unlisted = added.map(({ table }) => table).filter((table) => table.versionRefs === 0);
      for (const table of unlisted) await table.reader.close().catch(() => undefined);
      if (!(error instanceof ManifestUncertainError)) await deleteTableFiles(this.jobEnvironment, unlisted);
      throw error;
    }
  }

  // ---- health, stats, invariants, close ------------------------------------------------

  protected override _health(): EngineHealth {
    return this.condition.snapshot();
  }

  override get recoveryReport(): RecoveryReport | undefined {
    return this.walRecoveryReport === undefined ? undefined : describeWalRecovery(this.walRecoveryReport);
  }

  /** One line per open: a warning when recovery discarded data beyond a torn tail. */
  private logRecovery(): void {
    const report = this.recoveryReport;
    if (this.log === undefined || report === undefined) return;
    const fields = { engine: 'lsm', dir: this.dir, dataLost: report.dataLost, ...report.details };
    if (report.dataLost) this.log.warn(fields, report.summary);
    else this.log.info(fields, report.summary);
  }

  protected async _stats(): Promise<EngineStats> {
    const figures: Record<string, number> = {};
    const levels = this.versions.current.levels;
    let tableBytes = 0;
    let bloomUseful = 0;
    let bloomFalsePositive = 0;
    for (let level = 0; level < levels.length; level++) {
      const bytes = levelBytes(levels[level]!);
      tableBytes += bytes;
      figures[`level${level}_files`] = levels[level]!.length;
      figures[`level${level}_bytes`] = bytes;
      for (const table of levels[level]!) {
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
      flush_ms: Math.round(this.flushMs),
      compaction_ms: Math.round(this.compactionMs),
      compactions: this.compactionCount,
      compaction_trivial_moves: this.trivialMoveCount,
      compaction_backlog_bytes: this.picker.backlogBytes(this.versions.current),
      write_stalls: this.writeStalls,
      write_stalls_level0: this.writeStallsLevel0,
      write_stall_ms: Math.round(this.writeStallMs),
      bloom_useful: bloomUseful,
      bloom_false_positive: bloomFalsePositive,
      block_cache_bytes: this.cache.usedBytes,
      block_cache_hits: this.cache.hits,
      block_cache_misses: this.cache.misses,
      block_cache_hit_ratio: this.cache.hits + this.cache.misses === 0 ? 0 : this.cache.hits / (this.cache.hits + this.cache.misses),
      ...walRecoveryFigures(this.walRecoveryReport),
      health_state: this.condition.figure,
    });
    return { diskBytes: tableBytes + walBytes, figures };
  }

  /**
   * Checks the tree's invariants (check-levels.ts) and throws AssertionError on
   * the first violation. Reads every table: for tests, not for production
   * paths. Waits for background work first.
   */
  async checkLevels(): Promise<void> {
    await this.waitForBackgroundIdle();
    const version = this.versions.ref(this.versions.current);
    try {
      await checkLevels(this.vfs, this.dir, version, this.versions.logNumber);
    } finally {
      this.versions.unref(version);
    }
  }

  protected async _close(): Promise<void> {
    this.closing = true;
    this.versions.closing = true;
    this.scheduler.cancelRetry();
    await this.waitForBackgroundIdle();
    const errors: unknown[] = [];
    if (this.wal !== undefined) await this.wal.close().catch((error: unknown) => errors.push(error));
    this.wal = undefined;
    await this.closeTables();
    this.cache.clear();
    // A background failure no write may have seen yet still reaches a caller.
    const refusal = this.condition.refusal;
    if (refusal !== undefined) throw refusal;
    if (errors.length > 0) throw errors[0];
  }

  /** Stops the job runners, closes every table of the current version and waits for pending deletions; the files stay. */
  private async closeTables(): Promise<void> {
    await this.flushRunner.close();
    await this.compactionRunner.close();
    this.versions.closing = true;
    for (const tables of this.versions.current.levels) for (const table of tables) await table.reader.close().catch(() => undefined);
    await this.versions.settleDeletes();
  }

  private path(name: string): string {
    return joinPath(this.dir, name);
  }
}

/** Stats figures about the last WAL recovery. */
function walRecoveryFigures(report: WalRecoveryReport | undefined): Record<string, number> {
  const discarded = report?.discarded ?? [];
  const sum = (pick: (discard: WalRecoveryReport['discarded'][number]) => number): number => discarded.reduce((total, discard) => total + pick(discard), 0);
  return {
    wal_recovery_operations_replayed: report?.operationsReplayed ?? 0,
    wal_torn_tails_recovered: discarded.filter((discard) => discard.kind === 'torn-tail').length,
    wal_recovery_discarded_bytes: sum((discard) => discard.bytes),
    wal_recovery_discarded_records: sum((discard) => discard.records),
    wal_recovery_discarded_operations: sum((discard) => discard.operations),
  };
}
