/**
 * The cluster routes and /digest over HTTP: on a single node they say it is
 * not a member; on a member they answer the view and refuse malformed
 * requests with coded errors, the wrong method with 405 and Allow; /health
 * and /status carry the member's state; Retry-After comes with UNAVAILABLE.
 * On a leaderless member: the forced removal (`?force=true`) through the
 * client, refused for a member that is up.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { DEFAULT_LIMITS } from '../storage/engine.js';
import { openLocalKvService } from '../service/open-local.js';
import { InProcessCluster } from '../../testkit/cluster/in-process.js';
import { eventually, networksOfThisSuite } from '../../testkit/leaderless/network.js';
import { ImpulseClient } from '../client/client.js';
import { LeaderlessClusterAdmin } from '../cluster/open-leaderless-member.js';
import { LeaderlessKvService } from '../leaderless/leaderless-kv-service.js';
import { ImpulseServer } from './server.js';

async function call(base: string, method: string, path: string, body?: string): Promise<{ status: number; headers: Headers; json: () => any }> {
  const response = await fetch(base + path, { method, ...(body !== undefined ? { body } : {}) });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: () => JSON.parse(text) };
}

describe('cluster routes on a single node', () => {
  let dir = '';
  let server: ImpulseServer;
  let base = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'impulse-api-single-'));
    const service = await openLocalKvService({ engine: 'memory', dataDir: dir, sync: 'fsync', limits: DEFAULT_LIMITS });
    server = new ImpulseServer({ service, logger: pino({ level: 'silent' }), version: 'test' });
    base = `http://127.0.0.1:${(await server.listen(0, '127.0.0.1')).port}`;
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('say the node is not a member, and /digest digests its state', async () => {
    const cluster = await call(base, 'GET', '/cluster');
    assert.equal(cluster.status, 404);
    assert.match(cluster.json().error.message, /not a cluster member/);
    assert.equal((await call(base, 'GET', '/shards')).status, 404);
    const before = (await call(base, 'GET', '/digest')).json();
    await call(base, 'PUT', '/kv/a', 'x');
    const after = (await call(base, 'GET', '/digest')).json();
    assert.match(after.digest, /^[0-9a-f]{64}$/);
    assert.notEqual(after.digest, before.digest);
    assert.equal(after.appliedIndex, before.appliedIndex + 1);
  });
});

describe('cluster routes on a member', () => {
  let cluster: InProcessCluster;
  let server: ImpulseServer;
  let base = '';
  before(async () => {
    cluster = await InProcessCluster.start(3, { requestTimeoutMs: 3000 });
    const member = cluster.member(1);
    server = new ImpulseServer({ service: member.service, cluster: member.admin, metrics: [member.latency.histogram], logger: pino({ level: 'silent' }), version: 'test' });
    base = `http://127.0.0.1:${(await server.listen(0, '127.0.0.1')).port}`;
  });
  after(async () => {
    await server.close();
    await cluster.close();
  });

  it('answer the view, and refuse malformed requests with coded errors', async () => {
    await cluster.waitForLeader();
    const view = await call(base, 'GET', '/cluster');
    assert.equal(view.status, 200);
    assert.equal(view.json().nodeId, 1);
    assert.deepEqual(view.json().members.map((member: { id: number }) => member.id), [1, 2, 3]);
    for (const [method, path, body, status, code] of [
      ['POST', '/cluster/members', 'not json', 400, 'IMPULSE_ERR_CONFIG_INVALID'],
      ['POST', '/cluster/members', '[1]', 400, 'IMPULSE_ERR_CONFIG_INVALID'],
      ['POST', '/cluster/members', '{"id": 4, "peerUrl": "no-port"}', 400, 'IMPULSE_ERR_CONFIG_INVALID'],
      ['POST', '/cluster/members/abc/promote', undefined, 400, 'IMPULSE_ERR_CONFIG_INVALID'],
      ['DELETE', '/cluster/members/0', undefined, 400, 'IMPULSE_ERR_CONFIG_INVALID'],
      // A forced removal is leaderless-only: a Raft majority removes a down member with a normal removal.
      ['DELETE', '/cluster/members/3?force=true', undefined, 400, 'IMPULSE_ERR_CONFIG_INVALID'],
      ['POST', '/cluster/members/9/promote', undefined, 409, 'IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED'],
      ['POST', '/cluster/leader', '{"id": 9}', 409, 'IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED'],
      ['GET', '/cluster/members', undefined, 405, 'IMPULSE_ERR_METHOD_NOT_ALLOWED'],
      ['PUT', '/cluster', undefined, 405, 'IMPULSE_ERR_METHOD_NOT_ALLOWED'],
      ['POST', '/shards', undefined, 405, 'IMPULSE_ERR_METHOD_NOT_ALLOWED'],
      ['GET', '/shards/split', undefined, 405, 'IMPULSE_ERR_METHOD_NOT_ALLOWED'],
      ['POST', '/shards/split', '{"key": "m"}', 404, 'IMPULSE_ERR_ROUTE_NOT_FOUND'],
    ] as const) {
      const reply = await call(base, method, path, body);
      assert.equal(reply.status, status, `${method} ${path}: ${JSON.stringify(reply.json())}`);
      assert.equal(reply.json().error.code, code, `${method} ${path}`);
      if (status === 405) assert.ok(reply.headers.get('allow') !== null);
    }
    const shards = (await call(base, 'GET', '/shards')).json();
    assert.equal(shards.sharded, false);
    assert.deepEqual(shards.shards.map((shard: { id: number; start: string; end: string | null; replicas: number[] }) => [shard.id, shard.start, shard.end, shard.replicas]), [[1, '', null, [1, 2, 3]]]);
    const status = (await call(base, 'GET', '/status')).json();
    assert.equal(status.mode, 'raft');
    assert.equal(status.replication.nodeId, 1);
    assert.equal((await call(base, 'GET', '/health')).json().status, 'ok');
    assert.match(await (await fetch(`${base}/metrics`)).text(), /impulse_raft_commit_latency_seconds/);
  });

  it('answer 503 UNAVAILABLE with Retry-After when no leader can be found in time', async () => {
    await cluster.stop(2);
    await cluster.stop(3);
    const started = Date.now();
    const reply = await call(base, 'PUT', '/kv/lonely', 'x');
    assert.ok([503, 504].includes(reply.status), JSON.stringify(reply.json()));
    if (reply.status === 503) {
      assert.equal(reply.json().error.code, 'IMPULSE_ERR_UNAVAILABLE');
      assert.equal(reply.headers.get('retry-after'), '1');
    }
    assert.ok(Date.now() - started < 8000);
    const health = await call(base, 'GET', '/health');
    assert.equal(health.status, 503);
    assert.equal(health.json().status, 'unavailable');
  });
});

describe('cluster routes on a leaderless member: DELETE /cluster/members/{id}?force=true', () => {
  const open = networksOfThisSuite();

  it('refuses a forced removal of a member that is up (409, naming it) and a malformed query (400), and removes a member that is down through the client', async () => {
    const net = await open([1, 2, 3, 4], { antiEntropyIntervalMs: 0, tombstoneIntervalMs: 0 });
    const service = new LeaderlessKvService({ node: net.node(1), limits: DEFAULT_LIMITS, engineName: 'memory', clusterId: 'c', logger: pino({ level: 'silent' }), shutdown: async () => undefined });
    const admin = new LeaderlessClusterAdmin(net.node(1), { clusterId: 'c', nodeId: 1, advertiseClient: 'http://node1.test:7070' });
    const server = new ImpulseServer({ service, cluster: admin, logger: pino({ level: 'silent' }), version: 'test' });
    const base = `http://127.0.0.1:${(await server.listen(0, '127.0.0.1')).port}`;
    const client = new ImpulseClient({ endpoint: base, timeoutMs: 30_000 });
    try {
      await eventually('node 1 hears node 4', () => net.node(1).detector.liveness(4) === 'up');
      const live = await call(base, 'DELETE', '/cluster/members/4?force=true');
      assert.equal(live.status, 409, JSON.stringify(live.json()));
      assert.equal(live.json().error.code, 'IMPULSE_ERR_LEADERLESS_MEMBERSHIP_REJECTED');
      assert.equal(live.json().error.member, 4);
      assert.match(live.json().error.message, /without --force/);
      for (const query of ['force=1', 'force=true&x=1', 'forced=true']) {
        const bad = await call(base, 'DELETE', `/cluster/members/4?${query}`);
        assert.equal(bad.status, 400, query);
        assert.equal(bad.json().error.code, 'IMPULSE_ERR_CONFIG_INVALID', query);
      }
      assert.deepEqual({ epoch: net.node(1).membership.view.epoch, ring: net.node(1).ring.nodes }, { epoch: 0, ring: [1, 2, 3, 4] }, 'nothing changed');

      net.stop(4);
      await eventually('node 1 holds node 4 down', () => net.node(1).detector.liveness(4) === 'down');
      const view = await client.removeMember(4, { force: true });
      assert.deepEqual(view.membershipChange?.members, [1, 2, 3]);
      await eventually('the change is done', () => admin.view().membershipChange?.state === 'done');
      for (const id of [1, 2, 3]) assert.deepEqual(net.node(id).ring.nodes, [1, 2, 3], `node ${id}`);
    } finally {
      client.close();
      await server.close();
    }
  });
});
