/**
 * A state-machine image on the peer transport: the key-value layer's image
 * chunks (src/kv/snapshot-image.ts, about 1 MiB each, larger when one entry
 * is) framed as `u32be length, chunk` into one byte stream, which the
 * transport cuts into its own flow-controlled pieces (at most 256 KiB) and
 * the receiver reassembles. Memory on either side stays bounded by one image
 * chunk plus one transport piece, however large the image.
 *
 * The sending side is an `ImageStream`: an async iterable that pulls the image
 * lazily from an engine snapshot and releases that snapshot when the stream
 * ends, fails, or is dropped before it started (`release`, also through the
 * iterator's `return`, which the transport calls when a transfer fails).
 */
import { ImpulseError } from '../errors.js';

const LENGTH_BYTES = 4;

/** The bytes of an image as the transport carries them (`P` of the Raft driver's seams on real nodes). */
export type ImagePayload = AsyncIterable<Uint8Array>;

/** A lazily produced, framed image that releases its source exactly once. */
export class ImageStream implements AsyncIterable<Uint8Array>, AsyncIterator<Uint8Array> {
  private readonly frames: AsyncIterator<Uint8Array>;
  private released = false;

  constructor(
    chunks: AsyncIterable<Uint8Array>,
    private readonly releaseSource: () => void,
  ) {
    this.frames = frameChunks(chunks)[Symbol.asyncIterator]();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    if (this.released) return { done: true, value: undefined };
    try {
      const result = await this.frames.next();
      if (result.done === true) this.release();
      return result;
    } catch (error) {
      this.release();
      throw error;
    }
  }

  async return(): Promise<IteratorResult<Uint8Array>> {
    this.release();
    await this.frames.return?.().catch(() => undefined);
    return { done: true, value: undefined };
  }

  /** Frees the engine snapshot behind the stream. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.releaseSource();
  }
}

/** Each chunk as one piece: its u32be length, then its bytes. */
async function* frameChunks(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) {
    const framed = Buffer.allocUnsafe(LENGTH_BYTES + chunk.length);
    framed.writeUInt32BE(chunk.length, 0);
    framed.set(chunk, LENGTH_BYTES);
    yield framed;
  }
}

/**
 * The image chunks carried by `pieces` (arbitrary cuts of the framed stream).
 * A chunk longer than `chunkBytesMax`, or a stream that ends inside a frame,
 * is IMPULSE_ERR_SNAPSHOT_INVALID. Holds at most one chunk and one piece.
 */
export async function* unframeChunks(pieces: AsyncIterable<Uint8Array>, chunkBytesMax: number): AsyncGenerator<Uint8Array> {
  let header = Buffer.alloc(0);
  let chunk: Buffer | null = null;
  let filled = 0;
  for await (const piece of pieces) {
    let at = 0;
    while (at < piece.length) {
      if (chunk === null) {
        const take = Math.min(LENGTH_BYTES - header.length, piece.length - at);
        header = Buffer.concat([header, piece.subarray(at, at + take)]);
        at += take;
        if (header.length < LENGTH_BYTES) continue;
        const length = header.readUInt32BE(0);
        header = Buffer.alloc(0);
        if (length > chunkBytesMax) throw invalid(`a chunk of ${length} bytes is over the bound of ${chunkBytesMax}`);
        if (length === 0) {
          yield Buffer.alloc(0);
          continue;
        }
        chunk = Buffer.allocUnsafe(length);
        filled = 0;
      }
      const take = Math.min(chunk.length - filled, piece.length - at);
      chunk.set(piece.subarray(at, at + take), filled);
      filled += take;
      at += take;
      if (filled === chunk.length) {
        const complete = chunk;
        chunk = null;
        yield complete;
      }
    }
  }
  if (chunk !== null || header.length > 0) throw invalid('the stream ended inside a chunk');
}

function invalid(reason: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_SNAPSHOT_INVALID', `snapshot stream: ${reason}`);
}
