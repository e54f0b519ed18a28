/**
 * `impulse cluster --nodes 3` as a user runs it: it prints the members and
 * the leader, the members serve, Ctrl-C (SIGINT) stops them all and exits 0,
 * the next start reuses the data, and with `--restart` a member that dies is
 * started again. With `--certs` (the files of `impulse certs`): HTTPS and TLS
 * on the RESP port for clients, mutual TLS between the members.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { ImpulseClient } from '../client/client.js';
import { runCli } from '../../testkit/process/cli-run.js';
import { CLI_PATH } from '../../testkit/process/server-process.js';
import { eventually } from '../../testkit/process/eventually.js';
import { processGone } from '../../testkit/process/member-process.js';
import { httpsText } from '../../testkit/security/https-text.js';

/** A base port with `count` free ports from it, and another `count` from base + 100. */
async function freeRanges(count: number): Promise<number> {
  const free = (port: number): Promise<boolean> =>
    new Promise((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const ports = Array.from({ length: count }, (_, i) => [base + i, base + 100 + i, base + 200 + i]).flat();
    if ((await Promise.all(ports.map(free))).every(Boolean)) return base;
  }
  throw new Error('no free port ranges');
}

interface Launcher {
  readonly child: ChildProcess;
  readonly output: string[];
  readonly exited: Promise<number | null>;
}

/** Starts `impulse cluster` and resolves once it printed the leader line. */
async function launch(args: readonly string[]): Promise<Launcher> {
  const child = spawn(process.execPath, [CLI_PATH, 'cluster', ...args], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no leader line:\n${output.join('\n')}`)), 60_000);
    const onData = (chunk: Buffer): void => {
      output.push(...chunk.toString('utf8').split('\n').filter((line) => line.length > 0));
      if (output.some((line) => /^ {2}leader: node \d/.test(line))) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then(() => reject(new Error(`exited early:\n${output.join('\n')}`)));
  });
  return { child, output, exited };
}

async function interrupt(launcher: Launcher): Promise<number | null> {
  process.kill(launcher.child.pid!, 'SIGINT');
  return launcher.exited;
}

describe('impulse cluster', () => {
  let dataDir: string | undefined;
  let running: Launcher | undefined;
  after(async () => {
    if (running !== undefined && running.child.exitCode === null) await interrupt(running);
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  });

  it('starts three members, prints them and the leader, stops them on Ctrl-C, reuses the data, restarts a dead member with --restart', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'impulse-launcher-'));
    const base = await freeRanges(3);
    const args = ['--nodes', '3', '--port', String(base), '--peer-port', String(base + 100), '--resp-port', String(base + 200), '--data-dir', dataDir];
    running = await launch(args);
    const printed = running.output.join('\n');
    for (let id = 1; id <= 3; id++) {
      assert.match(printed, new RegExp(`node ${id} {2}http://127\\.0\\.0\\.1:${base + id - 1} {2}peer 127\\.0\\.0\\.1:${base + 99 + id} {2}resp 127\\.0\\.0\\.1:${base + 199 + id}`));
    }
    const client = new ImpulseClient({ endpoint: `http://127.0.0.1:${base + 2}` });
    await client.put('kept', 'across restarts');
    client.close();
    const redis = new Redis({ port: base + 200, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
    await redis.connect();
    assert.equal(await redis.get('kept'), 'across restarts', 'member 1 answers the Redis protocol on --resp-port');
    redis.disconnect();
    assert.equal(await interrupt(running), 0, 'Ctrl-C exits 0 once every member stopped');
    const refused = await fetch(`http://127.0.0.1:${base}/health`).then(() => false, () => true);
    assert.ok(refused, 'the members are gone');

    running = await launch([...args, '--restart']);
    const again = new ImpulseClient({ endpoint: `http://127.0.0.1:${base}` });
    try {
      assert.equal((await again.get('kept'))?.toString(), 'across restarts', 'the data was reused');
      const member2 = new ImpulseClient({ endpoint: `http://127.0.0.1:${base + 1}` });
      const status = (await member2.status()) as { pid: number };
      member2.close();
      process.kill(status.pid, 'SIGKILL'); // a member the launcher started dies
      const deadline = Date.now() + 30_000;
      let healthy = false;
      while (!healthy && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        healthy = await fetch(`http://127.0.0.1:${base + 1}/health`).then((response) => response.ok, () => false);
      }
      assert.ok(healthy, `member 2 was not restarted:\n${running.output.join('\n')}`);
      assert.ok(running.output.some((line) => /node 2 exited unexpectedly/.test(line)));
    } finally {
      again.close();
    }
    assert.equal(await interrupt(running), 0);
  });

  it('members stop on their own when the launcher is killed with kill -9', async () => {
    const clusterDir = await mkdtemp(join(tmpdir(), 'impulse-launcher-kill-'));
    const base = await freeRanges(1);
    let memberPid: number | undefined;
    try {
      const launcher = await launch(['--nodes', '1', '--port', String(base), '--peer-port', String(base + 100), '--data-dir', clusterDir]);
      const client = new ImpulseClient({ endpoint: `http://127.0.0.1:${base}` });
      memberPid = ((await client.status()) as { pid: number }).pid;
      client.close();
      process.kill(launcher.child.pid!, 'SIGKILL'); // no handler runs: only the closed pipe tells the member
      await launcher.exited;
      const pid = memberPid;
      await eventually(`member ${pid} stops after its launcher was killed`, () => Promise.resolve(processGone(pid)));
      const refused = await fetch(`http://127.0.0.1:${base}/health`).then(() => false, () => true);
      assert.ok(refused, 'nothing answers on the member port');
    } finally {
      if (memberPid !== undefined && !processGone(memberPid)) process.kill(memberPid, 'SIGKILL');
      await rm(clusterDir, { recursive: true, force: true });
    }
  });

  it('with --certs: members serve HTTPS and RESP over TLS, and speak mutual TLS to each other', async () => {
    const certsDir = await mkdtemp(join(tmpdir(), 'impulse-launcher-certs-'));
    const clusterDir = await mkdtemp(join(tmpdir(), 'impulse-launcher-tls-'));
    try {
      const made = await runCli(['certs', '--out', certsDir, '--nodes', '3']);
      assert.equal(made.code, 0, made.stderr);
      const ca = await readFile(join(certsDir, 'ca.crt'));
      const base = await freeRanges(3);
      running = await launch(['--nodes', '3', '--certs', certsDir, '--port', String(base), '--peer-port', String(base + 100), '--resp-port', String(base + 200), '--data-dir', clusterDir]);
      const printed = running.output.join('\n');
      for (let id = 1; id <= 3; id++) assert.match(printed, new RegExp(`node ${id} {2}https://127\\.0\\.0\\.1:${base + id - 1} `));
      assert.match(printed, new RegExp(`--ca ${join(certsDir, 'ca.crt').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      // A client over TLS: a write at one member, read at another (replicated over mutual TLS).
      const writer = new ImpulseClient({ endpoint: `https://127.0.0.1:${base + 1}`, ca });
      const reader = new ImpulseClient({ endpoint: `https://127.0.0.1:${base + 2}`, ca });
      try {
        await writer.put('secure', 'replicated');
        assert.equal((await reader.get('secure'))?.toString(), 'replicated');
      } finally {
        writer.close();
        reader.close();
      }
      // The RESP port of member 1 speaks TLS with the same certificate.
      const redis = new Redis({ port: base + 200, host: '127.0.0.1', tls: { ca, servername: 'localhost' }, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      try {
        await redis.connect();
        assert.equal(await redis.get('secure'), 'replicated');
      } finally {
        redis.disconnect();
      }
      // Every member completed verified peer handshakes both ways ...
      for (let id = 1; id <= 3; id++) {
        const metrics = await httpsText(`https://127.0.0.1:${base + id - 1}/metrics`, ca);
        assert.match(metrics, /impulse_peer_tls_handshakes_total\{direction="inbound"\} [1-9]/, `member ${id}`);
        assert.match(metrics, /impulse_peer_tls_handshakes_total\{direction="outbound"\} [1-9]/, `member ${id}`);
      }
      // ... and a peer port refuses a TLS client without a member certificate.
      const stranger = tlsConnect({ port: base + 100, host: '127.0.0.1', ca, servername: 'localhost' });
      stranger.on('data', () => undefined);
      stranger.on('error', () => undefined);
      await new Promise<void>((resolve) => stranger.once('close', () => resolve()));
      await waitForText(`https://127.0.0.1:${base}/metrics`, ca, /impulse_peer_tls_refusals_total\{reason="[A-Z_]+"\} [1-9]/);
      assert.equal(await interrupt(running), 0);
    } finally {
      await rm(certsDir, { recursive: true, force: true });
      await rm(clusterDir, { recursive: true, force: true });
    }
  });
});

/** Polls `url` over HTTPS until its body matches `pattern` (10 s). */
async function waitForText(url: string, ca: Buffer, pattern: RegExp): Promise<void> {
  const deadline = Date.now() + 10_000;
  let text = '';
  while (Date.now() < deadline) {
    text = await httpsText(url, ca);
    if (pattern.test(text)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`${url} never matched ${pattern}:\n${text}`);
}
