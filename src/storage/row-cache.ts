/**
 * A bounded cache of point-read results (value or absence, by key) in front
 * of an engine whose point read costs far more than a hash lookup — RocksDB's
 * `row_cache`. The leveldb engine uses it: classic-level's `getSync` is a
 * native call of ~3 µs for a key in LevelDB's memtable, against well under
 * 1 µs for a hit here, on a GET whose whole server-side cost is ~20–50 µs.
 *
 * Consistency. The engine's reads run on the JavaScript thread (a miss reads
 * the engine and `remember`s the answer in the same synchronous step); its
 * writes run elsewhere (LevelDB's batch in the thread pool) between
 * `beginWrite` and `endWrite`. `beginWrite` forgets every key the write
 * touches, and nothing is remembered while any write is in flight, so an
 * answer read before or during a write is never served after it: a key the
 * write touches is read from the engine until the write has ended. Keys the
 * write does not touch keep their entries, which stay true. The engine must
 * route EVERY change of its contents through begin/endWrite (or `clear`).
 *
 * Values are shared: a hit returns the very Buffer an earlier read returned,
 * so callers must not modify what a read gives them (the `Engine` contract).
 *
 * Bounds: a `RowCacheBudget` holds the bytes (keys, values and a fixed
 * per-entry overhead) of every cache drawing on it — one per engine by
 * default, or one for the whole node (`--row-cache-mib`: a member with a
 * thousand shards holds one budget, not a thousand). Values above
 * `valueBytesMax` are not cached; when the budget is full the oldest entry of
 * ANY cache on it goes first (insertion order, FIFO: no bookkeeping on a hit).
 */
import { assert } from '../util/assert.js';

/** Map entry, key string and Buffer object headers, roughly; keeps many tiny entries bounded too. */
const ENTRY_OVERHEAD_BYTES = 96;
/** Default budget of a cache given none: 1 MiB of its own. */
const OWN_BUDGET_BYTES = 1024 * 1024;

/** One cached answer; `live` turns false once its cache forgot or evicted it (the budget's queue may still hold it). */
interface Row {
  readonly owner: RowCache;
  readonly key: string;
  readonly value: Buffer | null;
  readonly bytes: number;
  live: boolean;
}

/**
 * The bytes several row caches share, and the order their entries go in.
 * Bounded: at most `bytesMax` bytes of live entries, and a queue of at most
 * twice the live entries plus 1,024 (entries a write made a cache forget are
 * dropped from the queue lazily, in one pass when they pile up).
 */
export class RowCacheBudget {
  /** Bytes of live entries, every cache on this budget together. */
  bytes = 0;
  private live = 0;
  /** Every remembered row in insertion order, from `head`; dead ones are skipped. */
  private queue: Row[] = [];
  private head = 0;

  /** `bytesMax`: bytes the caches' entries may take together; 0 disables every cache on it. */
  constructor(readonly bytesMax: number) {
    assert(Number.isSafeInteger(bytesMax) && bytesMax >= 0, 'row cache: bytesMax must be a non-negative integer', bytesMax);
  }

  /** Entries live on this budget, every cache together. */
  get entries(): number {
    return this.live;
  }

  /** Takes `row` in, evicting the oldest live rows (of any cache) until the budget holds. */
  admit(row: Row): void {
    this.queue.push(row);
    this.live++;
    this.bytes += row.bytes;
    while (this.bytes > this.bytesMax && this.head < this.queue.length) {
      const oldest = this.queue[this.head++]!;
      if (oldest.live) oldest.owner.evict(oldest);
    }
    this.compact();
  }

  /** A row stopped being live (its cache forgot or evicted it). */
  release(row: Row): void {
    this.live--;
    this.bytes -= row.bytes;
  }

  /** Drops the queue's consumed head and, when dead rows pile up, the dead rows. */
  private compact(): void {
    const queued = this.queue.length - this.head;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (queued > 2 * this.live + 1024) {
      this.queue = this.queue.slice(this.head).filter((row) => row.live);
      this.head = 0;
    }
  }
}

export interface RowCacheOptions {
  /** The budget this cache draws on (shared by the node's engines). Absent: a budget of its own of `bytesMax`. */
  readonly budget?: RowCacheBudget;
  /** Bytes of a budget of its own (no `budget` given). 0 disables the cache. Default 1 MiB. */
  readonly bytesMax?: number;
  /** Larger values are read from the engine every time: the cache is for the small hot values point reads serve most. Default 16 KiB. */
  readonly valueBytesMax?: number;
}

export class RowCache {
  /** latin1 key → the cached answer (value, or null for a key known to be absent). */
  private readonly rows = new Map<string, Row>();
  /** Bytes of this cache's own live entries. */
  private bytes = 0;
  private writesInFlight = 0;
  private readonly budget: RowCacheBudget;
  private readonly valueBytesMax: number;
  hits = 0;
  misses = 0;

  constructor(options: RowCacheOptions = {}) {
    assert(options.budget === undefined || options.bytesMax === undefined, 'row cache: give a shared budget or a size of its own, not both');
    this.budget = options.budget ?? new RowCacheBudget(options.bytesMax ?? OWN_BUDGET_BYTES);
    this.valueBytesMax = options.valueBytesMax ?? 16 * 1024;
  }

  /** The cached answer for `keyString` (`rowKey`): a value, null (absent), or undefined when not cached (then read the engine and `remember`). */
  lookup(keyString: string): Buffer | null | undefined {
    const row = this.rows.get(keyString);
    if (row === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    return row.value;
  }

  /** Caches what the engine just answered for `keyString` (undefined: absent). Call in the same synchronous step as the read. */
  remember(keyString: string, value: Buffer | undefined): void {
    if (this.writesInFlight > 0 || this.budget.bytesMax === 0) return;
    if (value !== undefined && value.length > this.valueBytesMax) return;
    if (this.rows.has(keyString)) return;
    const row: Row = { owner: this, key: keyString, value: value ?? null, bytes: keyString.length + (value?.length ?? 0) + ENTRY_OVERHEAD_BYTES, live: true };
    if (row.bytes > this.budget.bytesMax) return;
    this.rows.set(keyString, row);
    this.bytes += row.bytes;
    this.budget.admit(row);
  }

  /** A write of `keys` starts: they are forgotten, and nothing is cached until every write in flight has ended. */
  beginWrite(keys: Iterable<Uint8Array>): void {
    this.writesInFlight++;
    for (const key of keys) {
      const row = this.rows.get(rowKey(key));
      if (row !== undefined) this.evict(row);
    }
  }

  /** A write has ended (applied or failed: either way its keys were forgotten at its start). */
  endWrite(): void {
    assert(this.writesInFlight > 0, 'row cache: endWrite without beginWrite');
    this.writesInFlight--;
  }

  /** Forgets everything (the engine closed, or its contents changed wholesale). */
  clear(): void {
    for (const row of this.rows.values()) this.evict(row);
  }

  /** Figures for the engine's stats: this cache's own, and its budget's (node-wide when shared). */
  figures(): Record<string, number> {
    return {
      row_cache_hits: this.hits, row_cache_misses: this.misses, row_cache_bytes: this.bytes, row_cache_entries: this.rows.size,
      row_cache_budget_bytes: this.budget.bytes, row_cache_budget_bytes_max: this.budget.bytesMax,
    };
  }

  /** Drops live `row` of this cache (a write, a clear, or its budget making room). */
  evict(row: Row): void {
    assert(row.owner === this && row.live, 'row cache: evict of a row not live in this cache');
    row.live = false;
    this.rows.delete(row.key);
    this.bytes -= row.bytes;
    this.budget.release(row);
  }
}

/** The cache's key for `key`: its bytes as a latin1 string (one char per byte). */
export function rowKey(key: Uint8Array): string {
  return (Buffer.isBuffer(key) ? key : Buffer.from(key.buffer, key.byteOffset, key.byteLength)).toString('latin1');
}
