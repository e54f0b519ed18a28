/**
 * The Redis protocol on real `impulse serve` processes, driven by the real
 * clients: `redis-cli` (Debian's redis-tools; .ci/run installs it) and
 * ioredis.
 *   - one node (lsm engine, fsync): every command through redis-cli, its
 *     --pipe mass insertion (a pipeline checked by an ECHO at its end), its
 *     --scan, a binary value from stdin, errors; RESP and HTTP see the same
 *     data; /metrics counts RESP; SIGTERM with an open RESP client exits 0;
 *   - three members: ioredis at every member; kill -9 of the leader; the
 *     survivors elect a new one and serve commands again through any member,
 *     and every acknowledged write is there.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';
import { type ServerProcess, startServerProcess } from '../../testkit/process/server-process.js';
import { redisCli, respPortOf } from '../../testkit/resp/redis-cli.js';

const HAVE_REDIS_CLI = spawnSync('redis-cli', ['--version']).status === 0;

describe('RESP on a real impulse process (redis-cli, ioredis)', { skip: HAVE_REDIS_CLI ? false : 'redis-cli is not installed (Debian redis-tools; .ci/run installs it)' }, () => {
  let dir = '';
  let server: ServerProcess;
  let port = 0;
  const cli = (...args: string[]): Promise<string> => redisCli(port, args);
  /** redis-cli prints an error reply and then an empty line when not on a terminal. */
  const cliError = async (...args: string[]): Promise<string> => (await cli(...args)).trimEnd();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'impulse-resp-proc-'));
    server = await startServerProcess(['--engine', 'lsm', '--data-dir', dir, '--resp-port', '0']);
    port = respPortOf(server.output);
  });
  after(async () => {
    if (server.child.exitCode === null) {
      server.kill('SIGKILL');
      await server.exited;
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('serves every command to redis-cli', async () => {
    assert.equal(await cli('PING'), 'PONG\n');
    assert.equal(await cli('ECHO', 'hi there'), 'hi there\n');
    assert.equal(await cli('SELECT', '0'), 'OK\n');
    assert.equal(await cli('SET', 'cli:a', '1'), 'OK\n');
    assert.equal(await cli('SET', 'cli:a', '2', 'NX'), '\n');
    assert.equal(await cli('SET', 'cli:a', '2', 'XX', 'GET'), '1\n');
    assert.equal(await cli('GET', 'cli:a'), '2\n');
    assert.equal(await cli('MSET', 'cli:b', '3', 'cli:c', '4'), 'OK\n');
    assert.equal(await cli('MGET', 'cli:a', 'cli:b', 'cli:none', 'cli:c'), '2\n3\n\n4\n');
    assert.equal(await cli('EXISTS', 'cli:a', 'cli:none'), '1\n');
    assert.equal(await cli('MSETNX', 'cli:a', '9', 'cli:d', '9'), '0\n');
    assert.equal(await cli('DEL', 'cli:c', 'cli:none'), '1\n');
    assert.equal(await cli('UNLINK', 'cli:b'), '1\n');
    assert.equal(await cli('--scan', '--pattern', 'cli:*'), 'cli:a\n');
    assert.match(await cli('SCAN', '0', 'MATCH', 'cli:*', 'COUNT', '10'), /^0\ncli:a\n$/);
    assert.match(await cli('DBSIZE'), /^ERR the lsm engine keeps no cheap key count|^\d+\n$/);
    assert.match(await cli('INFO', 'server'), /^# Server\r?\nredis_version:7\.0\.0/);
    assert.match(await cli('COMMAND', 'COUNT'), /^\d+\n$/);
    assert.equal(await cli('CLIENT', 'SETNAME', 'cli'), 'OK\n');
    assert.equal(await cli('AUTH', 'default', 'x'), 'OK\n');
    assert.match(await cli('-3', 'HELLO', '3'), /^server redis\nversion 7\.0\.0\nproto 3\n/);
    assert.equal(await cli('QUIT'), 'OK\n');
  });

  it('shows errors in Redis\'s wording', async () => {
    assert.equal(await cliError('LPUSH', 'l', 'x'), "ERR unknown command 'LPUSH', with args beginning with: 'l' 'x'");
    assert.equal(await cliError('GET'), "ERR wrong number of arguments for 'get' command");
    assert.equal(await cliError('SELECT', '3'), 'ERR DB index is out of range');
    assert.equal(await cliError('AUTH', 'pw'), 'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?');
  });

  it('takes commands from stdin, a binary value with -x, and a --pipe mass insertion', async () => {
    assert.equal(await redisCli(port, [], 'SET stdin:k "a b"\nGET stdin:k\n'), 'OK\na b\n');
    const binary = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7) % 256));
    assert.equal(await redisCli(port, ['-x', 'SET', 'bin:k'], binary), 'OK\n');
    const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true });
    await redis.connect();
    try {
      assert.deepEqual(await redis.getBuffer('bin:k'), binary);
      const lines = Array.from({ length: 2000 }, (_, i) => `*3\r\n$3\r\nSET\r\n$${`pipe:${i}`.length}\r\npipe:${i}\r\n$${String(i).length}\r\n${i}\r\n`).join('');
      const report = await redisCli(port, ['--pipe'], lines);
      assert.match(report, /errors: 0, replies: 2000/);
      assert.deepEqual(await redis.mget('pipe:0', 'pipe:1999'), ['0', '1999']);
      // The same store as the HTTP API.
      const response = await fetch(`${server.url}/kv/pipe%3A42`);
      assert.equal(await response.text(), '42');
      const metrics = await fetch(`${server.url}/metrics`).then((reply) => reply.text());
      assert.match(metrics, /impulse_resp_commands_total\{command="set",result="ok"\} \d+/);
      assert.match(metrics, /impulse_resp_connections 1/);
    } finally {
      redis.disconnect();
    }
  });

  it('shuts down on SIGTERM with a RESP client connected, and exits 0', async () => {
    const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
    await redis.connect();
    assert.equal(await redis.set('last', 'write'), 'OK');
    server.kill('SIGTERM');
    assert.equal(await server.exited, 0);
    redis.disconnect();
  });
});

describe('RESP on a three-member cluster with a killed leader', () => {
  let cluster: ProcessCluster | undefined;
  const clients: Redis[] = [];
  after(async () => {
    for (const client of clients) client.disconnect();
    await cluster?.close();
  });

  it('serves commands at every member, and again through the survivors after kill -9 of the leader', async () => {
    cluster = await ProcessCluster.start(3, { serveArgs: ['--resp-port', '0'] });
    const leader = await cluster.waitForLeader();
    const ports = new Map([1, 2, 3].map((id) => [id, respPortOf(cluster!.output(id).split('\n'))]));
    const at = (id: number): Redis => {
      const client = new Redis({ port: ports.get(id)!, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      clients.push(client);
      return client;
    };
    const byId = new Map([1, 2, 3].map((id) => [id, at(id)]));
    for (const client of byId.values()) await client.connect();
    // Writes through every member, reads of every key at every member (linearizable: forwarded or ReadIndex).
    for (const [id, client] of byId) assert.equal(await client.set(`member:${id}`, `v${id}`), 'OK');
    for (const client of byId.values()) assert.deepEqual(await client.mget('member:1', 'member:2', 'member:3'), ['v1', 'v2', 'v3']);
    const acknowledged = new Map<string, string>();
    for (let i = 0; i < 50; i++) {
      const follower = [1, 2, 3].find((id) => id !== leader)!;
      await byId.get(follower)!.set(`before:${i}`, String(i));
      acknowledged.set(`before:${i}`, String(i));
    }

    await cluster.kill(leader);
    const survivors = [1, 2, 3].filter((id) => id !== leader);
    // Writes through a survivor fail (TRYAGAIN) until a new leader is elected, then succeed.
    const deadline = Date.now() + 30_000;
    let acceptedAfterKill = false;
    for (let i = 0; !acceptedAfterKill; i++) {
      assert.ok(Date.now() < deadline, 'no write accepted within 30 s of the leader kill');
      try {
        await byId.get(survivors[i % 2]!)!.set('after:first', 'x');
        acknowledged.set('after:first', 'x');
        acceptedAfterKill = true;
      } catch (error) {
        assert.match((error as Error).message, /^(TRYAGAIN|ERR) /, 'a refused command says why, in a Redis error reply');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    for (let i = 0; i < 50; i++) {
      const key = `after:${i}`;
      await byId.get(survivors[i % 2]!)!.set(key, String(i));
      acknowledged.set(key, String(i));
    }
    for (const id of survivors) {
      const client = byId.get(id)!;
      const keys = [...acknowledged.keys()];
      assert.deepEqual(await client.mget(...keys), [...acknowledged.values()], `every acknowledged write at member ${id}`);
    }
    const [first, second] = survivors.map((id) => byId.get(id)!);
    assert.equal(await first!.del('after:0'), 1);
    assert.equal(await second!.exists('after:0'), 0, 'a delete through one survivor is seen through the other');
  });
});
