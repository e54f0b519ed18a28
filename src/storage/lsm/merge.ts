/**
 * Merging sorted sources: the range scan (`mergeRange`, newest version of
 * each key in a range, tombstones dropped) and compaction's full merge
 * (`mergeAll`, newest version of every key, tombstones kept for the caller to
 * judge). Sources are given newest first: on equal keys the earliest wins.
 */
import { type Entry, type KeyRange, aboveLower, belowUpper } from '../engine.js';
import { compareBytes } from '../../util/bytes.js';
import { GrowableBuffer } from './coding.js';
import type { SortedSource, Step } from './sources.js';

async function settle(step: Step): Promise<void> {
  if (step !== undefined) await step;
}

/**
 * Merges `sources` (newest first: on equal keys the earliest source wins) in
 * key order over `range`, dropping tombstones and shadowed versions, up to `limit` entries.
 */
export async function mergeRange(sources: SortedSource[], range: KeyRange, reverse: boolean, limit: number): Promise<Entry[]> {
  for (const source of sources) {
    let step: Step;
    if (!reverse) step = range.lower !== undefined ? source.seekGE(range.lower, !range.lowerInclusive) : source.seekFirst();
    else step = range.upper !== undefined ? source.seekLE(range.upper, !range.upperInclusive) : source.seekLast();
    if (step !== undefined) await step;
  }
  // The result's bytes are copied (a source's key and value are views into its current block) into one
  // buffer for the whole page, and the entries made as views of it at the end: one allocation per page,
  // not two per entry.
  const page = new GrowableBuffer(Math.min(64 * 1024, 128 * limit));
  const ends: number[] = [];
  const direction = reverse ? -1 : 1;
  while (ends.length < 2 * limit) {
    let best: SortedSource | undefined;
    for (const source of sources) {
      if (!source.valid) continue;
      if (best === undefined || compareBytes(source.key, best.key) * direction < 0) best = source;
    }
    if (best === undefined) break;
    const key = best.key;
    if (reverse ? !aboveLower(key, range) : !belowUpper(key, range)) break;
    const value = best.value;
    if (value !== null) {
      page.append(key);
      ends.push(page.length);
      page.append(value);
      ends.push(page.length);
      // Done: advancing now could only decode (or read) blocks nobody will look at.
      if (ends.length >= 2 * limit) break;
    }
    await advancePast(sources, best, key, reverse);
  }
  const bytes = page.buffer;
  const entries: Entry[] = new Array(ends.length / 2);
  for (let i = 0, start = 0; i < entries.length; i++) {
    const keyEnd = ends[2 * i]!;
    const valueEnd = ends[2 * i + 1]!;
    entries[i] = { key: bytes.subarray(start, keyEnd), value: bytes.subarray(keyEnd, valueEnd) };
    start = valueEnd;
  }
  return entries;
}

/**
 * Steps every source at `key` (shadowed versions) and then `best` past it.
 * `best` moves last: `key` is a view into it, valid until it moves.
 */
async function advancePast(sources: readonly SortedSource[], best: SortedSource, key: Buffer, reverse: boolean): Promise<void> {
  for (const source of sources) {
    if (source === best || !source.valid || compareBytes(source.key, key) !== 0) continue;
    const step = reverse ? source.prev() : source.next();
    if (step !== undefined) await step;
  }
  const step = reverse ? best.prev() : best.next();
  if (step !== undefined) await step;
}

/**
 * Feeds every newest version (tombstones included) of `sources` in ascending
 * key order to `emit`. The key and value are views, valid until `emit`'s
 * promise settles (copy them to keep them).
 */
export async function mergeAll(sources: SortedSource[], emit: (key: Buffer, value: Buffer | null) => Promise<void> | undefined): Promise<void> {
  for (const source of sources) await settle(source.seekFirst());
  // One pass per entry finds the smallest key and the sources holding it too (older versions, to skip):
  // n - 1 comparisons per entry rather than twice that (this loop was the largest item, ~20%, of a
  // compaction worker's CPU profile).
  // Reused, with a count (setting an array's length is a runtime call, too slow for this loop).
  const shadowed: SortedSource[] = sources.slice();
  for (;;) {
    let best: SortedSource | undefined;
    let shadowedCount = 0;
    for (const source of sources) {
      if (!source.valid) continue;
      if (best === undefined) {
        best = source;
        continue;
      }
      const order = compareBytes(source.key, best.key);
      if (order < 0) {
        best = source;
        shadowedCount = 0;
      } else if (order === 0) {
        shadowed[shadowedCount++] = source;
      }
    }
    if (best === undefined) return;
    const emitted = emit(best.key, best.value);
    if (emitted !== undefined) await emitted;
    for (let i = 0; i < shadowedCount; i++) await settle(shadowed[i]!.next());
    // `best` moves last: the key just emitted is a view into it.
    await settle(best.next());
  }
}
