/**
 * Byte encodings shared by the WAL, SSTables and the manifest: unsigned
 * LEB128 varints (values 0 .. 2^53-1) and a growable output buffer.
 */
import { corruption } from '../../util/corruption.js';

/** Writes `value` (a safe non-negative integer) at `offset`; returns the offset after it. */
export function writeVarint(target: Uint8Array, offset: number, value: number): number {
  while (value >= 0x80) {
    target[offset++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  target[offset++] = value;
  return offset;
}

/**
 * A read position into a buffer. Decoders advance `position` in place so no
 * tuple is allocated per decoded number (these run once per key on hot paths).
 */
export class Cursor {
  constructor(
    public buffer: Buffer,
    public position: number,
    public end: number,
    /** File named in corruption errors. */
    public readonly source: string,
  ) {}

  varint(): number {
    let result = 0;
    let scale = 1;
    for (let shift = 0; shift < 56; shift += 7) {
      if (this.position >= this.end) throw corruption('lsm', this.source, 'varint runs past the end of its block');
      const byte = this.buffer[this.position++]!;
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) return result;
      scale *= 128;
    }
    throw corruption('lsm', this.source, 'varint longer than 8 bytes');
  }

  bytes(length: number): Buffer {
    if (length > this.end - this.position) throw corruption('lsm', this.source, `a ${length}-byte field runs past the end of its block`);
    const slice = this.buffer.subarray(this.position, this.position + length);
    this.position += length;
    return slice;
  }

  get remaining(): number {
    return this.end - this.position;
  }
}

/** Appends up to this many bytes are copied in a JS loop (cheaper than a native call for keys). */
const SMALL_COPY_BYTES = 32;

/** A byte buffer that grows by doubling; `reset()` reuses the memory. */
export class GrowableBuffer {
  buffer: Buffer;
  length = 0;

  constructor(initialBytes = 4096) {
    this.buffer = Buffer.allocUnsafe(initialBytes);
  }

  reserve(extraBytes: number): void {
    const needed = this.length + extraBytes;
    if (needed <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < needed) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  reset(): void {
    this.length = 0;
  }

  varint(value: number): void {
    this.reserve(10);
    this.length = writeVarint(this.buffer, this.length, value);
  }

  byte(value: number): void {
    this.reserve(1);
    this.buffer[this.length++] = value;
  }

  uint32(value: number): void {
    this.reserve(4);
    this.buffer.writeUInt32LE(value >>> 0, this.length);
    this.length += 4;
  }

  append(bytes: Uint8Array, start = 0, end = bytes.length): void {
    const count = end - start;
    this.reserve(count);
    const buffer = this.buffer;
    if (count <= SMALL_COPY_BYTES) {
      // Keys and small values: a byte loop beats a subarray allocation plus a native copy call.
      let at = this.length;
      for (let i = start; i < end; i++) buffer[at++] = bytes[i]!;
    } else {
      buffer.set(count === bytes.length ? bytes : bytes.subarray(start, end), this.length);
    }
    this.length += count;
  }

  /** Appends a latin1 string, one byte per character (code units above 0xff are not expected). */
  latin1(text: string): void {
    const count = text.length;
    this.reserve(count);
    if (count <= SMALL_COPY_BYTES) {
      const buffer = this.buffer;
      let at = this.length;
      for (let i = 0; i < count; i++) buffer[at++] = text.charCodeAt(i);
    } else {
      this.buffer.write(text, this.length, 'latin1');
    }
    this.length += count;
  }

  /** A view of the written bytes (valid until the next write or reset). */
  view(): Buffer {
    return this.buffer.subarray(0, this.length);
  }

  /** A copy of the written bytes. */
  copy(): Buffer {
    return Buffer.from(this.buffer.subarray(0, this.length));
  }
}
