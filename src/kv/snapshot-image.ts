/**
 * The state machine's snapshot image on the wire: the whole engine (metadata
 * and data, in key order) as a sequence of bounded, checksummed chunks.
 *
 * One chunk:
 *   u8      IMAGE_FORMAT (1)
 *   u32 BE  sequence number (0, 1, 2, ...)
 *   u8      flags: bit 0 = last chunk
 *   u32 BE  entry count
 *   entries varint key length, key, varint value length, value
 *   u32 BE  CRC32C of every byte before it
 *
 * A chunk holds entries until it passes `chunkBytesMax` (so one chunk is at
 * most chunkBytesMax plus one entry). The producer (`imageChunks`) pages
 * through an engine snapshot, so memory stays bounded by one page and one
 * chunk however large the engine. The receiver (`ImageReader`) trusts nothing:
 * format, sequence, checksum, exact length, strictly increasing keys across
 * chunks, key and value sizes, and the known key prefixes are all checked;
 * anything off is IMPULSE_ERR_SNAPSHOT_INVALID.
 */
import { ImpulseError } from '../errors.js';
import type { EngineSnapshot, Entry } from '../storage/engine.js';
import { compareBytes } from '../util/bytes.js';
import { crc32c } from '../util/crc32c.js';
import { isDataKey, isMetaKey } from './keyspace.js';
import { decodeRecord, readVarint, varintBytes, writeVarint } from './record.js';

export const IMAGE_FORMAT = 1;
/** Default chunk size: large enough to amortise framing, small enough to bound memory per transfer. */
export const DEFAULT_CHUNK_BYTES_MAX = 1024 * 1024;
/** Entries read from the engine snapshot per page. */
const PAGE_ENTRIES = 256;
const HEADER_BYTES = 10;
const TRAILER_BYTES = 4;

/**
 * The image of `snapshot` as chunks of about `chunkBytesMax` bytes; the last
 * one is flagged (and may hold no entries). Rejects with the snapshot's error
 * if it is aborted while streaming.
 */
export async function* imageChunks(snapshot: EngineSnapshot, chunkBytesMax = DEFAULT_CHUNK_BYTES_MAX): AsyncGenerator<Uint8Array> {
  let sequence = 0;
  let pending: Entry[] = [];
  let pendingBytes = 0;
  let after: Buffer | undefined;
  for (;;) {
    const page = await snapshot.range(after === undefined ? { limit: PAGE_ENTRIES } : { gt: after, limit: PAGE_ENTRIES });
    for (const entry of page) {
      pending.push(entry);
      pendingBytes += entry.key.length + entry.value.length + 16;
      if (pendingBytes >= chunkBytesMax) {
        yield encodeChunk(sequence++, pending, false);
        pending = [];
        pendingBytes = 0;
      }
    }
    if (page.length < PAGE_ENTRIES) break;
    after = page[page.length - 1]!.key;
  }
  yield encodeChunk(sequence, pending, true);
}

/** One chunk (see the file comment for the layout). */
export function encodeChunk(sequence: number, entries: readonly Entry[], last: boolean): Buffer {
  let length = HEADER_BYTES + TRAILER_BYTES;
  for (const { key, value } of entries) length += varintBytes(key.length) + key.length + varintBytes(value.length) + value.length;
  const chunk = Buffer.allocUnsafe(length);
  chunk[0] = IMAGE_FORMAT;
  chunk.writeUInt32BE(sequence, 1);
  chunk[5] = last ? 1 : 0;
  chunk.writeUInt32BE(entries.length, 6);
  let offset = HEADER_BYTES;
  for (const { key, value } of entries) {
    offset = writeVarint(chunk, offset, key.length);
    chunk.set(key, offset);
    offset = writeVarint(chunk, offset + key.length, value.length);
    chunk.set(value, offset);
    offset += value.length;
  }
  chunk.writeUInt32BE(crc32c(chunk, 0, offset), offset);
  return chunk;
}

export interface ImageLimits {
  /** Longest engine key and value the receiving engine takes. */
  readonly keyBytesMax: number;
  readonly valueBytesMax: number;
  readonly chunkBytesMax: number;
}

/** Validates and decodes an image's chunks in order; `finish()` checks the image was complete. */
export class ImageReader {
  private expectedSequence = 0;
  private ended = false;
  private previousKey: Buffer | undefined;
  private readonly chunkLengthMax: number;

  constructor(private readonly limits: ImageLimits) {
    this.chunkLengthMax = limits.chunkBytesMax + limits.keyBytesMax + limits.valueBytesMax + 64;
  }

  /** The entries of the next chunk, in key order. */
  read(chunk: Uint8Array): Entry[] {
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.ended) throw invalid('a chunk arrived after the last one');
    if (bytes.length < HEADER_BYTES + TRAILER_BYTES || bytes.length > this.chunkLengthMax) throw invalid(`a chunk of ${bytes.length} bytes is out of bounds`);
    const bodyEnd = bytes.length - TRAILER_BYTES;
    if (crc32c(bytes, 0, bodyEnd) !== bytes.readUInt32BE(bodyEnd)) throw invalid(`chunk ${this.expectedSequence} fails its checksum`);
    if (bytes[0] !== IMAGE_FORMAT) throw invalid(`image format ${bytes[0]} is not ${IMAGE_FORMAT}`);
    const sequence = bytes.readUInt32BE(1);
    if (sequence !== this.expectedSequence) throw invalid(`chunk ${sequence} arrived where ${this.expectedSequence} was due`);
    this.expectedSequence++;
    this.ended = (bytes[5]! & 1) === 1;
    const count = bytes.readUInt32BE(6);
    const entries: Entry[] = [];
    let offset = HEADER_BYTES;
    for (let index = 0; index < count; index++) {
      const key = this.field(bytes, offset, bodyEnd, this.limits.keyBytesMax, 'key');
      const value = this.field(bytes, key.next, bodyEnd, this.limits.valueBytesMax, 'value');
      offset = value.next;
      this.checkEntry(key.bytes, value.bytes);
      entries.push({ key: key.bytes, value: value.bytes });
    }
    if (offset !== bodyEnd) throw invalid(`chunk ${sequence} has ${bodyEnd - offset} bytes after its ${count} entries`);
    return entries;
  }

  /** Throws unless the last chunk was read. */
  finish(): void {
    if (!this.ended) throw invalid(`the image ended after ${this.expectedSequence} chunks without its last chunk`);
  }

  private field(bytes: Buffer, offset: number, end: number, max: number, what: string): { bytes: Buffer; next: number } {
    let length: number;
    let start: number;
    try {
      ({ value: length, next: start } = readVarint(bytes.subarray(0, end), offset, 'snapshot chunk'));
    } catch {
      throw invalid(`a ${what} length is cut short`);
    }
    if (length > max || start + length > end) throw invalid(`a ${what} of ${length} bytes is out of bounds`);
    return { bytes: Buffer.from(bytes.subarray(start, start + length)), next: start + length };
  }

  private checkEntry(key: Buffer, value: Buffer): void {
    if (this.previousKey !== undefined && compareBytes(this.previousKey, key) >= 0) throw invalid('keys are not in strictly increasing order');
    this.previousKey = key;
    if (isDataKey(key)) {
      try {
        decodeRecord(value, 'snapshot');
      } catch (error) {
        throw invalid(`a value record is malformed: ${(error as Error).message}`);
      }
    } else if (!isMetaKey(key)) {
      throw invalid(`key 0x${key.subarray(0, 16).toString('hex')} is neither data nor metadata`);
    }
  }
}

function invalid(reason: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_SNAPSHOT_INVALID', `snapshot image: ${reason}`);
}
