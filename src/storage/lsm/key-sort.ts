/**
 * Sorting a flush's keys: an MSD (most significant byte first) radix sort of
 * byte strings that lie in one buffer, by unsigned byte order (a key that is
 * a prefix of another sorts first).
 *
 * Why not `Array.prototype.sort`: the flush job sorted the keys as latin1
 * strings with the native default sort, and that sort was the largest item of
 * the flush worker's CPU profile (17% of the thread, ~380 ms of a 1,000,000-
 * key fillrandom's 8 MiB flush on a loaded machine; ~90 ms for 35,000 keys
 * measured alone): V8's default sort compares through a generic path, about
 * 180 ns per comparison. A radix sort touches each key's bytes once per
 * byte position until the keys differ (the length of their common prefix
 * plus one), with counting in typed arrays: no comparison callbacks, no
 * strings, no per-key objects.
 *
 * Cost: O(total distinguishing-prefix bytes + 257 per bucket that is split);
 * buckets below INSERTION_SORT_MAX keys are finished by insertion sort on the
 * remaining bytes. Memory: two Int32Arrays of the key count, plus a stack of
 * at most (longest key + 1) × 257 ranges.
 */

/** Buckets at or below this many keys are sorted by insertion (counting 257 buckets would cost more). */
const INSERTION_SORT_MAX = 24;

/** Bucket 0 is "the key ends here" (it sorts before every byte value); byte b goes to bucket b + 1. */
const BUCKETS = 257;

/**
 * Returns the order of the keys: a permutation `order` of 0..count-1 such
 * that key order[0] < key order[1] < ... by unsigned byte comparison. Key i
 * is `bytes[starts[i], starts[i] + lengths[i])`. Keys should be distinct (equal
 * keys come out adjacent, in no particular order).
 */
export function radixSortKeys(bytes: Uint8Array, starts: Int32Array, lengths: Int32Array): Int32Array {
  const count = starts.length;
  const order = new Int32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  const scratch = new Int32Array(count);
  const counts = new Int32Array(BUCKETS + 1);
  // Ranges still to sort: [low, high) of `order`, all of whose keys agree on their first `depth` bytes.
  const stack: number[] = [0, count, 0];
  while (stack.length > 0) {
    const depth = stack.pop()!;
    const high = stack.pop()!;
    const low = stack.pop()!;
    if (high - low <= INSERTION_SORT_MAX) {
      insertionSort(bytes, starts, lengths, order, low, high, depth);
      continue;
    }
    // Count the keys per bucket, noting the lowest and highest bucket used: the loops over buckets below
    // stay within them (keys usually use a few byte values per position, not 256).
    let lowest = BUCKETS;
    let highest = 0;
    for (let i = low; i < high; i++) {
      const bucket = bucketOf(bytes, starts, lengths, order[i]!, depth);
      if (bucket < lowest) lowest = bucket;
      if (bucket > highest) highest = bucket;
    }
    if (lowest === highest) {
      // One bucket (a prefix every key shares): nothing to move; go one byte deeper. Not bucket 0: keys are distinct.
      if (lowest !== 0) stack.push(low, high, depth + 1);
      continue;
    }
    counts.fill(0, lowest, highest + 2);
    for (let i = low; i < high; i++) counts[bucketOf(bytes, starts, lengths, order[i]!, depth) + 1]!++;
    // counts[b] becomes where bucket b starts (relative to low); distribute, then copy back.
    counts[lowest] = 0;
    for (let b = lowest + 1; b <= highest; b++) counts[b]! += counts[b - 1]!;
    for (let i = low; i < high; i++) {
      const key = order[i]!;
      scratch[low + counts[bucketOf(bytes, starts, lengths, key, depth)]!++] = key;
    }
    order.set(scratch.subarray(low, high), low);
    // After distributing, counts[b] is where bucket b ends. Bucket 0 (keys that end at `depth`) holds at most one key.
    let bucketStart = low + (lowest === 0 ? counts[0]! : 0);
    for (let b = Math.max(lowest, 1); b <= highest; b++) {
      const bucketEnd = low + counts[b]!;
      if (bucketEnd - bucketStart > 1) stack.push(bucketStart, bucketEnd, depth + 1);
      bucketStart = bucketEnd;
    }
  }
  return order;
}

function bucketOf(bytes: Uint8Array, starts: Int32Array, lengths: Int32Array, key: number, depth: number): number {
  return depth < lengths[key]! ? bytes[starts[key]! + depth]! + 1 : 0;
}

/** Sorts order[low, high) by the keys' bytes from `depth` on (they agree before it). */
function insertionSort(bytes: Uint8Array, starts: Int32Array, lengths: Int32Array, order: Int32Array, low: number, high: number, depth: number): void {
  for (let i = low + 1; i < high; i++) {
    const key = order[i]!;
    let j = i - 1;
    while (j >= low && compareFrom(bytes, starts, lengths, order[j]!, key, depth) > 0) {
      order[j + 1] = order[j]!;
      j--;
    }
    order[j + 1] = key;
  }
}

/** Unsigned byte comparison of keys `a` and `b` from byte `depth` on. */
function compareFrom(bytes: Uint8Array, starts: Int32Array, lengths: Int32Array, a: number, b: number, depth: number): number {
  const aStart = starts[a]!;
  const bStart = starts[b]!;
  const aLength = lengths[a]!;
  const bLength = lengths[b]!;
  const common = Math.min(aLength, bLength);
  for (let i = depth; i < common; i++) {
    const difference = bytes[aStart + i]! - bytes[bStart + i]!;
    if (difference !== 0) return difference;
  }
  return aLength - bLength;
}
