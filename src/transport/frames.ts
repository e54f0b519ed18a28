/**
 * The wire format between two impulse nodes (see src/transport/README.md for
 * the whole protocol):
 *
 *   connection = preamble frame*
 *   preamble   = "IMPT" u16be(protocol version)        -- dialer to acceptor, once
 *   frame      = u32be(length) u8(type) payload         -- length counts type + payload
 *
 * `length` is at least 1 and at most the receiver's `frameBytesMax`; anything
 * else closes the connection. Payloads are msgpack (msgpackr, plain maps, no
 * shared record structures, so every frame decodes on its own) except the
 * snapshot chunk, whose payload is u32be(stream id) u32be(sequence) bytes, and
 * PING/PONG, whose payload is a u32be nonce.
 */
import { Packr } from 'msgpackr';
import { ImpulseError } from '../errors.js';

export const MAGIC = Buffer.from('IMPT', 'latin1');
/** Bumped on any incompatible change of the frames below; a mismatch is refused at the handshake. */
export const PROTOCOL_VERSION = 1;
export const PREAMBLE_BYTES = MAGIC.length + 2;
/** u32 length + u8 type. */
export const FRAME_HEADER_BYTES = 5;
/** Header of a snapshot chunk frame: frame header + u32 stream id + u32 sequence. */
export const CHUNK_HEADER_BYTES = FRAME_HEADER_BYTES + 8;

export const FrameType = {
  /** dialer → acceptor: `Hello` (handshake.ts). The first frame after the preamble. */
  hello: 1,
  /** acceptor → dialer: `Welcome`; the connection is open for messages. */
  welcome: 2,
  /** acceptor → dialer: `Refusal`; the acceptor closes the connection after it. */
  refuse: 3,
  /** dialer → acceptor: one message, `[channel, group, body]`. */
  message: 4,
  /** either way: u32 nonce; the other side answers PONG with the same nonce. */
  ping: 5,
  pong: 6,
  /** sender → receiver: `[streamId, channel, group, body]`, the snapshot header. */
  snapshotBegin: 7,
  /** sender → receiver: raw chunk (see above). */
  snapshotChunk: 8,
  /** sender → receiver: `[streamId, chunkCount]`, the end marker. */
  snapshotEnd: 9,
  /** receiver → sender: `[streamId, chunks]`, permission to send that many more chunks. */
  snapshotCredit: 10,
  /** receiver → sender: `[streamId, accepted, message]`, the receiver's verdict. */
  snapshotDone: 11,
  /** either way: `[streamId, code, message]`; the stream is over, the connection stays. */
  snapshotAbort: 12,
} as const;
export type FrameTypeNumber = (typeof FrameType)[keyof typeof FrameType];

const KNOWN_TYPES = new Set<number>(Object.values(FrameType));

export interface Frame {
  readonly type: FrameTypeNumber;
  /** A view into the received bytes; valid as long as the caller keeps it (never reused by the decoder). */
  readonly payload: Buffer;
}

// One encoder for the process: without records it keeps no state between values.
const packr = new Packr({ useRecords: false });

/** msgpack-encodes `value`; throws (a plain Error from msgpackr) for values it cannot encode. */
export function packValue(value: unknown): Buffer {
  return packr.pack(value);
}

/** Decodes one msgpack value that must fill `bytes` exactly; any failure is IMPULSE_ERR_TRANSPORT_FRAME_INVALID. */
export function unpackValue(bytes: Uint8Array, what: string): unknown {
  try {
    return packr.unpack(bytes);
  } catch (error) {
    throw new ImpulseError('IMPULSE_ERR_TRANSPORT_FRAME_INVALID', `${what}: undecodable msgpack (${(error as Error).message})`, { cause: error });
  }
}

export function preamble(version = PROTOCOL_VERSION): Buffer {
  const bytes = Buffer.allocUnsafe(PREAMBLE_BYTES);
  MAGIC.copy(bytes, 0);
  bytes.writeUInt16BE(version, MAGIC.length);
  return bytes;
}

/** One frame: header + a copy of `payload`. */
export function encodeFrame(type: FrameTypeNumber, payload: Uint8Array): Buffer {
  const bytes = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  bytes.writeUInt32BE(1 + payload.length, 0);
  bytes[4] = type;
  bytes.set(payload, FRAME_HEADER_BYTES);
  return bytes;
}

/** A frame whose payload is `value` in msgpack. */
export function encodeValueFrame(type: FrameTypeNumber, value: unknown): Buffer {
  return encodeFrame(type, packValue(value));
}

/** The header of a snapshot chunk frame; the chunk's bytes follow it on the wire (written separately, uncopied). */
export function encodeChunkHeader(streamId: number, sequence: number, chunkBytes: number): Buffer {
  const bytes = Buffer.allocUnsafe(CHUNK_HEADER_BYTES);
  bytes.writeUInt32BE(1 + 8 + chunkBytes, 0);
  bytes[4] = FrameType.snapshotChunk;
  bytes.writeUInt32BE(streamId, 5);
  bytes.writeUInt32BE(sequence, 9);
  return bytes;
}

export function encodeNonceFrame(type: typeof FrameType.ping | typeof FrameType.pong, nonce: number): Buffer {
  const bytes = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4);
  bytes.writeUInt32BE(5, 0);
  bytes[4] = type;
  bytes.writeUInt32BE(nonce >>> 0, 5);
  return bytes;
}

/**
 * Splits a byte stream into frames. Feed it what the socket reads (`push`),
 * then take frames with `next()` until it returns null. Memory: the bytes of
 * at most one partial frame plus the last chunk pushed; a frame is copied once
 * at most (only when it spans socket reads).
 *
 * `next()` throws IMPULSE_ERR_TRANSPORT_FRAME_TOO_LARGE for a length over
 * `frameBytesMax` (as soon as the 4 length bytes are in, before buffering the
 * body) and IMPULSE_ERR_TRANSPORT_FRAME_INVALID for a zero length or an
 * unknown type. After a throw the decoder is unusable: close the connection.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;

  /** @param frameBytesMax largest accepted `length` field (type byte + payload), ≥ 1. */
  constructor(private readonly frameBytesMax: number) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
  }

  /** The connection preamble (MAGIC + version) once 6 bytes are in, else null. Call before any `next()` on the accepting side. */
  nextPreamble(): { magicOk: boolean; version: number } | null {
    if (this.bufferedBytes < PREAMBLE_BYTES) return null;
    const bytes = this.take(PREAMBLE_BYTES);
    return { magicOk: bytes.subarray(0, MAGIC.length).equals(MAGIC), version: bytes.readUInt16BE(MAGIC.length) };
  }

  next(): Frame | null {
    if (this.bufferedBytes < 4) return null;
    const length = this.peekLength();
    if (length === 0) throw new ImpulseError('IMPULSE_ERR_TRANSPORT_FRAME_INVALID', 'frame of length 0');
    if (length > this.frameBytesMax) {
      throw new ImpulseError('IMPULSE_ERR_TRANSPORT_FRAME_TOO_LARGE', `frame of ${length} bytes is over the maximum of ${this.frameBytesMax}`, {
        details: { frameBytes: length, frameBytesMax: this.frameBytesMax },
      });
    }
    if (this.bufferedBytes < 4 + length) return null;
    const bytes = this.take(4 + length);
    const type = bytes[4]!;
    if (!KNOWN_TYPES.has(type)) throw new ImpulseError('IMPULSE_ERR_TRANSPORT_FRAME_INVALID', `unknown frame type ${type}`);
    return { type: type as FrameTypeNumber, payload: bytes.subarray(FRAME_HEADER_BYTES) };
  }

  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= 4) return first.readUInt32BE(0);
    const head = Buffer.concat(this.chunks.slice(0, 4), 4);
    return head.readUInt32BE(0);
  }

  /** Removes and returns the first `count` buffered bytes (`count` ≤ bufferedBytes). */
  private take(count: number): Buffer {
    this.bufferedBytes -= count;
    const first = this.chunks[0]!;
    if (first.length > count) {
      this.chunks[0] = first.subarray(count);
      return first.subarray(0, count);
    }
    if (first.length === count) {
      this.chunks.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(count);
    let filled = 0;
    while (filled < count) {
      const chunk = this.chunks[0]!;
      const used = Math.min(chunk.length, count - filled);
      chunk.copy(out, filled, 0, used);
      filled += used;
      if (used === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(used);
    }
    return out;
  }
}

/** Reads a chunk frame's payload: stream id, sequence, bytes (a view). Throws FRAME_INVALID when shorter than its header. */
export function decodeChunk(payload: Buffer): { streamId: number; sequence: number; bytes: Buffer } {
  if (payload.length < 8) throw new ImpulseError('IMPULSE_ERR_TRANSPORT_FRAME_INVALID', `snapshot chunk frame of ${payload.length} bytes`);
  return { streamId: payload.readUInt32BE(0), sequence: payload.readUInt32BE(4), bytes: payload.subarray(8) };
}

/** Reads a PING/PONG nonce. Throws FRAME_INVALID when the payload is not 4 bytes. */
export function decodeNonce(payload: Buffer): number {
  if (payload.length !== 4) throw new ImpulseError('IMPULSE_ERR_TRANSPORT_FRAME_INVALID', `ping/pong frame of ${payload.length} bytes`);
  return payload.readUInt32BE(0);
}
