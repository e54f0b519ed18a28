/**
 * `GET /cluster/nodes/{id}/{view}` on real members behind real servers: each
 * member's own view relayed, this member's answered locally, a member whose
 * server is gone named as unreachable at once, unknown ids and views 404, 405
 * for other methods, 404 on a single node. Then the relay's bounds against
 * small real HTTP peers that misbehave: silence (timeout), too many relays at
 * once, an answer that is not JSON or too long, and a member's own error
 * status passed through.
 */
import assert from 'node:assert/strict';
import { type Server, createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { isImpulseError } from '../errors.js';
import { openLocalKvService } from '../service/open-local.js';
import { DEFAULT_LIMITS } from '../storage/engine.js';
import { InProcessCluster } from '../../testkit/cluster/in-process.js';
import { TestPki } from '../../testkit/security/pki.js';
import { MemberProxy } from './member-proxy.js';
import { ImpulseServer } from './server.js';

async function get(base: string, path: string, method = 'GET'): Promise<{ status: number; json: any }> {
  const response = await fetch(base + path, { method });
  return { status: response.status, json: await response.json() };
}

describe('GET /cluster/nodes/{id}/{view} on cluster members', () => {
  let cluster: InProcessCluster;
  const servers = new Map<number, ImpulseServer>();
  const bases = new Map<number, string>();
  before(async () => {
    cluster = await InProcessCluster.start(3, { requestTimeoutMs: 3000 });
    for (const id of [1, 2, 3]) {
      const member = cluster.member(id);
      const server = new ImpulseServer({ service: member.service, cluster: member.admin, logger: pino({ level: 'silent' }), version: 'test' });
      const base = `http://127.0.0.1:${(await server.listen(0, '127.0.0.1')).port}`;
      member.admin.start(base);
      servers.set(id, server);
      bases.set(id, base);
    }
    await cluster.waitForLeader();
  });
  after(async () => {
    for (const server of servers.values()) await server.close();
    await cluster.close();
  });

  it("relays each member's own status, health and view", async () => {
    const base = bases.get(1)!;
    // Client URLs are published through the log: wait until member 1 knows all three.
    for (let tries = 0; (await get(base, '/cluster')).json.members.some((member: { clientUrl: string | null }) => member.clientUrl === null); tries++) {
      assert.ok(tries < 100, 'client URLs never published');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const id of [1, 2, 3]) {
      const status = await get(base, `/cluster/nodes/${id}/status`);
      assert.equal(status.status, 200);
      assert.equal(status.json.replication.nodeId, id);
      assert.equal(typeof status.json.requests.count, 'number');
      assert.equal((await get(base, `/cluster/nodes/${id}/cluster`)).json.nodeId, id);
      assert.deepEqual(await get(base, `/cluster/nodes/${id}/health`), { status: 200, json: { status: 'ok' } });
    }
  });

  it('refuses unknown members and views, and other methods', async () => {
    const base = bases.get(1)!;
    const unknown = await get(base, '/cluster/nodes/9/status');
    assert.deepEqual([unknown.status, unknown.json.error.code], [404, 'IMPULSE_ERR_ROUTE_NOT_FOUND']);
    assert.match(unknown.json.error.message, /node 9 is not a member/);
    for (const path of ['/cluster/nodes/2/digest', '/cluster/nodes/0/status', '/cluster/nodes/x/status', '/cluster/nodes/2/status/more']) {
      assert.equal((await get(base, path)).status, 404, path);
    }
    const post = await fetch(`${base}/cluster/nodes/2/status`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET');
  });

  it('names a member whose server is gone as unreachable, at once', async () => {
    await servers.get(3)!.close();
    servers.delete(3);
    const started = Date.now();
    const gone = await get(bases.get(1)!, '/cluster/nodes/3/status');
    assert.equal(gone.status, 502);
    assert.equal(gone.json.error.code, 'IMPULSE_ERR_MEMBER_UNREACHABLE');
    assert.equal(gone.json.error.id, 3);
    assert.match(gone.json.error.message, /connection failed \(ECONNREFUSED\)/);
    assert.ok(Date.now() - started < 1000, 'a refused connection is told at once, not after the timeout');
    assert.equal((await get(bases.get(1)!, '/cluster/nodes/2/status')).status, 200);
  });
});

describe('GET /cluster/nodes/{id}/{view} on a single node', () => {
  it('says the node is not a cluster member', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-proxy-single-'));
    const service = await openLocalKvService({ engine: 'memory', dataDir: dir, sync: 'fsync', limits: DEFAULT_LIMITS });
    const server = new ImpulseServer({ service, logger: pino({ level: 'silent' }), version: 'test' });
    try {
      const base = `http://127.0.0.1:${(await server.listen(0, '127.0.0.1')).port}`;
      const answer = await get(base, '/cluster/nodes/1/status');
      assert.equal(answer.status, 404);
      assert.match(answer.json.error.message, /not a cluster member/);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('MemberProxy bounds, against misbehaving peers', () => {
  const peers: Server[] = [];
  /** A real HTTP server that answers every request with `answer`, or never when it is undefined. */
  async function peer(answer?: { status: number; type: string; body: string }): Promise<string> {
    const server = createServer((_req, res) => {
      if (answer === undefined) return; // silence
      res.writeHead(answer.status, { 'content-type': answer.type });
      res.end(answer.body);
    });
    peers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }
  after(async () => {
    for (const server of peers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('gives up on a silent member after the timeout, and refuses relays beyond the bound meanwhile', async () => {
    const silent = await peer();
    const proxy = new MemberProxy({ timeoutMs: 300, inFlightMax: 1 });
    const started = Date.now();
    const first = proxy.relay(4, silent, 'status');
    await assert.rejects(proxy.relay(4, silent, 'status'), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_OVERLOADED'));
    await assert.rejects(first, (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_MEMBER_UNREACHABLE') && /no answer within 300 ms/.test(error.message));
    assert.ok(Date.now() - started < 3000);
    // The slot is free again.
    await assert.rejects(proxy.relay(4, silent, 'status'), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_MEMBER_UNREACHABLE'));
  });

  it('refuses an answer that is not JSON or too long, and URLs that are not a client URL, and passes a member error through', async () => {
    const proxy = new MemberProxy({ answerBytesMax: 1000 });
    const html = await peer({ status: 200, type: 'text/html', body: '<h1>hi</h1>' });
    await assert.rejects(proxy.relay(5, html, 'status'), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_MEMBER_UNREACHABLE') && /not JSON/.test(error.message));
    const long = await peer({ status: 200, type: 'application/json', body: JSON.stringify({ pad: 'x'.repeat(5000) }) });
    await assert.rejects(proxy.relay(5, long, 'status'), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_MEMBER_UNREACHABLE') && /more than 1000 bytes/.test(error.message));
    for (const url of ['data:application/json,{}', 'file:///etc/passwd', 'http://127.0.0.1:1/some/path']) {
      await assert.rejects(proxy.relay(5, url, 'status'), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_MEMBER_UNREACHABLE') && /not an http\(s\) URL/.test(error.message), url);
    }
    const unhealthy = await peer({ status: 503, type: 'application/json', body: '{"status":"unavailable","reason":"no leader"}' });
    const answer = await proxy.relay(5, unhealthy, 'health');
    assert.equal(answer.status, 503);
    assert.deepEqual(JSON.parse(answer.body.toString('utf8')), { status: 'unavailable', reason: 'no leader' });
  });
});

describe('MemberProxy over HTTPS with a private CA', () => {
  it('relays from a member whose certificate chains to the given CA, and names the refusal without it', async () => {
    const pki = await TestPki.create(1);
    const member = createHttpsServer({ cert: pki.node(1).cert, key: pki.node(1).key }, (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ view: req.url, authorization: req.headers.authorization ?? null }));
    });
    try {
      await new Promise<void>((resolve) => member.listen(0, '127.0.0.1', resolve));
      const url = `https://127.0.0.1:${(member.address() as AddressInfo).port}`;
      const answer = await new MemberProxy({ ca: pki.node(1).ca }).relay(2, url, 'status', 'Bearer t-0123456789abcdef');
      assert.equal(answer.status, 200);
      assert.deepEqual(JSON.parse(answer.body.toString()), { view: '/status', authorization: 'Bearer t-0123456789abcdef' });
      await assert.rejects(new MemberProxy().relay(2, url, 'status'), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_MEMBER_UNREACHABLE') && /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED/.test(error.message));
      // Another CA's certificate is refused even with a CA given.
      const foreign = new MemberProxy({ ca: pki.node(1).ca });
      member.setSecureContext({ cert: pki.get('foreign-2').cert, key: pki.get('foreign-2').key });
      member.closeAllConnections(); // kept-alive connections keep the certificate they began with
      await assert.rejects(foreign.relay(2, url, 'status'), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_MEMBER_UNREACHABLE'));
    } finally {
      member.closeAllConnections();
      await new Promise((resolve) => member.close(resolve));
      await pki.close();
    }
  });
});
