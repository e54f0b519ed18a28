/**
 * The `leveldb` engine: the real LevelDB through `classic-level` (the
 * maintained native binding of the Level project). Every `_write` is one
 * LevelDB WriteBatch, so our group commit (src/storage/engine.ts) turns N
 * concurrent writers into one `sync: true` batch and one fsync of LevelDB's log.
 *
 * Beyond LevelDB itself (see leveldb-files.ts for the directory checks):
 *   - Open never starts a new, empty store over existing data: LevelDB may
 *     create a store only in a directory holding none of its data files.
 *   - Point reads use classic-level's `getSync`: the lookup runs on the
 *     calling thread, saving the thread-pool round trip (tens of µs) that
 *     dominates a cached read. A read that misses the OS page cache blocks the
 *     event loop for that disk read; a point lookup reads at most one block per
 *     level (plus, when a table is not yet open, its index and filter).
 *   - A row cache (src/storage/row-cache.ts) answers repeated point reads of
 *     small values without the native call; writes forget the keys they touch.
 *   - Range scans report a corrupted block instead of skipping it (see
 *     `_range`).
 *
 * Limits of LevelDB as classic-level opens it: reads do not verify block
 * checksums (`verify_checksums` is not exposed), so a flipped byte that
 * leaves a block parseable can be returned as data; a damaged block that does
 * not decode is reported as IMPULSE_ERR_ENGINE_CORRUPTION. Without paranoid
 * checks, LevelDB drops damaged log records at open and says so only in its
 * LOG file.
 */
import { mkdir } from 'node:fs/promises';
import { ClassicLevel } from 'classic-level';
import { ImpulseError } from '../../errors.js';
import { assert } from '../../util/assert.js';
import { Engine, type EngineOptions, type EngineStats, type Entry, type KeyRange, type WriteOp } from '../engine.js';
import { diskUsageBytes } from '../disk-usage.js';
import { RowCache, type RowCacheBudget, rowKey } from '../row-cache.js';
import { createIfMissingFor, translateLevelError, translateOpenError } from './leveldb-files.js';

export interface LevelDbOptions extends EngineOptions {
  /** LevelDB's block cache, bytes. Default 8 MiB (LevelDB's own default). */
  readonly cacheBytes?: number;
  /** LevelDB's memtable size, bytes. Default 4 MiB (LevelDB's own default). */
  readonly writeBufferBytes?: number;
  /** The row cache in front of point reads (src/storage/row-cache.ts), bytes of its own; 0 turns it off. Default 1 MiB. Not with `rowCache`. */
  readonly rowCacheBytes?: number;
  /** A row cache budget shared with other engines (the node's, `--row-cache-mib`), instead of `rowCacheBytes` of its own. */
  readonly rowCache?: RowCacheBudget;
}

type Db = ClassicLevel<Buffer, Buffer>;
type LevelIterator = ReturnType<Db['iterator']>;

/**
 * A scan's native iterator returns early once it has read this many bytes
 * (then the scan asks again). Larger than classic-level's 16 KiB default, so a
 * page of small entries is one thread-pool round trip, not dozens; the page's
 * entries are all held in memory anyway (bounded by the range limit).
 */
const SCAN_READ_AHEAD_BYTES = 1024 * 1024;

/** The smallest key there is: keys are at least one byte, so every key is >= it. */
const LOWEST_KEY = Buffer.from([0]);

export class LevelDbEngine extends Engine {
  readonly name = 'leveldb';
  readonly supports = { durable: true, cheapKeyCount: false } as const;

  private readonly dataDir: string;
  private db: Db | undefined;
  private readonly rowCache: RowCache;

  constructor(private readonly options: LevelDbOptions) {
    super(options);
    this.rowCache = new RowCache(options.rowCache !== undefined ? { budget: options.rowCache } : options.rowCacheBytes !== undefined ? { bytesMax: options.rowCacheBytes } : {});
    if (!options.dataDir) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'the leveldb engine needs a data directory');
    this.dataDir = options.dataDir;
  }

  protected async _open(): Promise<void> {
    const createIfMissing = await createIfMissingFor(this.dataDir);
    if (createIfMissing) await mkdir(this.dataDir, { recursive: true });
    const db: Db = new ClassicLevel<Buffer, Buffer>(this.dataDir, {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
      createIfMissing,
      cacheSize: this.options.cacheBytes ?? 8 * 1024 * 1024,
      writeBufferSize: this.options.writeBufferBytes ?? 4 * 1024 * 1024,
    });
    try {
      await db.open();
    } catch (error) {
      throw await translateOpenError(error, this.dataDir);
    }
    this.db = db;
  }

  protected async _get(key: Buffer): Promise<Buffer | undefined> {
    return this._getSync(key);
  }

  protected override _getSync(key: Buffer): Buffer | undefined {
    const keyString = rowKey(key);
    const cached = this.rowCache.lookup(keyString);
    if (cached !== undefined) return cached ?? undefined;
    let value: Buffer | undefined;
    try {
      value = this.requireDb().getSync(key) ?? undefined;
    } catch (error) {
      throw translateLevelError(error, 'LevelDB get');
    }
    this.rowCache.remember(keyString, value);
    return value;
  }

  protected async _write(ops: readonly WriteOp[], sync: boolean): Promise<void> {
    const batch = ops.map((op) =>
      op.type === 'put'
        ? { type: 'put' as const, key: asBuffer(op.key), value: asBuffer(op.value) }
        : { type: 'del' as const, key: asBuffer(op.key) },
    );
    const db = this.requireDb();
    this.rowCache.beginWrite(batch.map((op) => op.key));
    try {
      await db.batch(batch, { sync });
    } catch (error) {
      throw translateLevelError(error, 'LevelDB write');
    } finally {
      this.rowCache.endWrite();
    }
  }

  /**
   * LevelDB's iterator steps over a block it cannot decode, remembering the
   * error in its status; classic-level reports that status only when the
   * native iteration ENDS, not when a read returns because it filled the
   * requested count, and abstract-level stops asking at the limit. So a page
   * that fills its limit would skip a damaged block silently (issue #10). The
   * scan therefore reads without a native limit and, when the page is full,
   * ends the native iteration on purpose: it seeks below the range's lower
   * bound (always present: the lowest key stands in for none), where the
   * iterator is exhausted at once and reports its status.
   */
  protected async _range(range: KeyRange, reverse: boolean, limit: number): Promise<Entry[]> {
    const iterator = this.requireDb().iterator({ ...levelBounds(range), reverse, highWaterMarkBytes: SCAN_READ_AHEAD_BYTES });
    try {
      const entries: Entry[] = [];
      while (entries.length < limit) {
        const pairs = await iterator.nextv(limit - entries.length);
        if (pairs.length === 0) break; // the native iteration ended and reported its status
        for (const [key, value] of pairs) entries.push({ key, value });
      }
      if (entries.length === limit) await endIteration(iterator);
      return entries;
    } catch (error) {
      throw translateLevelError(error, 'LevelDB range');
    } finally {
      await iterator.close();
    }
  }

  protected async _stats(): Promise<EngineStats> {
    const db = this.requireDb();
    const figures: Record<string, number> = {};
    // "leveldb.num-files-at-level<N>" is cheap (in-memory version set).
    for (let level = 0; level < 7; level++) {
      const files = Number(db.getProperty(`leveldb.num-files-at-level${level}`));
      if (Number.isFinite(files)) figures[`level${level}_files`] = files;
    }
    return { diskBytes: await diskUsageBytes(this.dataDir), figures: { ...figures, ...this.rowCache.figures() } };
  }

  protected async _close(): Promise<void> {
    const db = this.db;
    this.db = undefined;
    this.rowCache.clear();
    await db?.close();
  }

  private requireDb(): Db {
    if (!this.db) throw new ImpulseError('IMPULSE_ERR_ENGINE_NOT_OPEN', 'LevelDB is not open');
    return this.db;
  }
}

/** The range as classic-level bounds, with a lower bound always present (see `_range`). */
function levelBounds(range: KeyRange): { gt?: Buffer; gte?: Buffer; lt?: Buffer; lte?: Buffer } {
  const bounds: { gt?: Buffer; gte?: Buffer; lt?: Buffer; lte?: Buffer } = {};
  // An empty inclusive lower bound admits every key, as LOWEST_KEY does, but seeking below it is impossible.
  if (range.lower === undefined || (range.lower.length === 0 && range.lowerInclusive)) bounds.gte = LOWEST_KEY;
  else bounds[range.lowerInclusive ? 'gte' : 'gt'] = range.lower;
  if (range.upper !== undefined) bounds[range.upperInclusive ? 'lte' : 'lt'] = range.upper;
  return bounds;
}

/**
 * Ends the native iteration so it reports a remembered error: the empty key
 * lies below every lower bound `levelBounds` produces, so after seeking there
 * the iterator is exhausted at once and the read rejects with the error, if any.
 */
async function endIteration(iterator: LevelIterator): Promise<void> {
  iterator.seek(Buffer.alloc(0));
  const after = await iterator.nextv(1);
  assert(after.length === 0, 'a LevelDB iterator seeked below its lower bound returned entries', after.length);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
