/**
 * The `btree` engine: an on-disk B+tree in one file, crash-safe by copy-on-write
 * shadow paging with two alternating meta pages (the LMDB / bbolt design).
 *
 * How to use: `new BTreeEngine({ dataDir, vfs?, pageBytes?, cacheBytesMax? })`,
 * then the `Engine` API. `checkTree()` verifies the committed tree on disk.
 *
 * Where things are: page.ts (page format), meta.ts (meta pages),
 * recovery.ts (choosing the version at open, telling a crash from damage),
 * pager.ts (verified page reads, coalesced writes, the cache), freelist.ts
 * (free space), versions.ts (reader pins), cursor.ts (point reads, scans),
 * node.ts (split, merge, redistribute), txn.ts (the write transaction and its
 * commit), check.ts (`checkTree`). This file holds the lifecycle, the
 * committed version, and the failure handling of writes.
 *
 * How a write commits (one `_write` call = one transaction = one commit; the
 * base class's group commit hands every write queued meanwhile to one call):
 *
 *   1. Every page the transaction changes is first copied to a free page
 *      ("touch"); the old page is recorded as freed by this transaction.
 *      Pages are never modified in place once committed.
 *   2. The new pages, overflow runs and a fresh copy of the free list are
 *      written.
 *   3. Both copies of a meta slot (root, free-list head, counts, the BASE =
 *      the newest synced commit, and the proof of the pages written since
 *      it: commit-proof.ts) are written with one write, to the slot that
 *      does not hold the base. A synced write then fsyncs once and is
 *      acknowledged; that commit becomes the base.
 *
 * After a crash opening takes the newest intact meta page and proves its
 * pages; when they are not all on disk (its fsync never returned) it opens
 * the base, which is intact: no commit writes the base's meta slot, and a
 * page freed by commit T is reused only once a commit >= T is synced
 * (`durableTxn` below, like a reader pin). A slot damaged in both copies is
 * damage to synced data and opening refuses (recovery.ts). Unsynced commits
 * are bounded (UNSYNCED_FREED_PAGES_MAX, UNSYNCED_PROOF_PAGES_MAX); a clean close
 * syncs and seals the newest commit.
 *
 * Failure handling: an I/O error before the meta write rolls the transaction
 * back in memory (the disk still holds the previous version) and the engine
 * stays usable. An error during or after the meta write (its fsync included)
 * leaves it unknown which version is on disk, so the engine refuses further
 * writes (reads still serve the last version it knows) until it is reopened.
 */
import { ImpulseError } from '../../errors.js';
import { assert } from '../../util/assert.js';
import { corruption } from '../../util/corruption.js';
import { joinPath, type Vfs } from '../../vfs/vfs.js';
import { NodeVfs } from '../../vfs/node-vfs.js';
import { Engine, type EngineHealth, type EngineLog, type EngineOptions, type EngineStats, type Entry, type KeyRange, READ_NOT_SYNC, type RecoveryReport, type SyncRead, type WriteOp } from '../engine.js';
import { RowCache, type RowCacheBudget, rowKey } from '../row-cache.js';
import { checkVersion, type BTreeCheckReport } from './check.js';
import { TreeReader } from './cursor.js';
import { FreeSpace } from './freelist.js';
import { encodeMetaPage, encodeMetaSlot, metaPage, slotOf, type Meta } from './meta.js';
import { PageCache } from './page-cache.js';
import { META_PAGES, pageCorruption, PageGeometry } from './page.js';
import { Pager } from './pager.js';
import { proveVersion, UnsyncedPages } from './commit-proof.js';
import { BTREE_RECOVERY_MODES, chooseMeta, proveChoice, type BTreeRecoveryMode, type MetaChoice } from './recovery.js';
import { WriteTxn } from './txn.js';
import { VersionPins } from './versions.js';

export type { BTreeCheckReport } from './check.js';
export type { BTreeRecoveryMode } from './recovery.js';

export const BTREE_FILE_NAME = 'btree.db';
export const DEFAULT_PAGE_BYTES = 4096;
export const DEFAULT_CACHE_BYTES_MAX = 128 * 1024 * 1024;

export interface BTreeEngineOptions extends EngineOptions {
  /** File-system seam; default the real file system (`NodeVfs`). */
  readonly vfs?: Vfs;
  /** Page size for a NEW file (power of two, 512..32768, default 4096). An existing file keeps its own. */
  readonly pageBytes?: number;
  /** Byte budget of the page cache. Default 128 MiB. */
  readonly cacheBytesMax?: number;
  /** The row cache in front of point reads (src/storage/row-cache.ts), bytes of its own; 0 turns it off. Default 1 MiB. Not with `rowCache`. */
  readonly rowCacheBytes?: number;
  /** A row cache budget shared with other engines (the node's, `--row-cache-mib`), instead of `rowCacheBytes` of its own. */
  readonly rowCache?: RowCacheBudget;
  /**
   * What opening does when both copies of a meta slot are damaged (recovery.ts):
   * 'refuse' (default) stops with IMPULSE_ERR_ENGINE_CORRUPTION; 'previous-commit'
   * starts from the other slot's version after verifying its tree, and reports it.
   */
  readonly recovery?: BTreeRecoveryMode;
  /** Where open-time recovery reports what it found and did (pino's `warn`/`info` fit). Default: nowhere. */
  readonly log?: BTreeLog;
  /** TEST-ONLY deliberately broken variants (see `BTreeMutations`); production code never sets them. */
  readonly mutations?: BTreeMutations;
}

/**
 * Deliberately broken variants of the engine, for tests that must prove they
 * catch the bug (btree-snapshot.test.ts). All default to off.
 */
export interface BTreeMutations {
  /** Hand out pages freed by a commit from the next commit on, even while a reader still pins a version that uses them. */
  readonly reusePinnedPages?: boolean;
  /** Hand out pages freed by unsynced commits before a sync made a later version durable (the durable base's pages get overwritten). */
  readonly reuseUnsyncedFreedPages?: boolean;
  /** Open the newest meta page without proving its commit's pages are on disk. */
  readonly trustNewestMeta?: boolean;
  /** Write commit T's meta page to slot T % 2, even over the durable base's. */
  readonly metaSlotByTxn?: boolean;
}

/**
 * Bounds on unsynced commits: past either, a commit is synced even when no
 * write asked for it. Pages of the durable base freed since the last sync
 * cannot be reused (opening may fall back to the base), so the file grows by
 * up to UNSYNCED_FREED_PAGES_MAX pages (pages written and freed again since
 * the sync are reused at once, freelist.ts); the proof set (pages written since the last
 * sync that the version still reaches) is kept in memory and walked by
 * opening after a crash, so it is bounded by UNSYNCED_PROOF_PAGES_MAX.
 */
const UNSYNCED_FREED_PAGES_MAX = 256;
const UNSYNCED_PROOF_PAGES_MAX = 4096;

/** The logging the engine does: open-time recovery only. */
export type BTreeLog = EngineLog;

/** What the last open found and did about the meta pages (also in stats as figures). */
export interface BTreeRecoveryReport {
  /** The commit the engine opened. */
  readonly openedTxn: number;
  /** Meta page copies rewritten because they were torn, damaged or stale. */
  readonly metaPagesRepaired: number;
  /** Set when recovery 'previous-commit' started from the older slot; says what was damaged. */
  readonly rolledBack?: { readonly damagedSlot: number; readonly reasons: readonly string[] };
  /** Set when the newest commit's pages were not all on disk (a crash before its fsync): that commit, not opened. */
  readonly discardedUnsyncedTxn?: number;
  /** One sentence per finding, as logged. */
  readonly notes: readonly string[];
}

/** What exists only while the engine is open. */
interface OpenState {
  readonly pager: Pager;
  readonly freeSpace: FreeSpace;
  readonly reader: TreeReader;
  /** The newest committed version: what reads see and the next transaction builds on. */
  committed: Meta;
  /** The newest synced commit: its pages are never reused before a later one is synced, its meta slot never written. */
  durableTxn: number;
  /** The meta slot holding `durableTxn`; commits write the other one. */
  durableSlot: number;
  /** Commits since `durableTxn`. */
  unsyncedCommits: number;
  /** Pages of `durableTxn`'s version freed by the commits since (not reusable until the next sync). */
  unsyncedFreedPages: number;
  /** The committed version's pages written since `durableTxn` (commit-proof.ts). */
  readonly unsynced: UnsyncedPages;
}

export class BTreeEngine extends Engine {
  readonly name = 'btree';
  readonly supports = { durable: true, cheapKeyCount: true } as const;

  private readonly vfs: Vfs;
  private readonly dataDir: string;
  private readonly path: string;
  private readonly requestedPageBytes: number;
  private readonly cache: PageCache;
  /** Point reads' answers (row-cache.ts): a hit skips the descent and the value's copy. */
  private readonly rowCache: RowCache;
  private readonly recoveryMode: BTreeRecoveryMode;
  private readonly log: BTreeLog | undefined;
  private readonly mutations: BTreeMutations;
  private readonly pins = new VersionPins();
  private lastRecovery: BTreeRecoveryReport | undefined;
  private state: OpenState | undefined;
  /** Set when a commit failed after its meta write began: writes are refused until reopen. */
  private poisoned: unknown;
  private commits = 0;
  private pagesWritten = 0;
  /** Commits (and flushes) that ended with an fsync. */
  private syncs = 0;

  constructor(options: BTreeEngineOptions) {
    super(options);
    if (options.dataDir === undefined || options.dataDir.length === 0) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'the btree engine needs a data directory');
    }
    this.vfs = options.vfs ?? new NodeVfs();
    this.dataDir = options.dataDir;
    this.path = joinPath(options.dataDir, BTREE_FILE_NAME);
    // Validated now (PageGeometry throws a config error), not at open.
    this.requestedPageBytes = new PageGeometry(options.pageBytes ?? DEFAULT_PAGE_BYTES).pageBytes;
    const cacheBytesMax = options.cacheBytesMax ?? DEFAULT_CACHE_BYTES_MAX;
    if (!Number.isSafeInteger(cacheBytesMax) || cacheBytesMax < 0) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `btree cacheBytesMax must be a non-negative integer, got ${String(cacheBytesMax)}`);
    }
    this.cache = new PageCache(cacheBytesMax);
    this.rowCache = new RowCache(options.rowCache !== undefined ? { budget: options.rowCache } : options.rowCacheBytes !== undefined ? { bytesMax: options.rowCacheBytes } : {});
    this.recoveryMode = options.recovery ?? 'refuse';
    if (!BTREE_RECOVERY_MODES.includes(this.recoveryMode)) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `btree recovery must be one of ${BTREE_RECOVERY_MODES.join(', ')}, got ${JSON.stringify(this.recoveryMode)}`);
    }
    this.log = options.log;
    this.mutations = options.mutations ?? {};
    // The tree's entries must fit inline limits that depend on the page size; keys longer than
    // keyInlineMax and values longer than valueInlineMax go to overflow runs, so any key up to
    // 64 KiB (u16 length) is storable.
    if (this.limits.keyBytesMax > 0xffff) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `the btree engine stores keys of at most 65535 bytes; keyBytesMax is ${this.limits.keyBytesMax}`);
    }
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /**
   * Opens (or creates) the file and chooses the version to serve
   * (recovery.ts): refuses on damage beyond what a crash can do, rewrites torn
   * or stale meta copies, and fsyncs once before anything is written over the
   * version it found, since that version's last meta write may not have been
   * synced (a process that died between its meta write and fsync).
   */
  protected async _open(): Promise<void> {
    await this.vfs.mkdir(this.dataDir);
    if (!(await this.vfs.exists(this.path))) {
      await this.refuseOverForeignFiles();
      await this.createFile();
    }
    const file = await this.vfs.open(this.path);
    try {
      const found = await chooseMeta(file, this.path, this.requestedPageBytes, this.recoveryMode);
      const pager = new Pager(this.path, file, new PageGeometry(found.meta.pageBytes), this.cache, Math.max(found.meta.pageCount, found.other?.pageCount ?? 0));
      const choice = found.rollback !== undefined || this.mutations.trustNewestMeta === true ? found : await proveChoice(pager, found);
      const meta = choice.meta;
      pager.readablePages = meta.pageCount;
      const size = await file.size();
      if (size < meta.pageCount * meta.pageBytes) {
        throw pageCorruption(this.path, Math.floor(size / meta.pageBytes), `is missing: the file has ${size} bytes, the tree needs ${meta.pageCount} pages`);
      }
      if (choice.rollback !== undefined) await this.verifyRollback(pager, meta);
      const freeSpace = await FreeSpace.load(pager, meta);
      for (const repair of choice.repairs) await file.write(repair.page * meta.pageBytes, encodeMetaPage(meta.pageBytes, repair.page, repair.meta));
      // From here the opened version is durable: its pages and the repaired meta pages.
      await file.sync();
      this.state = {
        pager,
        freeSpace,
        reader: new TreeReader(pager, this.pins),
        committed: meta,
        durableTxn: meta.txn,
        durableSlot: choice.slot,
        unsyncedCommits: 0,
        unsyncedFreedPages: 0,
        unsynced: new UnsyncedPages(),
      };
      this.report(choice);
    } catch (error) {
      await file.close().catch(() => undefined);
      throw error;
    }
  }

  protected async _close(): Promise<void> {
    const state = this.state;
    this.state = undefined;
    this.cache.clear();
    this.rowCache.clear();
    if (state === undefined) return;
    try {
      if (this.poisoned === undefined) await this.sealOnClose(state);
    } finally {
      await state.pager.file.close();
    }
  }

  /**
   * A clean close syncs what is unsynced and rewrites the newest meta page
   * as its own base (nothing left to prove), synced. Opening then takes
   * damage to that commit's pages for what it is (a corruption error when
   * the page is read) instead of for a commit a crash interrupted (which
   * opening would roll back): see the README, "One fsync per commit".
   */
  private async sealOnClose(state: OpenState): Promise<void> {
    const meta = state.committed;
    if (meta.baseTxn === meta.txn) return;
    const file = state.pager.file;
    if (state.durableTxn < meta.txn) {
      await file.sync();
      this.markDurable(state, 1 - state.durableSlot);
    }
    const sealed: Meta = { ...meta, baseTxn: meta.txn, proofPages: 0, proofDigest: 0 };
    await state.pager.writePages(metaPage(state.durableSlot, 0), encodeMetaSlot(meta.pageBytes, state.durableSlot, sealed));
    await file.sync();
  }

  /**
   * `btree.db` is missing. A directory holding nothing (or only the leftover
   * of an interrupted creation) is a new store; anything else means the
   * database file was lost or this is the wrong directory, and creating an
   * empty store there would hide that.
   */
  private async refuseOverForeignFiles(): Promise<void> {
    const others = (await this.vfs.list(this.dataDir)).filter((name) => name !== BTREE_FILE_NAME + '.init');
    if (others.length > 0) {
      throw corruption(
        'btree',
        this.path,
        `is missing, but ${this.dataDir} holds ${others.slice(0, 5).join(', ')}${others.length > 5 ? ', …' : ''}: refusing to start an empty store over it (restore the file, or give an empty directory)`,
      );
    }
  }

  /**
   * Creates an empty database crash-safely: the meta pages go to a temporary
   * file that is synced and then renamed into place, so `btree.db` either does
   * not exist or is complete.
   */
  private async createFile(): Promise<void> {
    const pageBytes = this.requestedPageBytes;
    const temporary = this.path + '.init';
    const meta: Meta = { txn: 0, pageBytes, root: 0, depth: 0, pageCount: META_PAGES, freeListPage: 0, freeCount: 0, inlineFree: [], keyCount: 0, baseTxn: 0, proofPages: 0, proofDigest: 0 };
    const file = await this.vfs.open(temporary, { create: true, truncate: true });
    try {
      await file.write(0, Buffer.concat([encodeMetaSlot(pageBytes, 0, meta), encodeMetaSlot(pageBytes, 1, meta)]));
      await file.sync();
    } finally {
      await file.close();
    }
    await this.vfs.rename(temporary, this.path);
    await this.vfs.syncDir(this.dataDir);
  }

  /** Recovery 'previous-commit' may start from `meta` only if its whole tree is intact (no page of it overwritten since). */
  private async verifyRollback(pager: Pager, meta: Meta): Promise<void> {
    try {
      await checkVersion(pager, meta);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw corruption('btree', this.path, `recovery 'previous-commit' cannot start from commit ${meta.txn}: its tree does not verify (${reason})`);
    }
  }

  /** Records (stats, `recovery`) and logs what opening found. */
  private report(choice: MetaChoice): void {
    const fields = { engine: 'btree', file: this.path, openedTxn: choice.meta.txn };
    const notes: string[] = [];
    if (choice.discarded !== undefined) {
      const note =
        `btree ${this.path}: commit ${choice.discarded.txn} (${choice.discarded.keyCount} keys) is not all on disk (${choice.discarded.reason}): ` +
        `a crash interrupted it before its fsync, so it was never acknowledged as synced; started from commit ${choice.meta.txn} (${choice.meta.keyCount} keys), the last synced commit`;
      notes.push(note);
      this.log?.warn(fields, note);
    }
    if (choice.rollback !== undefined) {
      const note =
        `btree ${this.path}: both copies of meta slot ${choice.rollback.damagedSlot} were damaged (${choice.rollback.reasons.join('; ')}); ` +
        `recovery 'previous-commit' started from commit ${choice.meta.txn} (${choice.meta.keyCount} keys): commit ${choice.meta.txn + 1}, if it had been acknowledged, is lost`;
      notes.push(note);
      this.log?.warn(fields, note);
    }
    for (const repair of choice.repairs) {
      const note = `btree ${this.path}: rewrote meta page ${repair.page} with commit ${repair.meta.txn}: ${repair.reason}`;
      notes.push(note);
      this.log?.info(fields, note);
    }
    this.lastRecovery = {
      openedTxn: choice.meta.txn,
      metaPagesRepaired: choice.repairs.length,
      ...(choice.discarded !== undefined ? { discardedUnsyncedTxn: choice.discarded.txn } : {}),
      ...(choice.rollback !== undefined ? { rolledBack: choice.rollback } : {}),
      notes,
    };
  }

  /** What the last open found and did about the meta pages; undefined before the engine was opened. */
  get recovery(): BTreeRecoveryReport | undefined {
    return this.lastRecovery;
  }

  /** The same findings in the engine-neutral shape `/status` shows. */
  override get recoveryReport(): RecoveryReport | undefined {
    const found = this.lastRecovery;
    if (found === undefined) return undefined;
    const summary = found.notes.length > 0 ? found.notes.join('; ') : `opened commit ${found.openedTxn}; nothing to repair`;
    return { summary, dataLost: found.rolledBack !== undefined, details: { ...found } };
  }

  /** A commit that failed while writing its meta page leaves writes refused until reopen (`_write`). */
  protected override _health(): EngineHealth {
    if (this.poisoned === undefined) return { state: 'ok' };
    return { state: 'read-only', reason: `btree ${this.path}: a commit failed while writing its meta page; reopen the engine`, code: 'IMPULSE_ERR_ENGINE_IO' };
  }

  // ---- reads -------------------------------------------------------------------------------

  protected _get(key: Buffer): Promise<Buffer | undefined> {
    const state = this.openState();
    const cached = this.rowCache.lookup(rowKey(key));
    if (cached !== undefined) return Promise.resolve(cached ?? undefined);
    return state.reader.get(state.committed, key); // read over awaits: not remembered (a write may commit meanwhile)
  }

  protected override _getSync(key: Buffer): SyncRead {
    return this.readSync(rowKey(key), key);
  }

  protected override _getSyncLatin1(keyLatin1: string): SyncRead {
    return this.readSync(keyLatin1, undefined);
  }

  /** The row cache's answer for `keyString`, else the tree's for its bytes (`key`, made from the string on a miss when not given). */
  private readSync(keyString: string, key: Buffer | undefined): SyncRead {
    const state = this.openState();
    const cached = this.rowCache.lookup(keyString);
    if (cached !== undefined) return cached ?? undefined;
    const value = state.reader.getSync(state.committed, key ?? Buffer.from(keyString, 'latin1'));
    if (value !== READ_NOT_SYNC) this.rowCache.remember(keyString, value);
    return value;
  }

  protected async _range(range: KeyRange, reverse: boolean, limit: number): Promise<Entry[]> {
    const state = this.openState();
    return state.reader.range(state.committed, range, reverse, limit);
  }

  // ---- writes ------------------------------------------------------------------------------

  protected async _write(ops: readonly WriteOp[], sync: boolean): Promise<void> {
    if (this.poisoned !== undefined) {
      throw new ImpulseError('IMPULSE_ERR_ENGINE_IO', `btree ${this.path}: an earlier commit failed while writing its meta page; reopen the engine`, {
        cause: this.poisoned,
      });
    }
    const state = this.openState();
    const reuse = {
      oldestPinned: this.mutations.reusePinnedPages === true ? Infinity : this.pins.oldest(),
      durableTxn: this.mutations.reuseUnsyncedFreedPages === true ? Infinity : state.durableTxn,
    };
    const txn = new WriteTxn(state.pager, state.freeSpace, state.committed, reuse, { baseTxn: state.durableTxn, unsynced: state.unsynced });
    this.rowCache.beginWrite(ops.map((op) => op.key));
    const syncNow = sync || state.unsyncedFreedPages >= UNSYNCED_FREED_PAGES_MAX || state.unsynced.size >= UNSYNCED_PROOF_PAGES_MAX;
    let metaWriteStarted = false;
    try {
      for (const op of ops) {
        if (op.type === 'put') await txn.put(Buffer.from(op.key), op.value);
        else await txn.delete(Buffer.from(op.key.buffer, op.key.byteOffset, op.key.byteLength));
      }
      const slot = this.mutations.metaSlotByTxn === true ? slotOf(txn.id) : 1 - state.durableSlot;
      const result = await txn.commit({ sync: syncNow, slot }, () => {
        metaWriteStarted = true;
      });
      if (result !== undefined) {
        // Committed: install the new version.
        assert(result.meta.txn === state.committed.txn + 1, 'commits out of order', state.committed.txn, result.meta.txn);
        state.committed = result.meta;
        for (const view of result.views) this.cache.put(view);
        this.commits++;
        this.pagesWritten += result.pagesWritten;
        if (syncNow) this.markDurable(state, slot);
        else {
          state.unsyncedCommits++;
          state.unsyncedFreedPages += result.basePagesFreed;
        }
      } else if (sync && state.durableTxn < state.committed.txn) {
        // Nothing to commit, but a synced write makes every earlier write durable (the Engine contract).
        metaWriteStarted = true;
        await state.pager.file.sync();
        state.unsynced.clear();
        this.markDurable(state, 1 - state.durableSlot);
      }
    } catch (error) {
      txn.abort();
      if (metaWriteStarted) this.poisoned = error;
      throw error;
    } finally {
      state.pager.readablePages = state.committed.pageCount;
      this.rowCache.endWrite();
    }
  }

  /** The committed version, whose meta sits in `slot`, is synced: its base for the next commits. */
  private markDurable(state: OpenState, slot: number): void {
    this.syncs++;
    state.durableTxn = state.committed.txn;
    state.durableSlot = slot;
    state.unsyncedCommits = 0;
    state.unsyncedFreedPages = 0;
  }

  // ---- stats and checking ------------------------------------------------------------------

  protected async _stats(): Promise<EngineStats> {
    const state = this.openState();
    const { pager, committed: meta } = state;
    const fileBytes = await pager.file.size();
    return {
      keyCount: meta.keyCount,
      diskBytes: fileBytes,
      figures: {
        btree_depth: meta.depth,
        btree_page_bytes: meta.pageBytes,
        btree_pages_total: meta.pageCount,
        btree_pages_in_use: meta.pageCount - meta.freeCount,
        btree_pages_free: meta.freeCount,
        btree_cache_bytes: this.cache.bytes,
        btree_cache_bytes_max: this.cache.bytesMax,
        btree_cache_pages: this.cache.size,
        btree_cache_hits: this.cache.hits,
        btree_cache_misses: this.cache.misses,
        btree_cache_hit_ratio: this.cache.hitRatio,
        ...this.rowCache.figures(),
        btree_file_bytes: fileBytes,
        btree_commits: this.commits,
        btree_pages_written: this.pagesWritten,
        btree_write_calls: pager.writeCalls,
        btree_txn_id: meta.txn,
        btree_readers: this.pins.count,
        btree_recovery_meta_pages_repaired: this.lastRecovery?.metaPagesRepaired ?? 0,
        btree_recovery_rolled_back: this.lastRecovery?.rolledBack !== undefined ? 1 : 0,
        btree_recovery_discarded_unsynced: this.lastRecovery?.discardedUnsyncedTxn !== undefined ? 1 : 0,
        btree_unsynced_commits: state.unsyncedCommits,
        btree_syncs: this.syncs,
      },
    };
  }

  /**
   * Verifies the committed tree as it is on disk (see check.ts). Throws an
   * `AssertionError` describing the first violation, or an
   * IMPULSE_ERR_ENGINE_CORRUPTION error for a page that fails its checksum.
   * Runs while the engine is open; pins the version it checks.
   */
  async checkTree(): Promise<BTreeCheckReport> {
    const { pager, committed } = this.openState();
    return this.pins.pinned(committed.txn, async () => {
      const report = await checkVersion(pager, committed);
      // The proof the meta page carries must match the pages as written (the commit's bookkeeping of them).
      const unproven = await proveVersion(pager, committed);
      assert(unproven === undefined, `commit ${committed.txn} does not prove its own pages: ${unproven}`);
      return report;
    });
  }

  private openState(): OpenState {
    assert(this.state !== undefined, 'btree used while not open');
    return this.state;
  }
}
