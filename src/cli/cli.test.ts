/** The `impulse` binary as a user runs it: real processes, exit codes, one-sentence errors. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LsmEngine } from '../storage/lsm/lsm-engine.js';
import { ENGINE_NAMES } from '../storage/registry.js';
import { type CliRun, runCli } from '../../testkit/process/cli-run.js';
import { type ServerProcess, startServerProcess } from '../../testkit/process/server-process.js';

const run = (args: string[], input?: Buffer): Promise<CliRun> => runCli(args, input === undefined ? {} : { input });

describe('impulse CLI', () => {
  let dir = '';
  let server: ServerProcess;
  let endpoint: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'impulse-cli-'));
    server = await startServerProcess(['--engine', 'leveldb', '--data-dir', dir, '--log-level', 'info']);
    endpoint = ['--endpoint', server.url];
  });
  after(async () => {
    server.kill('SIGTERM');
    await server.exited;
    await rm(dir, { recursive: true, force: true });
  });

  it('puts, gets, scans and deletes through a real server', async () => {
    assert.equal((await run([...endpoint, 'put', 'user/1', 'alice'])).code, 0);
    assert.equal((await run([...endpoint, 'put', 'user/2'], Buffer.from([0xff, 0x00, 0x01]))).code, 0);
    const got = await run([...endpoint, 'get', 'user/1']);
    assert.equal(got.code, 0);
    assert.equal(got.stdout.toString(), 'alice');
    assert.deepEqual((await run([...endpoint, 'get', 'user/2'])).stdout, Buffer.from([0xff, 0x00, 0x01]));
    const scan = await run([...endpoint, 'scan', '--prefix', 'user/']);
    assert.equal(scan.stdout.toString(), `user/1\talice\nuser/2\tbase64:${Buffer.from([0xff, 0, 1]).toString('base64')}\n`);
    const reverse = await run([...endpoint, 'scan', '--prefix', 'user/', '--reverse', '--limit', '1', '--json']);
    assert.equal(JSON.parse(reverse.stdout.toString()).key, 'user/2');
    assert.equal((await run([...endpoint, 'del', 'user/1'])).code, 0);
    const missing = await run([...endpoint, 'get', 'user/1']);
    assert.equal(missing.code, 4);
    assert.equal(missing.stderr, 'impulse: key "user/1" not found\n');
    const status = JSON.parse((await run([...endpoint, 'status'])).stdout.toString());
    assert.equal(status.engine, 'leveldb');
  });

  it('writes with conditions, shows revisions, and exits 3 when a condition does not hold', async () => {
    const created = await run([...endpoint, 'put', '--if-absent', '--revision', 'cond/1', 'one']);
    assert.equal(created.code, 0, created.stderr);
    const revision = Number(/^revision (\d+)\n$/.exec(created.stderr)?.[1]);
    assert.ok(revision > 0, created.stderr);
    const again = await run([...endpoint, 'put', '--if-absent', 'cond/1', 'two']);
    assert.equal(again.code, 3);
    assert.match(again.stderr, /^impulse: the condition of op 0 does not hold: key "cond\/1" has revision \d+; nothing was changed\n$/);
    const got = await run([...endpoint, 'get', '--revision', 'cond/1']);
    assert.equal(got.stdout.toString(), 'one');
    assert.equal(got.stderr, `revision ${revision}\n`);
    assert.equal((await run([...endpoint, 'put', '--if-revision', String(revision + 1000), 'cond/1', 'two'])).code, 3);
    assert.equal((await run([...endpoint, 'put', '--if-revision', String(revision), 'cond/1', 'two'])).code, 0);
    const json = JSON.parse((await run([...endpoint, 'scan', '--prefix', 'cond/', '--json'])).stdout.toString());
    assert.equal(json.value, 'two');
    assert.ok(json.revision > revision);
    assert.equal((await run([...endpoint, 'del', '--if-revision', String(revision), 'cond/1'])).code, 3);
    assert.equal((await run([...endpoint, 'del', '--if-revision', String(json.revision), 'cond/1'])).code, 0);
    assert.equal((await run([...endpoint, 'get', '--consistency', 'serializable', 'cond/1'])).code, 4);
    const usage = await run([...endpoint, 'put', '--if-revision', 'x', 'cond/1', 'v']);
    assert.equal(usage.code, 2);
    assert.equal((await run([...endpoint, 'put', '--if-revision', '3', '--if-absent', 'cond/1', 'v'])).code, 2);
  });

  it('refuses to serve a data directory written by an older impulse, and leaves it untouched', async () => {
    const own = await mkdtemp(join(tmpdir(), 'impulse-cli-old-'));
    try {
      const old = new LsmEngine({ dataDir: join(own, 'lsm') }); // the engine's files straight in <dir>/lsm, as before the service layer
      await old.open();
      await old.put(Buffer.from('user/1'), Buffer.from('alice'));
      await old.close();
      const before = (await readdir(join(own, 'lsm'))).sort();
      const refused = await run(['serve', '--port', '0', '--engine', 'lsm', '--data-dir', own]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /^impulse: .*written by an older impulse/);
      assert.deepEqual((await readdir(join(own, 'lsm'))).sort(), before);
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  });

  it('prints one sentence and exits 1 when the server rejects a request', async () => {
    const tooLong = await run([...endpoint, 'put', 'k'.repeat(5000), 'v']);
    assert.equal(tooLong.code, 1);
    assert.match(tooLong.stderr, /^impulse: key is 5000 bytes; the limit is 4096\n$/);
  });

  it('logs structured JSON lines', () => {
    const line = server.output.find((text) => text.includes('impulse is listening'));
    assert.ok(line);
    const record = JSON.parse(line);
    assert.equal(record.engine, 'leveldb');
    assert.equal(typeof record.pid, 'number');
  });

  it('prints one sentence and exits 5 when nothing listens at the endpoint', async () => {
    const free = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    const result = await run(['--endpoint', `http://127.0.0.1:${free}`, 'get', 'x']);
    assert.equal(result.code, 5);
    assert.equal(result.stderr.trim().split('\n').length, 1);
    assert.match(result.stderr, /^impulse: cannot connect to http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\); is the server running\?/);
  });

  it('times out with one sentence when the server does not answer', async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as { port: number };
      const result = await run(['--endpoint', `http://127.0.0.1:${port}`, '--timeout', '300', 'get', 'x']);
      assert.equal(result.code, 5);
      assert.match(result.stderr, /^impulse: http:\/\/127\.0\.0\.1:\d+ did not answer GET within 300 ms\n$/);
    } finally {
      silent.close();
    }
  });

  it('validates serve configuration up front and exits 2 with a clear message', async () => {
    const badPort = await run(['serve', '--port', '99999', '--data-dir', dir]);
    assert.equal(badPort.code, 2);
    assert.match(badPort.stderr, /--port must be an integer from 0 to 65535/);
    const badEngine = await run(['serve', '--engine', 'nosuch', '--data-dir', dir]);
    assert.equal(badEngine.code, 2);
    assert.match(badEngine.stderr, /^impulse: option '--engine <engine>' argument 'nosuch' is invalid\. Allowed choices are [a-z, ]+\. \(see --help\)\n$/);
    const badSync = await run(['serve', '--sync', 'always', '--data-dir', dir]);
    assert.equal(badSync.code, 2);
    assert.equal(badSync.stderr.split('\n').length, 2, badSync.stderr);
    const badLimit = await run(['serve', '--value-bytes-max', '-5', '--data-dir', dir]);
    assert.equal(badLimit.code, 2);
    assert.match(badLimit.stderr, /--value-bytes-max must be an integer/);
    const badResp = await run(['serve', '--resp-port', 'six', '--data-dir', dir]);
    assert.equal(badResp.code, 2);
    assert.match(badResp.stderr, /--resp-port must be an integer from 0 to 65535/);
    const samePorts = await run(['serve', '--port', '7399', '--resp-port', '7399', '--data-dir', dir]);
    assert.equal(samePorts.code, 2);
    assert.match(samePorts.stderr, /--resp-port 7399 is the HTTP --port/);
    const handshakesWithoutTls = await run(['serve', '--tls-handshakes-max', '10', '--data-dir', dir]);
    assert.equal(handshakesWithoutTls.code, 2);
    assert.match(handshakesWithoutTls.stderr, /--tls-handshakes-max needs --tls-cert/);
    const noHandshakes = await run(['serve', '--tls-handshakes-max', '0', '--tls-cert', 'c', '--tls-key', 'k', '--data-dir', dir]);
    assert.equal(noHandshakes.code, 2);
    assert.match(noHandshakes.stderr, /--tls-handshakes-max must be an integer from 1 to 100000/);
  });

  it('refuses a data directory that a running server holds, for every engine, and takes over a stale lock after kill -9', async () => {
    const held = await run(['serve', '--port', '0', '--engine', 'leveldb', '--data-dir', dir]);
    assert.equal(held.code, 1);
    assert.match(held.stderr, new RegExp(`^impulse: the data directory is in use by process ${server.pid} `));
    for (const engine of ENGINE_NAMES.filter((name) => name !== 'memory' && name !== 'leveldb')) {
      const own = await mkdtemp(join(tmpdir(), `impulse-cli-lock-${engine}-`));
      try {
        const first = await startServerProcess(['--engine', engine, '--data-dir', own]);
        const second = await run(['serve', '--port', '0', '--engine', engine, '--data-dir', own]);
        assert.equal(second.code, 1, `${engine}: a second server on the same directory must be refused`);
        assert.match(second.stderr, /in use by process/);
        first.kill('SIGKILL');
        await first.exited;
        const third = await startServerProcess(['--engine', engine, '--data-dir', own]);
        third.kill('SIGTERM');
        assert.equal(await third.exited, 0);
      } finally {
        await rm(own, { recursive: true, force: true });
      }
    }
  });

  it('shuts down cleanly on SIGTERM and SIGINT', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const own = await mkdtemp(join(tmpdir(), 'impulse-cli-signal-'));
      try {
        const node = await startServerProcess(['--engine', 'leveldb', '--data-dir', own]);
        node.kill(signal);
        assert.equal(await node.exited, 0);
        assert.ok(node.output.some((line) => line.includes('store closed')));
      } finally {
        await rm(own, { recursive: true, force: true });
      }
    }
  });
});
