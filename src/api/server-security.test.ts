/**
 * The HTTP server's security: tokens and roles on every route, HTTPS with and
 * without client certificates, certificate reload, and the bad input a TLS
 * port gets (a handshake that never comes, garbage bytes).
 */
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { pino } from 'pino';
import { Authorizer, TokenTable } from '../security/auth.js';
import { ImpulseServer, type ServerOptions } from './server.js';
import { ImpulseClient } from '../client/client.js';
import { isImpulseError } from '../errors.js';
import { DEFAULT_LIMITS } from '../storage/engine.js';
import { openLocalKvService } from '../service/open-local.js';
import { TestPki } from '../../testkit/security/pki.js';

const TOKENS = {
  read: 'read-token-0123456789',
  write: 'write-token-0123456789',
  admin: 'admin-token-0123456789',
  app: 'app-token-0123456789ab',
};
const TOKEN_FILE = `reader read ${TOKENS.read}\nwriter write ${TOKENS.write}\noperator admin ${TOKENS.admin}\napp write ${TOKENS.app} app/\n`;

async function startServer(extra: Partial<ServerOptions>): Promise<{ server: ImpulseServer; port: number }> {
  const service = await openLocalKvService({ engine: 'memory', dataDir: '', sync: 'fsync', limits: DEFAULT_LIMITS });
  const server = new ImpulseServer({ service, logger: pino({ level: 'silent' }), version: 'test', ...extra });
  const { port } = await server.listen(0, '127.0.0.1');
  return { server, port };
}

async function expectCode(work: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(work, (error: unknown) => isImpulseError(error) && error.code === code);
}

describe('API tokens', { timeout: 60_000 }, () => {
  let server: ImpulseServer;
  let base: string;
  before(async () => {
    const started = await startServer({ auth: new Authorizer(TokenTable.parse(TOKEN_FILE, 'tokens'), false) });
    server = started.server;
    base = `http://127.0.0.1:${started.port}`;
  });
  after(async () => {
    await server?.close();
  });
  const as = (token?: string): ImpulseClient => new ImpulseClient({ endpoint: base, ...(token !== undefined ? { token } : {}) });

  it('401 with WWW-Authenticate and the JSON error format, without a token or with a wrong one; /health stays open', async () => {
    const anonymous = await fetch(`${base}/kv/k`);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.equal(((await anonymous.json()) as { error: { code: string } }).error.code, 'IMPULSE_ERR_AUTH_REQUIRED');
    const wrong = await fetch(`${base}/kv/k`, { headers: { authorization: `Bearer ${'x'.repeat(21)}` } });
    assert.equal(wrong.status, 401);
    assert.equal((await fetch(`${base}/health`)).status, 200);
    for (const path of ['/metrics', '/status', '/digest', '/kv?prefix=a']) assert.equal((await fetch(`${base}${path}`)).status, 401, path);
  });

  it('read may read, not write (403); write may write; a 401 or 403 PUT stores nothing', async () => {
    const writer = as(TOKENS.write);
    const reader = as(TOKENS.read);
    try {
      await writer.put('k', 'v1');
      assert.equal((await reader.get('k'))?.toString(), 'v1');
      await expectCode(reader.put('k', 'v2'), 'IMPULSE_ERR_AUTH_FORBIDDEN');
      await expectCode(reader.del('k'), 'IMPULSE_ERR_AUTH_FORBIDDEN');
      await expectCode(reader.batch([{ op: 'put', key: 'k', value: 'v3' }]), 'IMPULSE_ERR_AUTH_FORBIDDEN');
      await expectCode(as().put('k', 'v4'), 'IMPULSE_ERR_AUTH_REQUIRED');
      assert.equal((await reader.get('k'))?.toString(), 'v1');
      assert.equal((await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKENS.read}` } })).status, 200);
    } finally {
      writer.close();
      reader.close();
    }
  });

  it('a prefix-limited token reaches only keys and ranges under its prefix, batches included', async () => {
    const app = as(TOKENS.app);
    const writer = as(TOKENS.write);
    try {
      await app.put('app/a', '1');
      await writer.put('secret', 's');
      await expectCode(app.get('secret'), 'IMPULSE_ERR_AUTH_FORBIDDEN');
      await expectCode(app.put('secret', 'overwritten'), 'IMPULSE_ERR_AUTH_FORBIDDEN');
      await expectCode(app.batch([{ op: 'put', key: 'app/b', value: '2' }, { op: 'put', key: 'secret', value: 'x' }]), 'IMPULSE_ERR_AUTH_FORBIDDEN');
      assert.equal(await app.get('app/b'), undefined, 'the refused batch applied nothing');
      await expectCode(app.scan({}), 'IMPULSE_ERR_AUTH_FORBIDDEN');
      await expectCode(app.scan({ start: 'app/', end: 'b' }), 'IMPULSE_ERR_AUTH_FORBIDDEN');
      const page = await app.scan({ prefix: 'app/' });
      assert.deepEqual(page.items.map((item) => item.key.toString()), ['app/a']);
      assert.equal((await writer.get('secret'))?.toString(), 's');
      const digest = await fetch(`${base}/digest`, { headers: { authorization: `Bearer ${TOKENS.app}` } });
      assert.equal(digest.status, 403);
    } finally {
      app.close();
      writer.close();
    }
  });

  it('cluster changes need admin (403 for write); on a single node admin gets the usual 404', async () => {
    const writer = as(TOKENS.write);
    const admin = as(TOKENS.admin);
    try {
      await expectCode(writer.promoteMember(2), 'IMPULSE_ERR_AUTH_FORBIDDEN');
      await expectCode(admin.promoteMember(2), 'IMPULSE_ERR_ROUTE_NOT_FOUND');
    } finally {
      writer.close();
      admin.close();
    }
  });

  it('--metrics-open: /metrics and /status answer without a token, keys still need one', async () => {
    const { server: open, port } = await startServer({ auth: new Authorizer(TokenTable.parse(TOKEN_FILE, 'tokens'), true) });
    try {
      assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${port}/status`)).status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${port}/kv/k`)).status, 401);
    } finally {
      await open.close();
    }
  });
});

describe('HTTPS', { timeout: 60_000 }, () => {
  let pki: TestPki;
  before(async () => {
    pki = await TestPki.create(2);
  });
  after(async () => {
    await pki?.close();
  });

  it('serves the API over TLS to a client that trusts the CA; one that does not is refused', async () => {
    const { server, port } = await startServer({ tls: { cert: pki.node(1).cert, key: pki.node(1).key } });
    const trusting = new ImpulseClient({ endpoint: `https://127.0.0.1:${port}`, ca: pki.node(1).ca });
    const untrusting = new ImpulseClient({ endpoint: `https://127.0.0.1:${port}`, timeoutMs: 5_000 });
    try {
      await trusting.put('k', 'v');
      assert.equal((await trusting.get('k'))?.toString(), 'v');
      await expectCode(untrusting.get('k'), 'IMPULSE_ERR_CLIENT_UNREACHABLE');
    } finally {
      trusting.close();
      untrusting.close();
      await server.close();
    }
  });

  it('with a client CA, a client without a certificate cannot get in; one with a certificate can', async () => {
    const node = pki.node(1);
    const { server, port } = await startServer({ tls: { cert: node.cert, key: node.key, ca: node.ca } });
    const anonymous = new ImpulseClient({ endpoint: `https://127.0.0.1:${port}`, ca: node.ca, timeoutMs: 5_000 });
    const certified = new ImpulseClient({ endpoint: `https://127.0.0.1:${port}`, ca: node.ca, cert: pki.get('client').cert, key: pki.get('client').key });
    const foreign = new ImpulseClient({ endpoint: `https://127.0.0.1:${port}`, ca: node.ca, cert: pki.get('foreign-2').cert, key: pki.get('foreign-2').key, timeoutMs: 5_000 });
    try {
      await expectCode(anonymous.get('k'), 'IMPULSE_ERR_CLIENT_UNREACHABLE');
      await expectCode(foreign.get('k'), 'IMPULSE_ERR_CLIENT_UNREACHABLE');
      assert.equal(await certified.get('k'), undefined);
      assert.ok(server.tlsHandshakes!.failed >= 1);
    } finally {
      anonymous.close();
      certified.close();
      foreign.close();
      await server.close();
    }
  });

  it('cuts off a handshake that never comes, survives garbage, and keeps serving', async () => {
    const node = pki.node(1);
    const { server, port } = await startServer({ tls: { cert: node.cert, key: node.key }, tlsHandshakeTimeoutMs: 300 });
    const client = new ImpulseClient({ endpoint: `https://127.0.0.1:${port}`, ca: node.ca });
    try {
      // A client that connects and says nothing: closed by the handshake timeout, not left holding a socket.
      const silent = netConnect(port, '127.0.0.1').resume(); // reading, so the server's close is seen
      silent.on('error', () => undefined);
      const started = performance.now();
      await new Promise<void>((resolve) => silent.once('close', () => resolve()));
      const heldMs = performance.now() - started;
      assert.ok(heldMs < 10_000, `a silent connection was held ${heldMs} ms`);
      // Garbage, and a plain HTTP request on the TLS port.
      for (const bytes of [Buffer.from('\x16\x03\x01\x00\x05garbage-garbage-garbage'), Buffer.from('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.alloc(4096, 0xab)]) {
        const socket = netConnect(port, '127.0.0.1').resume();
        socket.on('error', () => undefined);
        socket.write(bytes);
        await new Promise<void>((resolve) => socket.once('close', () => resolve()));
      }
      assert.ok(server.tlsHandshakes!.failed >= 4, `handshake failures counted: ${server.tlsHandshakes!.failed}`);
      assert.equal(await client.health(), true);
      const metrics = await server.metrics.render();
      assert.match(metrics, /impulse_tls_handshake_failures_total\{listener="http",code="ERR_TLS_HANDSHAKE_TIMEOUT"\} 1/);
    } finally {
      client.close();
      await server.close();
    }
  });

  it('setTls: new connections get the new certificate, open ones are untouched', async () => {
    const { server, port } = await startServer({ tls: { cert: pki.node(1).cert, key: pki.node(1).key } });
    const peerCommonName = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = tlsConnect({ host: '127.0.0.1', port, ca: pki.node(1).ca, servername: 'localhost' }, () => {
          const name = String(socket.getPeerCertificate().subject.CN);
          socket.end();
          resolve(name);
        });
        socket.once('error', reject);
      });
    try {
      assert.equal(await peerCommonName(), 'impulse-node-1');
      server.setTls({ cert: pki.node(2).cert, key: pki.node(2).key });
      assert.equal(await peerCommonName(), 'impulse-node-2');
    } finally {
      await server.close();
    }
  });
});
