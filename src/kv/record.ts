/**
 * A stored value: a small header, then the user's bytes.
 *
 *   byte 0      record type: RECORD_VALUE (1) = one plain value;
 *               RECORD_SIBLINGS (2) = leaderless mode's sibling set with its
 *               dotted version vectors (src/leaderless/codec.ts; the rest of
 *               this layout does not apply to it). Other values are reserved;
 *               an unknown type is corruption.
 *   varint      the revision: the index of the write that stored this value
 *               (LEB128, 1..8 bytes for revisions up to 2^53 - 1)
 *   rest        the value
 *
 * Also the unsigned LEB128 varint used by the layer's own metadata.
 */
import { ImpulseError } from '../errors.js';

export const RECORD_VALUE = 0x01;
/** A leaderless sibling set (src/leaderless/replica-store.ts); never read by the state machine. */
export const RECORD_SIBLINGS = 0x02;
/** Longest header: the type byte and an 8-byte varint (revisions are below 2^53). */
export const RECORD_HEADER_BYTES_MAX = 9;

export interface StoredValue {
  readonly value: Buffer;
  readonly revision: number;
}

/** The record for `value` written at `revision` (a new buffer: header + a copy of the value). */
export function encodeRecord(revision: number, value: Uint8Array): Buffer {
  const headerBytes = 1 + varintBytes(revision);
  const record = Buffer.allocUnsafe(headerBytes + value.length);
  record[0] = RECORD_VALUE;
  writeVarint(record, 1, revision);
  record.set(value, headerBytes);
  return record;
}

/** Value and revision of a stored record. The value is a view of `record`. `where` names it in errors. */
export function decodeRecord(record: Buffer, where: string): StoredValue {
  if (record.length < 2 || record[0] !== RECORD_VALUE) {
    throw new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', `${where}: record type ${record[0] ?? 'missing'} is not one this impulse writes`);
  }
  const { value: revision, next } = readVarint(record, 1, where);
  return { value: record.subarray(next), revision };
}

/** The revision of a stored record, without the value. */
export function revisionOfRecord(record: Buffer, where: string): number {
  return decodeRecord(record, where).revision;
}

/** Bytes the varint of `value` takes. */
export function varintBytes(value: number): number {
  let bytes = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    bytes++;
  }
  return bytes;
}

/** Writes `value` (a safe non-negative integer) as a varint at `offset`; returns the offset after it. */
export function writeVarint(target: Buffer, offset: number, value: number): number {
  while (value >= 0x80) {
    target[offset++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  target[offset++] = value;
  return offset;
}

/** Reads a varint at `offset`; corruption when it is cut short or not a safe integer. */
export function readVarint(source: Buffer, offset: number, where: string): { value: number; next: number } {
  let value = 0;
  let scale = 1;
  for (let index = offset; index < source.length && index < offset + 8; index++) {
    const byte = source[index]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      if (!Number.isSafeInteger(value)) break;
      return { value, next: index + 1 };
    }
    scale *= 0x80;
  }
  throw new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', `${where}: a varint at byte ${offset} is cut short or too large`);
}

/** A buffer holding the varints of `first` and `second`, in order (the applied index and its term). */
export function encodeVarints(first: number, second: number): Buffer {
  const target = Buffer.allocUnsafe(varintBytes(first) + varintBytes(second));
  writeVarint(target, writeVarint(target, 0, first), second);
  return target;
}
