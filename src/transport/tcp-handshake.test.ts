import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FrameType } from './frames.js';
import { HookedSocketFactory, RawPeer, TEST_LIMITS, type TestNode, addressBook, closeAll, startCluster, startNode, waitFor } from '../../testkit/transport/harness.js';

function refusals(node: TestNode, reason: string): number {
  return node.transport.stats().rejectedByReason[reason] ?? 0;
}

function loggedRefusal(node: TestNode, reason: string): boolean {
  return node.records.some((record) => record.code === 'IMPULSE_ERR_TRANSPORT_HANDSHAKE_REFUSED' && record.reason === reason);
}

describe('TcpTransport: handshake refusals', { timeout: 120_000 }, () => {
  it('refuses a node from another cluster; the dialer logs the coded refusal and nothing is delivered', async () => {
    const a = await startNode(1);
    const stranger = await startNode(2, { clusterId: 'other-cluster' });
    try {
      a.transport.setPeers(new Map([[2, stranger.address]]));
      stranger.transport.setPeers(new Map([[1, a.address]]));
      stranger.transport.send(1, { channel: 'raft', group: 0, body: 'let me in' });
      await waitFor('refusal', () => refusals(a, 'cluster-mismatch') >= 1);
      assert.ok(loggedRefusal(a, 'cluster-mismatch'));
      await waitFor('dialer sees it', () =>
        stranger.records.some((record) => record.code === 'IMPULSE_ERR_TRANSPORT_HANDSHAKE_REFUSED' && String(record.msg).includes('cannot connect')),
      );
      assert.equal(a.inbox.messages.length, 0);
      assert.equal(stranger.transport.stats().peers['1']!.connected, false);
      assert.ok(stranger.transport.stats().peers['1']!.droppedByReason.disconnected! >= 1);
    } finally {
      await closeAll([a, stranger]);
    }
  });

  it('refuses a dialer claiming our own id', async () => {
    const a = await startNode(1);
    const impostor = await startNode(1, { peers: new Map([[2, a.address]]) }); // believes node 2 lives at a's address
    try {
      impostor.transport.send(2, { channel: 'raft', group: 0, body: 'x' });
      await waitFor('refusal', () => refusals(a, 'own-id') >= 1);
      assert.ok(loggedRefusal(a, 'own-id'));
      assert.equal(a.inbox.messages.length, 0);
    } finally {
      await closeAll([a, impostor]);
    }
  });

  it('refuses a dialer whose address book points it at the wrong node', async () => {
    const [a, b] = await startCluster(2);
    const c = await startNode(3, { peers: new Map([[1, b!.address]]) }); // node 1 is not at b's address
    try {
      b!.transport.setPeers(new Map([...addressBook([a!, b!]), [3, c.address]]));
      c.transport.send(1, { channel: 'raft', group: 0, body: 'x' });
      await waitFor('refusal', () => refusals(b!, 'wrong-node') >= 1);
      assert.equal(b!.inbox.messages.length, 0);
    } finally {
      await closeAll([a!, b!, c]);
    }
  });

  it('refuses an unknown node id, then admits it once the membership adds it (within the backoff bound)', async () => {
    const a = await startNode(1);
    const joiner = await startNode(3, { peers: new Map([[1, a.address]]) });
    try {
      joiner.transport.send(1, { channel: 'raft', group: 0, body: 'hello?' });
      await waitFor('refusal', () => refusals(a, 'unknown-peer') >= 1);
      assert.ok(loggedRefusal(a, 'unknown-peer'));
      a.transport.setPeers(new Map([[3, joiner.address]]));
      const added = performance.now();
      // The joiner keeps sending (as Raft would); one gets through after its next backoff.
      await waitFor('admitted', () => {
        joiner.transport.send(1, { channel: 'raft', group: 0, body: 'hello' });
        return a.inbox.messages.length > 0;
      });
      assert.ok(performance.now() - added < 5_000, 'admitted within a few backoff periods');
      assert.equal(a.inbox.messages[0]!.from, 3);
    } finally {
      await closeAll([a, joiner]);
    }
  });

  it('admits an unknown node id when acceptUnknownPeers is set', async () => {
    const a = await startNode(1, { acceptUnknownPeers: true });
    const joiner = await startNode(3, { peers: new Map([[1, a.address]]) });
    try {
      joiner.transport.send(1, { channel: 'raft', group: 0, body: 'hello' });
      await waitFor('delivery', () => a.inbox.messages.length === 1);
      assert.equal(refusals(a, 'unknown-peer'), 0);
    } finally {
      await closeAll([a, joiner]);
    }
  });

  it('refuses a second process with the id of a live, connected node; the first keeps working', async () => {
    const [a, b] = await startCluster(2);
    const twin = await startNode(2, { peers: new Map([[1, a!.address]]) });
    try {
      b!.transport.send(1, { channel: 'raft', group: 0, body: 'from b' });
      await waitFor('b connected', () => a!.inbox.messages.length === 1);
      twin.transport.send(1, { channel: 'raft', group: 0, body: 'from twin' });
      await waitFor('duplicate refused', () => refusals(a!, 'duplicate-id') >= 1);
      assert.ok(loggedRefusal(a!, 'duplicate-id'));
      b!.transport.send(1, { channel: 'raft', group: 0, body: 'from b again' });
      await waitFor('b still delivers', () => a!.inbox.messages.length === 2);
      assert.deepEqual(
        a!.inbox.messages.map(({ message }) => message.body),
        ['from b', 'from b again'],
      );
    } finally {
      await closeAll([a!, b!, twin]);
    }
  });

  it('a restarted peer on another port reconnects in both directions within the backoff bound', async () => {
    const [a, b] = await startCluster(2);
    try {
      a!.transport.send(2, { channel: 'raft', group: 0, body: 'before' });
      b!.transport.send(1, { channel: 'raft', group: 0, body: 'before' });
      await waitFor('connected', () => a!.inbox.messages.length === 1 && b!.inbox.messages.length === 1);
      await b!.transport.close();
      const restarted = await startNode(2, { peers: new Map([[1, a!.address]]) });
      try {
        const t0 = performance.now();
        a!.transport.setPeers(new Map([[2, restarted.address]]));
        await waitFor('both directions again', () => {
          a!.transport.send(2, { channel: 'raft', group: 0, body: 'after' });
          restarted.transport.send(1, { channel: 'raft', group: 0, body: 'after' });
          return restarted.inbox.messages.length > 0 && a!.inbox.messages.some(({ message }) => message.body === 'after');
        });
        assert.ok(performance.now() - t0 < (TEST_LIMITS.backoffMaxMs ?? 0) + 3_000);
        assert.equal(refusals(a!, 'duplicate-id'), 0);
      } finally {
        await restarted.transport.close();
      }
    } finally {
      await a!.transport.close();
    }
  });

  it('a restarted peer on the same port reconnects', async () => {
    const [a, b] = await startCluster(2);
    try {
      b!.transport.send(1, { channel: 'raft', group: 0, body: 'before' });
      a!.transport.send(2, { channel: 'raft', group: 0, body: 'before' });
      await waitFor('connected', () => a!.inbox.messages.length === 1 && b!.inbox.messages.length === 1);
      const port = Number(b!.address.split(':')[1]);
      await b!.transport.close();
      const restarted = await startNode(2, { port, peers: new Map([[1, a!.address]]) });
      try {
        await waitFor('both directions again', () => {
          a!.transport.send(2, { channel: 'raft', group: 0, body: 'after' });
          restarted.transport.send(1, { channel: 'raft', group: 0, body: 'after' });
          return restarted.inbox.messages.length > 0 && a!.inbox.messages.some(({ message }) => message.body === 'after');
        });
        assert.ok(a!.transport.stats().peers['2']!.reconnects >= 1);
      } finally {
        await restarted.transport.close();
      }
    } finally {
      await a!.transport.close();
    }
  });

  it('a restarted peer whose old connection hangs (no FIN, no answers) is admitted after the liveness probe', async () => {
    const a = await startNode(1, { limits: { duplicateProbeTimeoutMs: 300 } });
    const hooks = new HookedSocketFactory();
    const old = await startNode(2, { socketFactory: hooks, peers: new Map([[1, a.address]]) });
    a.transport.setPeers(new Map([[2, old.address]]));
    try {
      old.transport.send(1, { channel: 'raft', group: 0, body: 'old' });
      await waitFor('old connected', () => a.inbox.messages.length === 1);
      hooks.freeze(); // the old process "hangs": its socket stays open but says nothing
      const restarted = await startNode(2, { peers: new Map([[1, a.address]]) });
      try {
        const t0 = performance.now();
        await waitFor('restarted admitted', () => {
          restarted.transport.send(1, { channel: 'raft', group: 0, body: 'new' });
          return a.inbox.messages.some(({ message }) => message.body === 'new');
        });
        assert.ok(performance.now() - t0 < 5_000);
        assert.ok(a.records.some((record) => String(record.msg).includes('did not answer')));
      } finally {
        await restarted.transport.close();
      }
    } finally {
      await closeAll([a, old]);
    }
  });

  it('refuses a wrong protocol version with a REFUSE frame naming the reason', async () => {
    const a = await startNode(1, { peers: new Map([[2, '127.0.0.1:1']]) });
    const raw = await RawPeer.connect(a.address);
    try {
      const answer = await raw.hello({ clusterId: 'test-cluster', from: 2, to: 1, incarnation: 1 }, 99);
      assert.equal(answer.type, FrameType.refuse);
      assert.equal((answer.value as { reason: string }).reason, 'bad-version');
      await raw.closed;
      assert.equal(refusals(a, 'bad-version'), 1);
    } finally {
      raw.destroy();
      await a.transport.close();
    }
  });

  it('welcomes a correct raw HELLO (the protocol is what the README says)', async () => {
    const a = await startNode(1, { peers: new Map([[2, '127.0.0.1:1']]) });
    const raw = await RawPeer.connect(a.address);
    try {
      const answer = await raw.hello({ clusterId: 'test-cluster', from: 2, to: 1, incarnation: 7 });
      assert.equal(answer.type, FrameType.welcome);
      assert.equal((answer.value as { node: number }).node, 1);
      assert.equal((answer.value as { incarnation: number }).incarnation, a.transport.incarnation);
    } finally {
      raw.destroy();
      await a.transport.close();
    }
  });
});
