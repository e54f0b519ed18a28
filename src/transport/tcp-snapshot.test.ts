import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { FrameType } from './frames.js';
import { HookedSocketFactory, type TestNode, closeAll, startCluster, startNode, waitFor } from '../../testkit/transport/harness.js';

/** Makes `node` read every snapshot to the end; `error` is what its iterator threw, if anything. */
function readToEndRecordingError(node: TestNode): { error: unknown } {
  const seen: { error: unknown } = { error: null };
  node.inbox.onSnapshotHandler = async (_from, _header, chunks) => {
    try {
      for await (const chunk of chunks) void chunk;
    } catch (error) {
      seen.error = error;
      throw error;
    }
  };
  return seen;
}

const HEADER = { channel: 'raft', group: 3, body: { index: 100, term: 2 } };
const CHUNK = 64 * 1024;
const WINDOW = 4;
const LIMITS = { snapshotChunkBytesMax: CHUNK, snapshotWindowChunks: WINDOW };

async function* pieces(data: Buffer, sizes: () => number): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < data.length; ) {
    const size = Math.min(sizes(), data.length - offset);
    yield data.subarray(offset, offset + size);
    offset += size;
  }
}

function sha256(parts: readonly Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
}

async function pair(limits = {}, options: { senderHooks?: HookedSocketFactory } = {}): Promise<[TestNode, TestNode]> {
  const a = await startNode(1, { limits: { ...LIMITS, ...limits }, ...(options.senderHooks ? { socketFactory: options.senderHooks } : {}) });
  const b = await startNode(2, { limits: { ...LIMITS, ...limits } });
  a.transport.setPeers(new Map([[2, b.address]]));
  b.transport.setPeers(new Map([[1, a.address]]));
  return [a, b];
}

describe('TcpTransport: snapshot streams', { timeout: 120_000 }, () => {
  it('a 20 MiB stream arrives intact while small messages keep flowing to the same peer', async () => {
    const [a, b] = await pair();
    try {
      const data = randomBytes(20 * 1024 * 1024);
      const received: Uint8Array[] = [];
      let messagesDuringStream = 0;
      let streaming = false;
      b.inbox.onMessageHook = () => {
        if (streaming) messagesDuringStream++;
      };
      b.inbox.onSnapshotHandler = async (from, header, chunks) => {
        assert.equal(from, 1);
        assert.deepEqual(header, HEADER);
        streaming = true;
        for await (const chunk of chunks) {
          assert.ok(chunk.length <= CHUNK);
          received.push(chunk);
          if (received.length % 8 === 0) await new Promise((resolve) => setTimeout(resolve, 1)); // let heartbeats interleave
        }
        streaming = false;
      };
      let sizeSeed = 7;
      const sizes = (): number => (sizeSeed = (sizeSeed * 1103515245 + 12345) % 2 ** 31) % (3 * CHUNK) + 1; // 1 B .. 3 chunks
      let done = false;
      const heartbeats = (async () => {
        for (let i = 0; !done; i++) {
          a.transport.send(2, { channel: 'raft', group: 3, body: { heartbeat: i } });
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      })();
      try {
        await a.transport.sendSnapshot(2, HEADER, pieces(data, sizes));
      } finally {
        done = true;
        await heartbeats;
      }
      assert.equal(sha256(received), sha256([data]));
      assert.ok(messagesDuringStream >= 5, `only ${messagesDuringStream} messages arrived while the stream was in progress`);
      assert.equal(a.transport.stats().snapshotsSent, 1);
      assert.equal(b.transport.stats().snapshotsReceived, 1);
    } finally {
      await closeAll([a, b]);
    }
  });

  it('the send rate bounds a stream (snapshotSendBytesPerSecondMax), and every byte still arrives', async () => {
    const [a, b] = await pair({ snapshotSendBytesPerSecondMax: 1024 * 1024 });
    try {
      const data = randomBytes(2 * 1024 * 1024);
      const received: Uint8Array[] = [];
      b.inbox.onSnapshotHandler = async (_from, _header, chunks) => {
        for await (const chunk of chunks) received.push(chunk);
      };
      const started = performance.now();
      await a.transport.sendSnapshot(2, HEADER, pieces(data, () => CHUNK));
      const seconds = (performance.now() - started) / 1000;
      // 2 MiB at 1 MiB/s with a burst of ~102 KiB: at least ~1.9 s; unbounded, loopback takes a few ms.
      assert.ok(seconds >= 1.8, `2 MiB took ${seconds.toFixed(2)} s at 1 MiB/s`);
      assert.equal(sha256(received), sha256([data]));
    } finally {
      await closeAll([a, b]);
    }
  });

  it('a slow consumer keeps the sender within the window: never more than WINDOW chunks ahead', async () => {
    const [a, b] = await pair();
    try {
      let pulled = 0;
      let consumed = 0;
      let maxAhead = 0;
      async function* source(): AsyncGenerator<Uint8Array> {
        for (let i = 0; i < 40; i++) {
          pulled++;
          maxAhead = Math.max(maxAhead, pulled - consumed);
          yield Buffer.alloc(CHUNK, i);
        }
      }
      b.inbox.onSnapshotHandler = async (_from, _header, chunks) => {
        for await (const chunk of chunks) {
          assert.equal(chunk[0], consumed);
          consumed++;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      };
      await a.transport.sendSnapshot(2, HEADER, source());
      assert.equal(consumed, 40);
      // In flight: WINDOW credited chunks, plus the one being pulled.
      assert.ok(maxAhead <= WINDOW + 1, `sender ran ${maxAhead} chunks ahead of the consumer`);
    } finally {
      await closeAll([a, b]);
    }
  });

  it('an out-of-order chunk closes the connection: the receiver reads an error, the sender rejects', async () => {
    const senderHooks = new HookedSocketFactory();
    const [a, b] = await pair({}, { senderHooks });
    senderHooks.rewrite = (bytes) => {
      // The header of chunk 3 becomes chunk 4 (a skipped chunk).
      if (bytes.length === 13 && bytes[4] === FrameType.snapshotChunk && bytes.readUInt32BE(9) === 3) {
        const copy = Buffer.from(bytes);
        copy.writeUInt32BE(4, 9);
        return copy;
      }
      return bytes;
    };
    try {
      const receiver = readToEndRecordingError(b);
      await assert.rejects(a.transport.sendSnapshot(2, HEADER, pieces(Buffer.alloc(20 * CHUNK), () => CHUNK)), (error) =>
        isImpulseError(error, 'IMPULSE_ERR_TRANSPORT_CONNECTION_LOST'),
      );
      await waitFor('receiver error', () => receiver.error !== null);
      assert.ok(isImpulseError(receiver.error, 'IMPULSE_ERR_TRANSPORT_CONNECTION_LOST'));
      assert.equal(b.transport.stats().closedByError['IMPULSE_ERR_TRANSPORT_SNAPSHOT_SEQUENCE'], 1);
      assert.ok(b.records.some((record) => record.code === 'IMPULSE_ERR_TRANSPORT_SNAPSHOT_SEQUENCE'));
      // Messages recover on a new connection.
      senderHooks.rewrite = null;
      await waitFor('messages again', () => {
        a.transport.send(2, { channel: 'raft', group: 0, body: 'after' });
        return b.inbox.messages.length > 0;
      });
    } finally {
      await closeAll([a, b]);
    }
  });

  it('a receiver that throws refuses the stream; the sender rejects; the next stream on the same connection succeeds', async () => {
    const [a, b] = await pair();
    try {
      b.inbox.onSnapshotHandler = () => {
        throw new Error('no room for a snapshot');
      };
      await assert.rejects(a.transport.sendSnapshot(2, HEADER, pieces(Buffer.alloc(10 * CHUNK), () => CHUNK)), (error) =>
        isImpulseError(error, 'IMPULSE_ERR_TRANSPORT_SNAPSHOT_REFUSED') && /no room/.test((error as Error).message),
      );
      b.inbox.onSnapshotHandler = async (_from, _header, chunks) => {
        let read = 0;
        for await (const chunk of chunks) if (++read === 3) throw new Error(`bad chunk ${chunk.length}`);
      };
      await assert.rejects(a.transport.sendSnapshot(2, HEADER, pieces(Buffer.alloc(10 * CHUNK), () => CHUNK)), (error) =>
        isImpulseError(error, 'IMPULSE_ERR_TRANSPORT_SNAPSHOT_REFUSED'),
      );
      const received: Uint8Array[] = [];
      b.inbox.onSnapshotHandler = async (_from, _header, chunks) => {
        for await (const chunk of chunks) received.push(chunk);
      };
      const data = randomBytes(5 * CHUNK + 17);
      await a.transport.sendSnapshot(2, HEADER, pieces(data, () => CHUNK));
      assert.equal(sha256(received), sha256([data]));
      assert.equal(a.transport.stats().peers['2']!.reconnects, 0, 'refusals do not cost the connection');
    } finally {
      await closeAll([a, b]);
    }
  });

  it('a receiver that returns before reading to the end refuses the stream', async () => {
    const [a, b] = await pair();
    try {
      b.inbox.onSnapshotHandler = async () => undefined;
      await assert.rejects(a.transport.sendSnapshot(2, HEADER, pieces(Buffer.alloc(10 * CHUNK), () => CHUNK)), (error) =>
        isImpulseError(error, 'IMPULSE_ERR_TRANSPORT_SNAPSHOT_REFUSED'),
      );
    } finally {
      await closeAll([a, b]);
    }
  });

  it('a receiver that stops consuming stalls the stream: both sides abort after the stall timeout', async () => {
    const [a, b] = await pair({ snapshotStallTimeoutMs: 300 });
    try {
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let receiverError: unknown = null;
      b.inbox.onSnapshotHandler = async (_from, _header, chunks) => {
        const iterator = chunks[Symbol.asyncIterator]();
        await iterator.next(); // one chunk, then nothing until the sender has given up
        await gate;
        try {
          while ((await iterator.next()).done !== true);
        } catch (error) {
          receiverError = error;
        }
      };
      try {
        await assert.rejects(a.transport.sendSnapshot(2, HEADER, pieces(Buffer.alloc(40 * CHUNK), () => CHUNK)), (error) =>
          isImpulseError(error, 'IMPULSE_ERR_TRANSPORT_SNAPSHOT_STALLED'),
        );
      } finally {
        release();
      }
      await waitFor('receiver sees the abort', () => receiverError !== null);
      assert.ok(isImpulseError(receiverError, 'IMPULSE_ERR_TRANSPORT_SNAPSHOT_REFUSED'));
      assert.match((receiverError as Error).message, /aborted.*STALLED/);
    } finally {
      await closeAll([a, b]);
    }
  });

  it('a sender whose source stops producing: the receiver aborts after the stall timeout, the sender rejects', async () => {
    const [a, b] = await pair({ snapshotStallTimeoutMs: 300 });
    try {
      const receiver = readToEndRecordingError(b);
      async function* stuck(): AsyncGenerator<Uint8Array> {
        yield Buffer.alloc(CHUNK);
        await new Promise((resolve) => setTimeout(resolve, 60_000).unref());
      }
      await assert.rejects(a.transport.sendSnapshot(2, HEADER, stuck()), (error) => isImpulseError(error, 'IMPULSE_ERR_TRANSPORT_SNAPSHOT_STALLED'));
      await waitFor('receiver error', () => receiver.error !== null);
      assert.ok(isImpulseError(receiver.error, 'IMPULSE_ERR_TRANSPORT_SNAPSHOT_STALLED') || isImpulseError(receiver.error, 'IMPULSE_ERR_TRANSPORT_SNAPSHOT_REFUSED'));
    } finally {
      await closeAll([a, b]);
    }
  });

  it('a source that throws aborts the stream on both sides', async () => {
    const [a, b] = await pair();
    try {
      const receiver = readToEndRecordingError(b);
      async function* failing(): AsyncGenerator<Uint8Array> {
        yield Buffer.alloc(CHUNK);
        throw new Error('disk read failed');
      }
      await assert.rejects(a.transport.sendSnapshot(2, HEADER, failing()), /disk read failed/);
      await waitFor('receiver error', () => receiver.error !== null);
      assert.match((receiver.error as Error).message, /disk read failed/);
    } finally {
      await closeAll([a, b]);
    }
  });

  it('one stream per peer and direction: a second concurrent send rejects at once with SNAPSHOT_BUSY', async () => {
    const [a, b] = await pair();
    try {
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      b.inbox.onSnapshotHandler = async (_from, _header, chunks) => {
        await gate;
        for await (const chunk of chunks) void chunk;
      };
      const first = a.transport.sendSnapshot(2, HEADER, pieces(Buffer.alloc(8 * CHUNK), () => CHUNK));
      try {
        await assert.rejects(a.transport.sendSnapshot(2, HEADER, pieces(Buffer.alloc(CHUNK), () => CHUNK)), (error) =>
          isImpulseError(error, 'IMPULSE_ERR_TRANSPORT_SNAPSHOT_BUSY'),
        );
      } finally {
        release();
      }
      await first;
      await a.transport.sendSnapshot(2, HEADER, pieces(Buffer.alloc(CHUNK), () => CHUNK)); // free again
    } finally {
      await closeAll([a, b]);
    }
  });

  it('the receiver going away mid-stream rejects the send with CONNECTION_LOST; closing the sender rejects with CLOSED', async () => {
    const [a, b] = await pair();
    try {
      b.inbox.onSnapshotHandler = async (_from, _header, chunks) => {
        for await (const chunk of chunks) void chunk;
      };
      async function* endless(): AsyncGenerator<Uint8Array> {
        for (;;) {
          yield Buffer.alloc(CHUNK);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }
      const sending = a.transport.sendSnapshot(2, HEADER, endless());
      await waitFor('streaming', () => a.transport.stats().peers['2']!.bytesOut > 4 * CHUNK);
      await b.transport.close();
      await assert.rejects(sending, (error) => isImpulseError(error, 'IMPULSE_ERR_TRANSPORT_CONNECTION_LOST'));
      const [c] = await startCluster(1);
      a.transport.setPeers(new Map([[2, c!.address]])); // c is node 1, so nothing will ever accept: we only test close()
      const pending = a.transport.sendSnapshot(2, HEADER, endless());
      await a.transport.close();
      await assert.rejects(pending, (error) => isImpulseError(error, 'IMPULSE_ERR_TRANSPORT_CLOSED') || isImpulseError(error, 'IMPULSE_ERR_TRANSPORT_CONNECTION_LOST'));
      await c!.transport.close();
    } finally {
      await closeAll([a, b]);
    }
  });
});
