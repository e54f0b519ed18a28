import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NODE_NAME_PREFIX, TlsSocketFactory, nodeIdsOf } from './tls-socket-factory.js';
import { NetSocketFactory } from './socket-factory.js';
import { type LogRecord, type TestNode, addressBook, closeAll, recordingLogger, startNode, waitFor } from '../../testkit/transport/harness.js';
import { type PemSet, TestPki } from '../../testkit/security/pki.js';

interface TlsNode extends TestNode {
  /** What the node's TLS layer logged (refusals). */
  readonly tlsRecords: LogRecord[];
  readonly tls: TlsSocketFactory;
}

async function startTlsNode(id: number, pem: PemSet): Promise<TlsNode> {
  const { logger, records } = recordingLogger();
  const socketFactory = new TlsSocketFactory({ material: { cert: pem.cert, key: pem.key, ca: pem.ca }, logger, handshakeTimeoutMs: 2_000 });
  const node = await startNode(id, { socketFactory });
  return { ...node, tlsRecords: records, tls: socketFactory };
}

function connect(nodes: readonly TestNode[]): void {
  const book = addressBook(nodes);
  for (const node of nodes) node.transport.setPeers(book);
}

describe('TcpTransport over mutual TLS', { timeout: 120_000 }, () => {
  let pki: TestPki;
  before(async () => {
    pki = await TestPki.create(3);
  });
  after(async () => {
    await pki?.close();
  });

  it('members with certificates from the cluster CA naming their ids exchange messages both ways', async () => {
    const a = await startTlsNode(1, pki.node(1));
    const b = await startTlsNode(2, pki.node(2));
    try {
      connect([a, b]);
      a.transport.send(2, { channel: 'raft', group: 0, body: 'to two' });
      b.transport.send(1, { channel: 'raft', group: 0, body: 'to one' });
      await waitFor('both delivered', () => a.inbox.messages.length === 1 && b.inbox.messages.length === 1);
      assert.deepEqual(b.inbox.messages[0], { from: 1, message: { channel: 'raft', group: 0, body: 'to two' } });
      assert.deepEqual(a.inbox.messages[0], { from: 2, message: { channel: 'raft', group: 0, body: 'to one' } });
      for (const node of [a, b]) {
        assert.ok(node.tls.handshakes.inbound >= 1 && node.tls.handshakes.outbound >= 1, JSON.stringify(node.tls.handshakes));
        assert.match(node.tls.renderMetrics(), /impulse_peer_tls_handshakes_total\{direction="outbound"\} [1-9]/);
      }
    } finally {
      await closeAll([a, b]);
    }
  });

  it('refuses a peer whose certificate comes from another CA, and logs why', async () => {
    const a = await startTlsNode(1, pki.node(1));
    const foreign = await startTlsNode(2, { ...pki.get('foreign-2'), ca: pki.node(1).ca });
    try {
      connect([a, foreign]);
      foreign.transport.send(1, { channel: 'raft', group: 0, body: 'let me in' });
      await waitFor('refusal logged', () => a.tlsRecords.some((record) => record.msg.includes('does not chain to the cluster CA')));
      // Give it time to retry a few times: nothing ever gets through.
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(a.inbox.messages.length, 0);
      assert.equal(a.transport.stats().peers['2']?.inboundConnected ?? false, false);
    } finally {
      await closeAll([a, foreign]);
    }
  });

  it('refuses a valid certificate that names another node id (a member cannot pose as another)', async () => {
    const a = await startTlsNode(1, pki.node(1));
    const impostor = await startTlsNode(2, pki.get('misnamed-2')); // chains to the cluster CA, names node 99
    try {
      connect([a, impostor]);
      impostor.transport.send(1, { channel: 'raft', group: 0, body: 'I am node 2' });
      await waitFor('refused', () => (a.transport.stats().rejectedByReason['certificate-mismatch'] ?? 0) >= 1);
      assert.ok(a.records.some((record) => record.reason === 'certificate-mismatch' && String(record.msg).includes('certificate names node 99')));
      // The other direction: node 1 dials "node 2" and finds a certificate for node 99.
      a.transport.send(2, { channel: 'raft', group: 0, body: 'to two' });
      await waitFor('dialer refuses', () => a.records.some((record) => String((record.err as { message?: string } | undefined)?.message).includes('its certificate names node 99')));
      assert.equal(a.inbox.messages.length, 0);
      assert.equal(impostor.inbox.messages.length, 0);
    } finally {
      await closeAll([a, impostor]);
    }
  });

  it('refuses an expired certificate with a log line that says so', async () => {
    const a = await startTlsNode(1, pki.node(1));
    const stale = await startTlsNode(2, pki.get('expired-2'));
    try {
      connect([a, stale]);
      stale.transport.send(1, { channel: 'raft', group: 0, body: 'x' });
      await waitFor('expiry logged', () => a.tlsRecords.some((record) => record.reason === 'CERT_HAS_EXPIRED' && record.msg.includes('certificate has expired')));
      // And node 1, dialling the expired node, refuses its certificate too.
      a.transport.send(2, { channel: 'raft', group: 0, body: 'y' });
      await waitFor('dialer refuses', () => a.records.some((record) => String((record.err as { message?: string } | undefined)?.message).includes('CERT_HAS_EXPIRED')));
      assert.equal(a.inbox.messages.length + stale.inbox.messages.length, 0);
      // Both refusals in /metrics, by reason.
      const metrics = a.tls.renderMetrics();
      assert.match(metrics, /impulse_peer_tls_refusals_total\{reason="CERT_HAS_EXPIRED"\} [1-9]/);
      assert.match(metrics, /impulse_peer_tls_dial_failures_total\{reason="CERT_HAS_EXPIRED"\} [1-9]/);
      assert.equal(a.tls.handshakes.inbound, 0);
    } finally {
      await closeAll([a, stale]);
    }
  });

  it('refuses a plain-TCP peer (its bytes are not TLS) and keeps serving members', async () => {
    const a = await startTlsNode(1, pki.node(1));
    const plain = await startNode(2, { socketFactory: new NetSocketFactory() });
    try {
      connect([a, plain]);
      plain.transport.send(1, { channel: 'raft', group: 0, body: 'x' });
      await waitFor('refusal logged', () => a.tlsRecords.some((record) => record.msg.includes('refused a peer connection')));
      assert.equal(a.inbox.messages.length, 0);
      assert.match(a.tls.renderMetrics(), /impulse_peer_tls_refusals_total\{reason="(ERR_SSL_WRONG_VERSION_NUMBER|ERR_SSL_HTTP_REQUEST|other)"\} [1-9]/);
      // The node still serves a proper member afterwards.
      const b = await startTlsNode(3, pki.node(3));
      try {
        connect([a, b]);
        b.transport.send(1, { channel: 'raft', group: 0, body: 'ok' });
        await waitFor('delivered', () => a.inbox.from(3).length === 1);
      } finally {
        await closeAll([b]);
      }
    } finally {
      await closeAll([a, plain]);
    }
  });

  it('a reload (setMaterial) serves new connections with the new certificate', async () => {
    const { logger } = recordingLogger();
    const factory = new TlsSocketFactory({ material: { cert: pki.node(1).cert, key: pki.node(1).key, ca: pki.node(1).ca }, logger });
    const a = await startNode(1, { socketFactory: factory });
    const b = await startTlsNode(2, pki.node(2));
    try {
      // Node 1 now presents a certificate naming node 99: node 2 must refuse it as node 1.
      factory.setMaterial({ cert: pki.get('misnamed-2').cert, key: pki.get('misnamed-2').key, ca: pki.node(1).ca });
      connect([a, b]);
      a.transport.send(2, { channel: 'raft', group: 0, body: 'x' });
      await waitFor('refused with the new certificate', () => (b.transport.stats().rejectedByReason['certificate-mismatch'] ?? 0) >= 1);
      assert.throws(() => factory.setMaterial({ cert: pki.node(1).cert, key: pki.node(2).key, ca: pki.node(1).ca }), /key values mismatch|KEY_VALUES_MISMATCH/i);
    } finally {
      await closeAll([a, b]);
    }
  });
});

describe('nodeIdsOf', () => {
  it('reads impulse-node-<id> from DNS subjectAltNames and the CN, and nothing else', () => {
    const certificate = { subjectaltname: `DNS:${NODE_NAME_PREFIX}3, DNS:localhost, IP Address:127.0.0.1, DNS:${NODE_NAME_PREFIX}07, DNS:${NODE_NAME_PREFIX}x`, subject: { CN: `${NODE_NAME_PREFIX}5` } };
    assert.deepEqual(nodeIdsOf(certificate as never).sort(), [3, 5]);
    assert.deepEqual(nodeIdsOf({ subject: { CN: 'impulse-client' } } as never), []);
    assert.deepEqual(nodeIdsOf({ subjectaltname: `URI:${NODE_NAME_PREFIX}4` } as never), []);
  });
});
