import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isImpulseError } from '../errors.js';
import { decodeMessage, encodeMessageFrame } from './envelopes.js';
import { FrameDecoder, FrameType, PREAMBLE_BYTES, encodeChunkHeader, decodeChunk, encodeFrame, preamble } from './frames.js';

/** Feeds `bytes` to a decoder cut at `cuts`, returns the frames (type + payload hex). */
function decodeIn(bytes: Buffer, cuts: number[], frameBytesMax = 1 << 20): string[] {
  const decoder = new FrameDecoder(frameBytesMax);
  const out: string[] = [];
  let from = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length]) {
    decoder.push(bytes.subarray(from, cut));
    from = cut;
    for (let frame = decoder.next(); frame !== null; frame = decoder.next()) out.push(`${frame.type}:${frame.payload.toString('hex')}`);
  }
  return out;
}

describe('FrameDecoder', () => {
  it('property: any split of a byte stream yields the same frames as the whole', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ type: fc.constantFrom(...Object.values(FrameType)), payload: fc.uint8Array({ maxLength: 300 }) }), { maxLength: 20 }),
        fc.array(fc.nat(7000), { maxLength: 30 }),
        (frames, cuts) => {
          const bytes = Buffer.concat(frames.map(({ type, payload }) => encodeFrame(type, payload)));
          const expected = frames.map(({ type, payload }) => `${type}:${Buffer.from(payload).toString('hex')}`);
          assert.deepEqual(decodeIn(bytes, cuts), expected);
          assert.deepEqual(decodeIn(bytes, Array.from({ length: bytes.length }, (_, i) => i)), expected, 'one byte at a time');
        },
      ),
    );
  });

  it('refuses a length over the maximum as soon as the length is in, and a zero length or unknown type', () => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(101, 0);
    const decoder = new FrameDecoder(100);
    decoder.push(header);
    assert.throws(() => decoder.next(), (error) => isImpulseError(error, 'IMPULSE_ERR_TRANSPORT_FRAME_TOO_LARGE'));
    assert.throws(() => decodeIn(Buffer.from([0, 0, 0, 0]), []), (error) => isImpulseError(error, 'IMPULSE_ERR_TRANSPORT_FRAME_INVALID'));
    assert.throws(() => decodeIn(Buffer.from([0, 0, 0, 1, 99]), []), (error) => isImpulseError(error, 'IMPULSE_ERR_TRANSPORT_FRAME_INVALID'));
    assert.deepEqual(decodeIn(encodeFrame(FrameType.message, Buffer.alloc(99)), [], 100).length, 1, 'exactly the maximum is accepted');
  });

  it('reads the preamble, then frames, across splits', () => {
    const bytes = Buffer.concat([preamble(), encodeFrame(FrameType.hello, Buffer.from([1, 2]))]);
    const decoder = new FrameDecoder(100);
    decoder.push(bytes.subarray(0, 3));
    assert.equal(decoder.nextPreamble(), null);
    decoder.push(bytes.subarray(3));
    assert.deepEqual(decoder.nextPreamble(), { magicOk: true, version: 1 });
    assert.equal(decoder.next()!.type, FrameType.hello);
    const bad = new FrameDecoder(100);
    bad.push(Buffer.from('GET / HTTP/1.1\r\n'));
    assert.equal(bad.nextPreamble()!.magicOk, false);
    assert.equal(PREAMBLE_BYTES, 6);
  });

  it('round-trips messages and chunk headers', () => {
    const message = { channel: 'raft', group: 12, body: { entries: [new Uint8Array([1, 2, 3])], term: 5 } };
    const frame = encodeMessageFrame(message);
    const decoded = decodeMessage(frame.subarray(5));
    assert.equal(decoded.channel, 'raft');
    assert.equal(decoded.group, 12);
    assert.deepEqual([...(decoded.body as { entries: Uint8Array[] }).entries[0]!], [1, 2, 3]);
    const header = encodeChunkHeader(7, 9, 3);
    const chunk = decodeChunk(Buffer.concat([header, Buffer.from([4, 5, 6])]).subarray(5));
    assert.deepEqual({ ...chunk, bytes: [...chunk.bytes] }, { streamId: 7, sequence: 9, bytes: [4, 5, 6] });
    assert.equal(header.readUInt32BE(0), 1 + 8 + 3);
  });
});
