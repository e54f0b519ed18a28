/**
 * Bloom filters, one per SSTable. A filter answers "definitely absent" or
 * "maybe present" for a key; point reads skip a table on "definitely absent".
 *
 * Probing uses double hashing (Kirsch & Mitzenmacher): two independent 32-bit
 * hashes h1, h2 of the key give probe i at bit (h1 + i*h2) mod m. Two
 * independent hashes (rather than one hash rotated) keep the measured
 * false-positive rate at the theoretical (1 - e^(-kn/m))^k, which a test checks.
 *
 * Encoded filter: [probe count k: u8][m/8 bytes of bits]; m is a multiple of 8.
 */

/** The two 32-bit hashes of `key[start, end)` a filter is probed with. Written to `out[0]`, `out[1]`. */
export function bloomHashes(key: Uint8Array, out: Uint32Array, start = 0, end = key.length): void {
  out[0] = murmur3(key, start, end, 0xbc9f1d34);
  out[1] = murmur3(key, start, end, 0x7a2b3c4d) | 1; // odd, so successive probes never repeat early
}

/** Probes a filter with `k = round(bitsPerKey * ln 2)`, clamped to 1..30. */
export function probeCountFor(bitsPerKey: number): number {
  return Math.min(30, Math.max(1, Math.round(bitsPerKey * Math.LN2)));
}

/** The false-positive rate theory predicts for `keys` keys in `bits` bits with `probes` probes. */
export function theoreticalFalsePositiveRate(keys: number, bits: number, probes: number): number {
  return Math.pow(1 - Math.exp((-probes * keys) / bits), probes);
}

/** Collects key hashes while a table is written, then lays out the filter. */
export class BloomFilterBuilder {
  private hashes = new Uint32Array(2048);
  private count = 0;
  private readonly scratch = new Uint32Array(2);

  constructor(private readonly bitsPerKey: number) {}

  add(key: Uint8Array, start = 0, end = key.length): void {
    if (this.count * 2 + 2 > this.hashes.length) {
      const grown = new Uint32Array(this.hashes.length * 2);
      grown.set(this.hashes);
      this.hashes = grown;
    }
    bloomHashes(key, this.scratch, start, end);
    this.hashes[this.count * 2] = this.scratch[0]!;
    this.hashes[this.count * 2 + 1] = this.scratch[1]!;
    this.count++;
  }

  get keyCount(): number {
    return this.count;
  }

  /** The encoded filter for every key added. */
  finish(): Buffer {
    const probes = probeCountFor(this.bitsPerKey);
    // At least 64 bits so tiny tables do not have a near-1 false-positive rate.
    const bytes = Math.max(8, Math.ceil((this.count * this.bitsPerKey) / 8));
    const bits = bytes * 8;
    const filter = Buffer.alloc(1 + bytes);
    filter[0] = probes;
    for (let i = 0; i < this.count; i++) {
      let h = this.hashes[i * 2]!;
      const delta = this.hashes[i * 2 + 1]!;
      for (let p = 0; p < probes; p++) {
        const bit = h % bits;
        filter[1 + (bit >>> 3)]! |= 1 << (bit & 7);
        h = (h + delta) >>> 0;
      }
    }
    return filter;
  }
}

/**
 * True when the key whose hashes are `hashes` may be in `filter`; false means
 * definitely absent. A malformed filter (probe count 0 or > 30) answers true,
 * so it can only cost a read, never hide a key.
 */
export function bloomMayContain(filter: Buffer, hashes: Uint32Array): boolean {
  const probes = filter[0]!;
  const bits = (filter.length - 1) * 8;
  if (probes === 0 || probes > 30 || bits === 0) return true;
  let h = hashes[0]!;
  const delta = hashes[1]!;
  for (let p = 0; p < probes; p++) {
    const bit = h % bits;
    if ((filter[1 + (bit >>> 3)]! & (1 << (bit & 7))) === 0) return false;
    h = (h + delta) >>> 0;
  }
  return true;
}

/** MurmurHash3 x86 32-bit of `data[start, end)`. */
function murmur3(data: Uint8Array, start: number, end: number, seed: number): number {
  let h = seed >>> 0;
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let i = start;
  const blocksEnd = start + ((end - start) & ~3);
  while (i < blocksEnd) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    i += 4;
  }
  const tail = end - blocksEnd;
  if (tail > 0) {
    let k = data[i]!;
    if (tail > 1) k ^= data[i + 1]! << 8;
    if (tail > 2) k ^= data[i + 2]! << 16;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= end - start;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
