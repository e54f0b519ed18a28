import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { FrameType, encodeFrame, encodeValueFrame, packValue } from './frames.js';
import { RawPeer, type TestNode, closeAll, startCluster, waitFor } from '../../testkit/transport/harness.js';

const RAW_ID = 9;

/** Nodes 1 and 2 connected; node 1 also knows a raw peer (id 9) that has completed its handshake. */
async function setUp(limits = {}): Promise<{ a: TestNode; b: TestNode; raw: RawPeer }> {
  const [a, b] = await startCluster(2, { limits });
  a!.transport.setPeers(new Map([[2, b!.address], [RAW_ID, '127.0.0.1:1']]));
  b!.transport.send(1, { channel: 'raft', group: 0, body: 'warm' });
  await waitFor('b connected', () => a!.inbox.messages.length === 1);
  const raw = await RawPeer.connect(a!.address);
  const answer = await raw.hello({ clusterId: 'test-cluster', from: RAW_ID, to: 1, incarnation: 1 });
  assert.equal(answer.type, FrameType.welcome);
  return { a: a!, b: b!, raw };
}

/** The other peer still gets through: the process keeps serving. */
async function stillServes(a: TestNode, b: TestNode): Promise<void> {
  const before = a.inbox.from(2).length;
  b.transport.send(1, { channel: 'raft', group: 0, body: 'still here' });
  await waitFor('b still delivers', () => a.inbox.from(2).length === before + 1);
  assert.equal(a.transport.stats().peers['2']!.inboundConnected, true);
}

function closedWith(node: TestNode, code: string): number {
  return node.transport.stats().closedByError[code] ?? 0;
}

function logged(node: TestNode, code: string): boolean {
  return node.records.some((record) => record.code === code);
}

describe('TcpTransport: garbage closes only its connection', { timeout: 120_000 }, () => {
  it('random bytes instead of a preamble: refused as bad-magic', async () => {
    const [a, b] = await startCluster(2);
    const raw = await RawPeer.connect(a!.address);
    try {
      raw.write(randomBytes(4096));
      await raw.closed;
      assert.equal(a!.transport.stats().rejectedByReason['bad-magic'], 1);
      assert.ok(logged(a!, 'IMPULSE_ERR_TRANSPORT_HANDSHAKE_REFUSED'));
      await stillServes(a!, b!);
    } finally {
      raw.destroy();
      await closeAll([a!, b!]);
    }
  });

  it('a frame length over the maximum: FRAME_TOO_LARGE, before its body is buffered', async () => {
    const { a, b, raw } = await setUp({ frameBytesMax: 1024 * 1024 });
    try {
      const header = Buffer.alloc(5);
      header.writeUInt32BE(1024 * 1024 + 1, 0);
      header[4] = FrameType.message;
      raw.write(header); // no body at all: the length alone must be enough to refuse
      await raw.closed;
      assert.equal(closedWith(a, 'IMPULSE_ERR_TRANSPORT_FRAME_TOO_LARGE'), 1);
      assert.ok(logged(a, 'IMPULSE_ERR_TRANSPORT_FRAME_TOO_LARGE'));
      await stillServes(a, b);
    } finally {
      raw.destroy();
      await closeAll([a, b]);
    }
  });

  it('a valid frame with undecodable msgpack: FRAME_INVALID, nothing delivered from it or after it', async () => {
    const { a, b, raw } = await setUp();
    try {
      const good = encodeValueFrame(FrameType.message, ['raft', 0, 'good']);
      const truncated = encodeFrame(FrameType.message, packValue(['raft', 0, 'x'.repeat(100)]).subarray(0, 20));
      const after = encodeValueFrame(FrameType.message, ['raft', 0, 'after']);
      raw.write(Buffer.concat([good, truncated, after]));
      await raw.closed;
      assert.equal(closedWith(a, 'IMPULSE_ERR_TRANSPORT_FRAME_INVALID'), 1);
      assert.ok(logged(a, 'IMPULSE_ERR_TRANSPORT_FRAME_INVALID'));
      assert.deepEqual(
        a.inbox.from(RAW_ID).map(({ message }) => message.body),
        ['good'],
      );
      await stillServes(a, b);
    } finally {
      raw.destroy();
      await closeAll([a, b]);
    }
  });

  it('an envelope of the wrong shape (decodes, but no channel/group): FRAME_INVALID', async () => {
    const { a, b, raw } = await setUp();
    try {
      raw.write(encodeValueFrame(FrameType.message, { not: 'a tuple' }));
      await raw.closed;
      assert.equal(closedWith(a, 'IMPULSE_ERR_TRANSPORT_FRAME_INVALID'), 1);
      assert.equal(a.inbox.from(RAW_ID).length, 0);
      await stillServes(a, b);
    } finally {
      raw.destroy();
      await closeAll([a, b]);
    }
  });

  it('an unknown frame type, and a frame of a type the acceptor never receives: FRAME_INVALID', async () => {
    for (const type of [200, FrameType.welcome]) {
      const { a, b, raw } = await setUp();
      try {
        raw.write(encodeFrame(type as typeof FrameType.welcome, packValue({})));
        await raw.closed;
        assert.equal(closedWith(a, 'IMPULSE_ERR_TRANSPORT_FRAME_INVALID'), 1, `type ${type}`);
        await stillServes(a, b);
      } finally {
        raw.destroy();
        await closeAll([a, b]);
      }
    }
  });

  it('a connection that never sends its handshake is closed after the handshake timeout', async () => {
    const [a, b] = await startCluster(2, { limits: { handshakeTimeoutMs: 200 } });
    const raw = await RawPeer.connect(a!.address);
    try {
      await raw.closed;
      assert.equal(a!.transport.stats().rejectedByReason['handshake-timeout'], 1);
      assert.ok(logged(a!, 'IMPULSE_ERR_TRANSPORT_HANDSHAKE_TIMEOUT'));
      await stillServes(a!, b!);
    } finally {
      raw.destroy();
      await closeAll([a!, b!]);
    }
  });

  it('a handshaken connection that goes silent is closed after the silence timeout', async () => {
    const { a, b, raw } = await setUp({ pingIntervalMs: 100, silenceTimeoutMs: 400 });
    try {
      await raw.closed; // the raw peer never pings
      assert.equal(closedWith(a, 'IMPULSE_ERR_TRANSPORT_CONNECTION_LOST'), 1);
      await stillServes(a, b);
    } finally {
      raw.destroy();
      await closeAll([a, b]);
    }
  });

  it('connections beyond the pending-handshake bound are closed at once', async () => {
    const [a, b] = await startCluster(2, { limits: { inboundPendingMax: 2 } });
    b!.transport.send(1, { channel: 'raft', group: 0, body: 'warm' });
    await waitFor('b connected', () => a!.inbox.messages.length === 1);
    const raws = await Promise.all([1, 2, 3].map(() => RawPeer.connect(a!.address)));
    try {
      await waitFor('one refused', () => a!.transport.stats().rejectedByReason['too-many-pending'] === 1);
      await stillServes(a!, b!);
    } finally {
      for (const raw of raws) raw.destroy();
      await closeAll([a!, b!]);
    }
  });
});
