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
 * Bounds: `bytesMax` over keys, values and a fixed per-entry overhead; values
 * above `valueBytesMax` are not cached; the oldest entries go first (insertion
 * order, FIFO: no bookkeeping on a hit).
 */
import { assert } from '../util/assert.js';

/** Map entry, key string and Buffer object headers, roughly; keeps many tiny entries bounded too. */
const ENTRY_OVERHEAD_BYTES = 96;

export interface RowCacheOptions {
  /** Bytes the entries may take (keys, values, ENTRY_OVERHEAD_BYTES each). 0 disables the cache. Default 1 MiB: every engine instance has its own (a node with a shard per engine holds engines × 1 MiB at most). */
  readonly bytesMax?: number;
  /** Larger values are read from the engine every time: the cache is for the small hot values point reads serve most. Default 16 KiB. */
  readonly valueBytesMax?: number;
}

export class RowCache {
  /** latin1 key → value, or null for a key known to be absent. */
  private readonly rows = new Map<string, Buffer | null>();
  private bytes = 0;
  private writesInFlight = 0;
  private readonly bytesMax: number;
  private readonly valueBytesMax: number;
  hits = 0;
  misses = 0;

  constructor(options: RowCacheOptions = {}) {
    this.bytesMax = options.bytesMax ?? 1024 * 1024;
    this.valueBytesMax = options.valueBytesMax ?? 16 * 1024;
    assert(Number.isSafeInteger(this.bytesMax) && this.bytesMax >= 0, 'row cache: bytesMax must be a non-negative integer', this.bytesMax);
  }

  /** The cached answer for `keyString` (`rowKey`): a value, null (absent), or undefined when not cached (then read the engine and `remember`). */
  lookup(keyString: string): Buffer | null | undefined {
    const row = this.rows.get(keyString);
    if (row === undefined) this.misses++;
    else this.hits++;
    return row;
  }

  /** Caches what the engine just answered for `keyString` (undefined: absent). Call in the same synchronous step as the read. */
  remember(keyString: string, value: Buffer | undefined): void {
    if (this.writesInFlight > 0 || this.bytesMax === 0) return;
    if (value !== undefined && value.length > this.valueBytesMax) return;
    if (this.rows.has(keyString)) return;
    this.rows.set(keyString, value ?? null);
    this.bytes += entryBytes(keyString, value ?? null);
    for (const [oldKey, oldValue] of this.rows) {
      if (this.bytes <= this.bytesMax) break;
      this.rows.delete(oldKey);
      this.bytes -= entryBytes(oldKey, oldValue);
    }
  }

  /** A write of `keys` starts: they are forgotten, and nothing is cached until every write in flight has ended. */
  beginWrite(keys: Iterable<Uint8Array>): void {
    this.writesInFlight++;
    for (const key of keys) this.forget(rowKey(key));
  }

  /** A write has ended (applied or failed: either way its keys were forgotten at its start). */
  endWrite(): void {
    assert(this.writesInFlight > 0, 'row cache: endWrite without beginWrite');
    this.writesInFlight--;
  }

  /** Forgets everything (the engine closed, or its contents changed wholesale). */
  clear(): void {
    this.rows.clear();
    this.bytes = 0;
  }

  /** Figures for the engine's stats. */
  figures(): Record<string, number> {
    return { row_cache_hits: this.hits, row_cache_misses: this.misses, row_cache_bytes: this.bytes, row_cache_entries: this.rows.size };
  }

  private forget(keyString: string): void {
    const old = this.rows.get(keyString);
    if (old === undefined) return;
    this.rows.delete(keyString);
    this.bytes -= entryBytes(keyString, old);
  }
}

/** The cache's key for `key`: its bytes as a latin1 string (one char per byte). */
export function rowKey(key: Uint8Array): string {
  return (Buffer.isBuffer(key) ? key : Buffer.from(key.buffer, key.byteOffset, key.byteLength)).toString('latin1');
}

function entryBytes(keyString: string, value: Buffer | null): number {
  return keyString.length + (value?.length ?? 0) + ENTRY_OVERHEAD_BYTES;
}
