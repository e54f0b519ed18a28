/**
 * The page checksum of the `btree` engine (CRC-32, zlib's polynomial, over
 * bytes [4, pageBytes) of a page) computed without reading a page's zero
 * tail: most of a page the engine writes is zeros after its last entry (a
 * meta page is 92 bytes of record in 4 KiB, a free-list page a few entries,
 * a leaf ~25% free), and node's crc32 costs ~2 µs per 4 KiB even on a quiet
 * machine, several times per commit.
 *
 * Feeding a zero byte to the CRC register is a linear map over GF(2), so n
 * zero bytes are one 32×32 bit matrix applied to the register; the matrices
 * for 1, 2, 4, ... 2^15 zero bytes are computed once at load (zlib's
 * crc32_combine uses the same algebra), each as four byte tables, so n zero
 * bytes cost at most 16 × 4 table lookups instead of n.
 *
 * The result is exactly `crc32(bytes.subarray(4))` when bytes [end, length)
 * are zero (page.test.ts checks this against zlib); the callers are the
 * encoders, which know where their bytes end. Reads verify with the full
 * crc32 (page.ts `verifyPage`), so a wrong `end` could never pass a page off
 * as good: it would fail its checksum when read.
 */
import { crc32 } from 'node:zlib';
import { assert } from '../../util/assert.js';

/** The reflected CRC-32 polynomial (zlib, PNG, Ethernet). */
const POLYNOMIAL = 0xedb88320;
/** Zero runs up to 2^ZERO_POWERS - 1 bytes are supported: pages are at most 32 KiB. */
const ZERO_POWERS = 16;

/** `operator` (column i = image of bit i) applied to `vector`. */
function apply(operator: Uint32Array, vector: number): number {
  let result = 0;
  for (let bit = 0; vector !== 0; bit++, vector >>>= 1) if ((vector & 1) !== 0) result ^= operator[bit]!;
  return result >>> 0;
}

/** `operator` applied twice. */
function square(operator: Uint32Array): Uint32Array {
  const squared = new Uint32Array(32);
  for (let bit = 0; bit < 32; bit++) squared[bit] = apply(operator, operator[bit]!);
  return squared;
}

/**
 * ZERO_TABLES[k]: the CRC register after 2^k zero bytes, as a function of the
 * register before, in byte-sliced form (entry 256 * b + x is the image of
 * byte x at byte position b): four lookups per application.
 */
const ZERO_TABLES: readonly Uint32Array[] = (() => {
  // One zero bit: shift right, and xor the polynomial when the bit shifted out was set.
  let operator: Uint32Array = new Uint32Array(32);
  operator[0] = POLYNOMIAL;
  for (let bit = 1; bit < 32; bit++) operator[bit] = 1 << (bit - 1);
  for (let doubling = 0; doubling < 3; doubling++) operator = square(operator); // 8 bits: one byte
  const tables: Uint32Array[] = [];
  for (let power = 0; power < ZERO_POWERS; power++) {
    const table = new Uint32Array(1024);
    for (let position = 0; position < 4; position++) for (let byte = 0; byte < 256; byte++) table[256 * position + byte] = apply(operator, (byte << (8 * position)) >>> 0);
    tables.push(table);
    operator = square(operator);
  }
  return tables;
})();

/** crc32(data ‖ `zeroBytes` zero bytes), given `crc` = crc32(data). */
export function crc32ZeroExtended(crc: number, zeroBytes: number): number {
  assert(zeroBytes >= 0 && zeroBytes < 2 ** ZERO_POWERS, 'zero run out of range', zeroBytes);
  // zlib keeps the register inverted between calls: invert, run the zeros, invert back.
  let register = ~crc >>> 0;
  for (let power = 0; zeroBytes !== 0; power++, zeroBytes >>>= 1) {
    if ((zeroBytes & 1) === 0) continue;
    const table = ZERO_TABLES[power]!;
    register = (table[register & 0xff]! ^ table[256 + ((register >>> 8) & 0xff)]! ^ table[512 + ((register >>> 16) & 0xff)]! ^ table[768 + (register >>> 24)]!) >>> 0;
  }
  return ~register >>> 0;
}

/** crc32 of bytes [4, length) of `bytes`, whose bytes from `end` on are zero (the caller knows; not checked). */
export function checksumOfPacked(bytes: Uint8Array, end: number): number {
  return crc32ZeroExtended(crc32(bytes.subarray(4, end)), bytes.length - end);
}
