import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { HookedSocketFactory, closeAll, startCluster, startNode, waitFor } from '../../testkit/transport/harness.js';

describe('TcpTransport: messages', { timeout: 120_000 }, () => {
  it('carries messages both ways between two nodes, in order per peer, bodies intact', async () => {
    const [a, b] = await startCluster(2);
    try {
      const count = 2000;
      for (let i = 0; i < count; i++) {
        a!.transport.send(2, { channel: 'raft', group: i % 7, body: { seq: i, bytes: new Uint8Array([i & 255, 1, 2]), nested: { s: `m${i}` } } });
        b!.transport.send(1, { channel: 'dynamo', group: 0, body: [i, 'x'.repeat(i % 50)] });
      }
      await waitFor('all messages', () => a!.inbox.messages.length === count && b!.inbox.messages.length === count);
      b!.inbox.messages.forEach(({ from, message }, i) => {
        assert.equal(from, 1);
        assert.equal(message.channel, 'raft');
        assert.equal(message.group, i % 7);
        const body = message.body as { seq: number; bytes: Uint8Array; nested: { s: string } };
        assert.equal(body.seq, i);
        assert.deepEqual([...body.bytes], [i & 255, 1, 2]);
        assert.equal(body.nested.s, `m${i}`);
      });
      a!.inbox.messages.forEach(({ from, message }, i) => {
        assert.equal(from, 2);
        assert.deepEqual(message, { channel: 'dynamo', group: 0, body: [i, 'x'.repeat(i % 50)] });
      });
      const stats = a!.transport.stats();
      assert.equal(stats.peers['2']!.sentMessages, count);
      assert.equal(stats.peers['2']!.receivedMessages, count);
      assert.equal(stats.peers['2']!.connected, true);
      assert.equal(stats.peers['2']!.inboundConnected, true);
      assert.equal(stats.peers['2']!.droppedMessages, 0);
      assert.ok(stats.bytesOut > 0 && stats.bytesIn > 0);
    } finally {
      await closeAll([a!, b!]);
    }
  });

  it('three nodes exchange all-to-all, per-sender order preserved at every receiver', async () => {
    const nodes = await startCluster(3);
    try {
      const perPair = 500;
      for (let i = 0; i < perPair; i++) {
        for (const node of nodes) for (const peer of nodes) if (peer.id !== node.id) node.transport.send(peer.id, { channel: 'raft', group: 1, body: { from: node.id, i } });
        if (i % 100 === 0) await new Promise((resolve) => setImmediate(resolve)); // spread over event-loop turns
      }
      await waitFor('all-to-all delivery', () => nodes.every((node) => node.inbox.messages.length === 2 * perPair));
      for (const node of nodes) {
        for (const peer of nodes) {
          if (peer.id === node.id) continue;
          const sequence = node.inbox.from(peer.id).map(({ message }) => (message.body as { i: number }).i);
          assert.deepEqual(sequence, Array.from({ length: perPair }, (_, i) => i), `order from ${peer.id} at ${node.id}`);
        }
      }
    } finally {
      await closeAll(nodes);
    }
  });

  it('batches the messages of one event-loop turn into few socket writes', async () => {
    const hooks = new HookedSocketFactory();
    const a = await startNode(1, { socketFactory: hooks });
    const b = await startNode(2);
    try {
      a.transport.setPeers(new Map([[2, b.address]]));
      b.transport.setPeers(new Map([[1, a.address]]));
      a.transport.send(2, { channel: 'raft', group: 0, body: 'hello' });
      await waitFor('first message', () => b.inbox.messages.length === 1);
      const writesBefore = hooks.writeCalls;
      const burst = 1000;
      for (let i = 0; i < burst; i++) a.transport.send(2, { channel: 'raft', group: 0, body: { i, pad: 'p'.repeat(40) } });
      await waitFor('burst', () => b.inbox.messages.length === 1 + burst);
      // ~60 bytes a frame: one turn's 1000 frames fit in a single 256 KiB batch.
      // A ping or two may go out meanwhile; without batching this would be 1000.
      const writes = hooks.writeCalls - writesBefore;
      assert.ok(writes <= 3, `expected the burst in ~1 write, saw ${writes}`);
    } finally {
      await closeAll([a, b]);
    }
  });

  it('a message queued alone goes out in the same event-loop turn (no added latency timer)', async () => {
    const [a, b] = await startCluster(2);
    try {
      a!.transport.send(2, { channel: 'raft', group: 0, body: 'warm-up' });
      await waitFor('warm-up', () => b!.inbox.messages.length === 1);
      const rounds = 50;
      const started = performance.now();
      for (let i = 0; i < rounds; i++) {
        const want = b!.inbox.messages.length + 1;
        a!.transport.send(2, { channel: 'raft', group: 0, body: i });
        await waitFor('one message', () => b!.inbox.messages.length === want);
      }
      // Loose bound for a loaded machine: 50 one-way deliveries polled at 5 ms.
      assert.ok(performance.now() - started < 10_000);
    } finally {
      await closeAll([a!, b!]);
    }
  });

  it('a handler that throws is logged and counted; later messages still arrive', async () => {
    const [a, b] = await startCluster(2);
    try {
      b!.inbox.onMessageHook = (_from, message) => {
        if (message.body === 'boom') throw new Error('handler bug');
      };
      a!.transport.send(2, { channel: 'raft', group: 0, body: 'boom' });
      a!.transport.send(2, { channel: 'raft', group: 0, body: 'after' });
      await waitFor('second message', () => b!.inbox.messages.length === 2);
      assert.equal(b!.transport.stats().peers['1']!.handlerErrors, 1);
      assert.ok(b!.records.some((record) => record.msg.includes('message handler threw')));
      assert.equal(b!.transport.stats().peers['1']!.inboundConnected, true);
    } finally {
      await closeAll([a!, b!]);
    }
  });

  it('drops (and counts) messages to unknown peers, malformed channels and unencodable bodies without throwing', async () => {
    const [a, b] = await startCluster(2);
    try {
      a!.transport.send(9, { channel: 'raft', group: 0, body: 1 });
      a!.transport.send(2, { channel: '', group: 0, body: 1 });
      a!.transport.send(2, { channel: 'raft', group: -1, body: 1 });
      a!.transport.send(2, { channel: 'raft', group: 0, body: 2n ** 70n });
      const stats = a!.transport.stats();
      assert.equal(stats.droppedUnknownPeer, 1);
      assert.equal(stats.peers['2']!.droppedByReason.invalid, 3);
    } finally {
      await closeAll([a!, b!]);
    }
  });

  it('close() is idempotent, and afterwards sends are dropped and snapshots reject', async () => {
    const [a, b] = await startCluster(2);
    a!.transport.send(2, { channel: 'raft', group: 0, body: 1 });
    await waitFor('delivery', () => b!.inbox.messages.length === 1);
    const first = a!.transport.close();
    assert.equal(a!.transport.close(), first);
    await first;
    a!.transport.send(2, { channel: 'raft', group: 0, body: 2 });
    await assert.rejects(
      a!.transport.sendSnapshot(2, { channel: 'raft', group: 0, body: null }, (async function* () {})()),
      (error) => isImpulseError(error, 'IMPULSE_ERR_TRANSPORT_CLOSED'),
    );
    await waitFor('b sees a gone', () => b!.transport.stats().peers['1']!.inboundConnected === false);
    await b!.transport.close();
  });
});
