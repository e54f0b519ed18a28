/**
 * Point-in-time reads of an engine: `Engine.snapshot()` (src/storage/engine.ts)
 * returns an `EngineSnapshot` whose reads see the engine exactly as it was
 * when the snapshot was taken, while writes go on. The key-value state machine
 * streams its image to a Raft follower from one (src/kv/snapshot-image.ts).
 *
 * Two ways to get one:
 *   - native: an engine that can pin a version cheaply (LevelDB snapshots, the
 *     B+tree's pinned meta page, the LSM's sequence numbers) overrides
 *     `Engine._snapshot()` and returns a `SnapshotReader`;
 *   - generic (this file), for every other engine: `PreimageSnapshot`. While it
 *     is open, the base's group commit calls `capturePreimages` BEFORE each
 *     `_write`, which remembers the current value (or absence) of every key the
 *     write is about to change, once per key: the value at the snapshot point.
 *     A snapshot read scans the live engine and overlays those remembered
 *     values. What it remembers is bounded (`snapshotRetainedBytesMax`): past
 *     the bound the snapshot is ABORTED (its reads reject with
 *     IMPULSE_ERR_SNAPSHOT_ABORTED) instead of growing without limit.
 *
 * Why the overlay is exact, per key k (writes are serialized by group commit):
 *   1. k not written since the snapshot point: the live scan returns k's value
 *      at the point (nothing changed it), and no preimage exists for k.
 *   2. k written since: its preimage was recorded before the first such write
 *      started, so it is in the map before any scan can observe the write.
 *      The overlay is applied AFTER the live scan resolves, so whatever the
 *      scan saw of k (old value, new value, absent) is replaced by the preimage.
 */
import { ImpulseError } from '../errors.js';
import { OrderedMap } from '../util/ordered-map.js';
import type { Entry, KeyRange, RangeOptions, WriteOp } from './engine.js';
import { aboveLower, belowUpper } from './engine.js';

/** A point-in-time view of an engine, from `Engine.snapshot()`. */
export interface EngineSnapshot {
  /** Entries as they were at the snapshot point; the same contract as `Engine.range`. */
  range(options: RangeOptions): Promise<Entry[]>;
  /** The value under `key` at the snapshot point, or undefined when it was absent. */
  get(key: Uint8Array): Promise<Buffer | undefined>;
  /** Frees what the snapshot holds. Idempotent. Later reads reject. */
  release(): void;
}

/**
 * What an engine's native `_snapshot()` hook returns: reads over ranges the
 * base has already validated and normalized (as `_range` receives them).
 */
export interface SnapshotReader {
  range(range: KeyRange, reverse: boolean, limit: number): Promise<Entry[]>;
  release(): void;
}

/** Per remembered key: the key and the map entry, beyond the key and value bytes. */
const PREIMAGE_OVERHEAD_BYTES = 64;

/** The generic snapshot: a live scan with the remembered preimages laid over it. */
export class PreimageSnapshot implements SnapshotReader {
  /** latin1 key → value at the snapshot point (null: absent then). */
  private readonly preimages = new OrderedMap<Buffer | null>();
  private retainedBytes = 0;
  private abortedBy: ImpulseError | undefined;
  private released = false;

  constructor(
    private readonly liveRange: (range: KeyRange, reverse: boolean, limit: number) => Promise<Entry[]>,
    private readonly retainedBytesMax: number,
    private readonly onRelease: (snapshot: PreimageSnapshot) => void,
  ) {}

  /** True while the snapshot still needs preimages (not released, not aborted). */
  get active(): boolean {
    return !this.released && this.abortedBy === undefined;
  }

  /** Whether the value of `key` at the snapshot point is already remembered. */
  has(key: string): boolean {
    return this.preimages.has(key);
  }

  /** Remembers `value` as `key`'s value at the snapshot point; aborts the snapshot past the bound. */
  remember(key: string, value: Buffer | undefined): void {
    if (!this.active) return;
    this.retainedBytes += key.length + (value?.length ?? 0) + PREIMAGE_OVERHEAD_BYTES;
    if (this.retainedBytes > this.retainedBytesMax) {
      this.abort(
        new ImpulseError(
          'IMPULSE_ERR_SNAPSHOT_ABORTED',
          `the snapshot had to remember more than ${this.retainedBytesMax} bytes of overwritten values while it was open; take a new one`,
        ),
      );
      return;
    }
    // Copy: an engine may hand out a view of a buffer it reuses.
    this.preimages.set(key, value === undefined ? null : Buffer.from(value));
  }

  /** Ends the snapshot with `error`: every later read rejects with it. Frees the preimages. */
  abort(error: ImpulseError): void {
    if (!this.active) return;
    this.abortedBy = error;
    this.drop();
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.drop();
  }

  async range(range: KeyRange, reverse: boolean, limit: number): Promise<Entry[]> {
    const results: Entry[] = [];
    let remaining: KeyRange = range;
    for (;;) {
      this.requireActive();
      const page = await this.liveRange(remaining, reverse, limit);
      this.requireActive(); // aborted or released while the scan ran: its preimages are gone
      const full = page.length === limit;
      // Preimages are exact up to the last live key seen; past it, the next page decides.
      const seenUpTo = full ? page[page.length - 1]!.key : undefined;
      for (const entry of this.overlay(page, remaining, reverse, seenUpTo)) {
        results.push(entry);
        if (results.length === limit) return results;
      }
      if (!full) return results;
      remaining = reverse
        ? { ...remaining, upper: seenUpTo, upperInclusive: false }
        : { ...remaining, lower: seenUpTo, lowerInclusive: false };
    }
  }

  /**
   * The live page with every remembered key replaced by its preimage, merged
   * in scan order with remembered keys that are absent live, for keys in
   * `range` up to `seenUpTo` inclusive (the whole range when undefined).
   */
  private overlay(page: readonly Entry[], range: KeyRange, reverse: boolean, seenUpTo: Buffer | undefined): Entry[] {
    const window: KeyRange = seenUpTo === undefined ? range : reverse ? { ...range, lower: seenUpTo, lowerInclusive: true } : { ...range, upper: seenUpTo, upperInclusive: true };
    const remembered: Entry[] = [];
    const start = reverse ? window.upper?.toString('latin1') : window.lower?.toString('latin1');
    const exclusive = reverse ? !window.upperInclusive : !window.lowerInclusive;
    const walk = reverse ? this.preimages.descending(start, exclusive) : this.preimages.ascending(start, exclusive);
    for (const [key, value] of walk) {
      const keyBytes = Buffer.from(key, 'latin1');
      if (reverse ? !aboveLower(keyBytes, window) : !belowUpper(keyBytes, window)) break;
      if (value !== null) remembered.push({ key: keyBytes, value });
    }
    const live = page.filter((entry) => !this.preimages.has(entry.key.toString('latin1')));
    return mergeOrdered(live, remembered, reverse);
  }

  private requireActive(): void {
    if (this.abortedBy !== undefined) throw this.abortedBy;
    if (this.released) throw new ImpulseError('IMPULSE_ERR_SNAPSHOT_ABORTED', 'the snapshot was released');
  }

  private drop(): void {
    this.preimages.clear();
    this.retainedBytes = 0;
    this.onRelease(this);
  }
}

/**
 * Called by the base BEFORE `_write(ops)` while generic snapshots are open:
 * remembers, for every open snapshot that lacks it, the current value of each
 * key `ops` change. A failed read aborts the snapshots (never the write).
 */
export async function capturePreimages(snapshots: ReadonlySet<PreimageSnapshot>, ops: readonly WriteOp[], get: (key: Buffer) => Promise<Buffer | undefined>): Promise<void> {
  const seen = new Set<string>();
  for (const op of ops) {
    const keyBytes = Buffer.isBuffer(op.key) ? op.key : Buffer.from(op.key.buffer, op.key.byteOffset, op.key.byteLength);
    const key = keyBytes.toString('latin1');
    if (seen.has(key)) continue;
    seen.add(key);
    const lacking = [...snapshots].filter((snapshot) => snapshot.active && !snapshot.has(key));
    if (lacking.length === 0) continue;
    let value: Buffer | undefined;
    try {
      value = await get(keyBytes);
    } catch (error) {
      const aborted = new ImpulseError('IMPULSE_ERR_SNAPSHOT_ABORTED', `reading a value the snapshot had to keep failed: ${(error as Error).message}`, { cause: error });
      for (const snapshot of lacking) snapshot.abort(aborted);
      continue;
    }
    for (const snapshot of lacking) snapshot.remember(key, value);
  }
}

/** Merges two lists each sorted in scan order (ascending, or descending when `reverse`); keys are distinct. */
function mergeOrdered(a: readonly Entry[], b: readonly Entry[], reverse: boolean): Entry[] {
  if (b.length === 0) return a.slice();
  const merged: Entry[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j === b.length) merged.push(a[i++]!);
    else if (i === a.length) merged.push(b[j++]!);
    else {
      const order = Buffer.compare(a[i]!.key, b[j]!.key);
      merged.push((reverse ? order > 0 : order < 0) ? a[i++]! : b[j++]!);
    }
  }
  return merged;
}
