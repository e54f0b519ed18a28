import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { HookedSocketFactory, closeAll, startNode, waitFor } from '../../testkit/transport/harness.js';

const LIMITS = { queueMessagesMax: 100, queueBytesMax: 256 * 1024, writeBatchBytesMax: 64 * 1024 };

/** A port nothing listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function turn(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

describe('TcpTransport: bounded queues', { timeout: 120_000 }, () => {
  it('a peer that is down: the queue stays within its bounds and every message is counted as dropped', async () => {
    const port = await deadPort();
    const a = await startNode(1, { limits: LIMITS, peers: new Map([[2, `127.0.0.1:${port}`]]) });
    try {
      const body = 'x'.repeat(1000);
      let maxQueuedMessages = 0;
      let maxQueuedBytes = 0;
      const sent = 20_000;
      for (let i = 0; i < sent; i++) {
        a.transport.send(2, { channel: i % 2 === 0 ? 'raft' : 'dynamo', group: 0, body });
        if (i % 500 === 0) {
          const peer = a.transport.stats().peers['2']!;
          maxQueuedMessages = Math.max(maxQueuedMessages, peer.queuedMessages);
          maxQueuedBytes = Math.max(maxQueuedBytes, peer.queuedBytes);
          await turn();
        }
      }
      await waitFor('a failed dial', () => a.transport.stats().peers['2']!.connectFailures >= 1);
      const peer = a.transport.stats().peers['2']!;
      assert.ok(maxQueuedMessages <= LIMITS.queueMessagesMax && maxQueuedBytes <= LIMITS.queueBytesMax, `queue reached ${maxQueuedMessages} / ${maxQueuedBytes} B`);
      assert.equal(peer.sentMessages, 0);
      assert.equal(peer.droppedMessages + peer.queuedMessages, sent, 'every message is either queued or counted as dropped');
      assert.ok(peer.droppedByReason['queue-full']! > 0);
      assert.ok(peer.droppedByChannel.raft! > 0 && peer.droppedByChannel.dynamo! > 0);
      assert.equal(peer.connected, false);
    } finally {
      await a.transport.close();
    }
  });

  it('a server that accepts but never answers: handshake timeout, drops counted, no unbounded buffering', async () => {
    const sockets: Socket[] = [];
    const server: Server = createServer((socket) => {
      sockets.push(socket);
      socket.pause(); // never reads, never answers
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const a = await startNode(1, { limits: { ...LIMITS, handshakeTimeoutMs: 200 }, peers: new Map([[2, `127.0.0.1:${port}`]]) });
    try {
      for (let i = 0; i < 5_000; i++) {
        a.transport.send(2, { channel: 'raft', group: 0, body: 'y'.repeat(500) });
        if (i % 250 === 0) await turn();
      }
      await waitFor('handshake timeouts', () => (a.transport.stats().closedByError['IMPULSE_ERR_TRANSPORT_HANDSHAKE_TIMEOUT'] ?? 0) >= 1);
      const peer = a.transport.stats().peers['2']!;
      assert.ok(peer.queuedMessages <= LIMITS.queueMessagesMax);
      assert.equal(peer.sentMessages, 0, 'nothing is sent before the handshake completes');
      assert.ok(peer.droppedMessages >= 5_000 - LIMITS.queueMessagesMax);
    } finally {
      await a.transport.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a peer that stops reading after the handshake: backpressure stops the writer, the queue bound drops the rest', async () => {
    const receiverHooks = new HookedSocketFactory();
    const senderHooks = new HookedSocketFactory();
    const limits = { ...LIMITS, silenceTimeoutMs: 60_000 };
    const b = await startNode(2, { limits, socketFactory: receiverHooks });
    const a = await startNode(1, { limits, socketFactory: senderHooks, peers: new Map([[2, b.address]]) });
    b.transport.setPeers(new Map([[1, a.address]]));
    try {
      a.transport.send(2, { channel: 'raft', group: 0, body: 'hello' });
      await waitFor('connected', () => b.inbox.messages.length === 1);
      receiverHooks.stopReadingAccepted();
      const body = 'z'.repeat(8 * 1024);
      let maxSocketBuffered = 0;
      for (let i = 0; i < 4_000; i++) {
        a.transport.send(2, { channel: 'raft', group: 0, body });
        if (i % 50 === 0) {
          await turn();
          maxSocketBuffered = Math.max(maxSocketBuffered, senderHooks.dialled[0]!.writableLength);
        }
      }
      await waitFor('queue-full drops', () => (a.transport.stats().peers['2']!.droppedByReason['queue-full'] ?? 0) > 0);
      const peer = a.transport.stats().peers['2']!;
      assert.ok(peer.queuedBytes <= LIMITS.queueBytesMax);
      // Bytes held in user space by the socket: at most its high-water mark (16 KiB on Node 20, 64 KiB from Node 22) plus one batch.
      const highWaterMark = senderHooks.dialled[0]!.writableHighWaterMark;
      assert.ok(maxSocketBuffered <= highWaterMark + LIMITS.writeBatchBytesMax + 8 * 1024 + 64, `socket buffered ${maxSocketBuffered} B (high-water mark ${highWaterMark} B)`);
      // 4000 × 8 KiB = 32 MiB offered; far less was written (the kernel buffers are a few MiB at most).
      assert.ok(peer.bytesOut < 16 * 1024 * 1024, `wrote ${peer.bytesOut} B to a peer that reads nothing`);
    } finally {
      await closeAll([a, b]);
    }
  });
});
