/**
 * `impulse cluster --nodes 3` as a user runs it: it prints the members and
 * the leader, the members serve, Ctrl-C (SIGINT) stops them all and exits 0,
 * the next start reuses the data, and with `--restart` a member that dies is
 * started again.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { ImpulseClient } from '../client/client.js';
import { CLI_PATH } from '../../testkit/process/server-process.js';

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
});
