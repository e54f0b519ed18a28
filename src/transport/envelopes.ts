/**
 * The msgpack payloads of message and snapshot-control frames, encoded and
 * checked. A payload whose envelope is wrong (not a tuple of the right types)
 * is IMPULSE_ERR_TRANSPORT_FRAME_INVALID and closes the connection; the body
 * inside a well-formed envelope is the receiver's to validate.
 */
import { ImpulseError } from '../errors.js';
import { FrameType, encodeFrame, packValue, unpackValue } from './frames.js';
import type { PeerMessage } from './transport.js';

/** Longest channel name accepted on the wire (UTF-8 bytes). */
export const CHANNEL_BYTES_MAX = 64;

function invalid(what: string, detail: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_TRANSPORT_FRAME_INVALID', `${what}: ${detail}`);
}

function isUint32(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff;
}

export function isValidChannel(channel: unknown): channel is string {
  return typeof channel === 'string' && channel.length > 0 && Buffer.byteLength(channel) <= CHANNEL_BYTES_MAX;
}

export function isValidGroup(group: unknown): group is number {
  return typeof group === 'number' && Number.isSafeInteger(group) && group >= 0;
}

/** A MESSAGE frame for `message`. Throws (msgpackr's Error) when the body cannot be encoded. */
export function encodeMessageFrame(message: PeerMessage): Buffer {
  return encodeFrame(FrameType.message, packValue([message.channel, message.group, message.body]));
}

function decodeEnvelope(value: unknown, what: string, offset: number): PeerMessage {
  const tuple = value as unknown[];
  const channel = tuple[offset];
  const group = tuple[offset + 1];
  if (!isValidChannel(channel)) throw invalid(what, 'channel is not a string of 1-64 bytes');
  if (!isValidGroup(group)) throw invalid(what, 'group is not a non-negative integer');
  return { channel, group, body: tuple[offset + 2] };
}

function decodeTuple(payload: Buffer, what: string, length: number): unknown[] {
  const value = unpackValue(payload, what);
  if (!Array.isArray(value) || value.length !== length) throw invalid(what, `not a ${length}-tuple`);
  return value;
}

export function decodeMessage(payload: Buffer): PeerMessage {
  return decodeEnvelope(decodeTuple(payload, 'message', 3), 'message', 0);
}

export function encodeSnapshotBegin(streamId: number, header: PeerMessage): Buffer {
  return encodeFrame(FrameType.snapshotBegin, packValue([streamId, header.channel, header.group, header.body]));
}

export function decodeSnapshotBegin(payload: Buffer): { streamId: number; header: PeerMessage } {
  const tuple = decodeTuple(payload, 'snapshot header', 4);
  if (!isUint32(tuple[0])) throw invalid('snapshot header', 'stream id is not a u32');
  return { streamId: tuple[0], header: decodeEnvelope(tuple, 'snapshot header', 1) };
}

/** `[streamId, count]`: SNAPSHOT_END (count = chunks sent) and SNAPSHOT_CREDIT (count = more chunks allowed). */
export function decodeStreamCount(payload: Buffer, what: string): { streamId: number; count: number } {
  const tuple = decodeTuple(payload, what, 2);
  if (!isUint32(tuple[0]) || !isUint32(tuple[1])) throw invalid(what, 'stream id or count is not a u32');
  return { streamId: tuple[0], count: tuple[1] };
}

/** `[streamId, accepted, message]`: the receiver's verdict. */
export function decodeSnapshotDone(payload: Buffer): { streamId: number; accepted: boolean; message: string } {
  const tuple = decodeTuple(payload, 'snapshot verdict', 3);
  if (!isUint32(tuple[0]) || typeof tuple[1] !== 'boolean' || typeof tuple[2] !== 'string') throw invalid('snapshot verdict', 'wrong field types');
  return { streamId: tuple[0], accepted: tuple[1], message: tuple[2].slice(0, 500) };
}

/** `[streamId, code, message]`: a stream aborted by either side. */
export function decodeSnapshotAbort(payload: Buffer): { streamId: number; code: string; message: string } {
  const tuple = decodeTuple(payload, 'snapshot abort', 3);
  if (!isUint32(tuple[0]) || typeof tuple[1] !== 'string' || typeof tuple[2] !== 'string') throw invalid('snapshot abort', 'wrong field types');
  return { streamId: tuple[0], code: tuple[1].slice(0, 100), message: tuple[2].slice(0, 500) };
}
