/**
 * Byte-order helpers shared by every layer that sorts keys: one comparison and
 * one binary search, so no module carries its own copy.
 */

/**
 * Unsigned byte order (memcmp, shorter prefix first) of a[aStart, aEnd) and
 * b[bStart, bEnd): negative, 0 or positive. The ranges default to the whole
 * arrays. A JavaScript loop: cheaper than `Buffer.compare` for short keys.
 */
export function compareBytes(a: Uint8Array, b: Uint8Array, aStart = 0, aEnd = a.length, bStart = 0, bEnd = b.length): number {
  const aLength = aEnd - aStart;
  const bLength = bEnd - bStart;
  const common = aLength < bLength ? aLength : bLength;
  for (let i = 0; i < common; i++) {
    const difference = a[aStart + i]! - b[bStart + i]!;
    if (difference !== 0) return difference;
  }
  return aLength - bLength;
}

/**
 * The partition point of [low, high): the first index i for which `isAfter(i)`
 * is true, given that `isAfter` is false for a prefix of the range and true for
 * the rest (`high` when it is never true). `lowerBound` of a sorted array is
 * `partitionPoint(0, n, (i) => compare(items[i], key) >= 0)`; `upperBound`
 * uses `> 0`. O(log n) calls of `isAfter`.
 */
export function partitionPoint(low: number, high: number, isAfter: (index: number) => boolean): number {
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (isAfter(middle)) high = middle;
    else low = middle + 1;
  }
  return low;
}
