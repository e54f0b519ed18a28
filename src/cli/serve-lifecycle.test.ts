/**
 * `impulse serve` processes and their data-directory lock across the ways a
 * process ends: killed and left a zombie, stopped after its engine failed, and
 * sent SIGHUP. Real processes on 127.0.0.1, port 0, temporary directories.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CLI_PATH, startServerProcess } from '../../testkit/process/server-process.js';
import { hasProcfs, identityOf } from './process-identity.js';

/** A server started through `sh -c <script>`, which gets node, the CLI and the serve arguments as "$0" "$@". */
interface WrappedServer {
  readonly shell: ChildProcess;
  readonly serverPid: number;
  readonly url: string;
  readonly lines: string[];
  readonly exited: Promise<number | string>;
}

async function startWrapped(script: string, args: readonly string[]): Promise<WrappedServer> {
  const shell = spawn('sh', ['-c', script, process.execPath, CLI_PATH, 'serve', '--host', '127.0.0.1', '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so the test can stop exactly what it started
  });
  const exited = new Promise<number | string>((resolve) => shell.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const lines: string[] = [];
  let serverPid = shell.pid!;
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line within 15 s:\n${lines.join('\n')}`)), 15_000);
    let pending = '';
    const onData = (chunk: Buffer): void => {
      pending += chunk.toString('utf8');
      for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        lines.push(line);
        const announced = /^server-pid ([0-9]+)$/.exec(line);
        if (announced) serverPid = Number(announced[1]);
        if (line.includes('"impulse is listening"')) {
          clearTimeout(timer);
          resolve((JSON.parse(line) as { url: string }).url);
        }
      }
    };
    shell.stdout!.on('data', onData);
    shell.stderr!.on('data', onData);
    void exited.then((code) => reject(new Error(`exited (${code}) before listening:\n${lines.join('\n')}`)));
  });
  return { shell, serverPid, url, lines, exited };
}

async function stopGroup(shell: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (shell.exitCode === null && shell.signalCode === null) process.kill(-shell.pid!, 'SIGKILL');
  await exited;
}

async function waitFor(condition: () => boolean | Promise<boolean>, what: () => string, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The claims in a lock directory; an old-style lock FILE counts as a claim that was not released. */
async function claimsIn(lockPath: string): Promise<string[]> {
  const found = await stat(lockPath).catch(() => undefined);
  if (found === undefined) return [];
  return found.isDirectory() ? readdir(lockPath) : ['<lock file>'];
}

describe('serve: the data-directory lock across process lifecycles', () => {
  it('restarts over a data directory whose previous server was killed with -9 and is still an unreaped zombie', { skip: !hasProcfs() && 'needs /proc to tell a zombie' }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-zombie-'));
    // The server runs in the background of sh, which then becomes `sleep`: a parent that never reaps it.
    const first = await startWrapped('"$0" "$@" & echo "server-pid $!"; exec sleep 300', ['--engine', 'btree', '--data-dir', dir]);
    try {
      const put = await fetch(`${first.url}/kv/before-kill`, { method: 'PUT', body: 'kept' });
      assert.equal(put.status, 204);
      process.kill(first.serverPid, 'SIGKILL');
      await waitFor(() => identityOf(first.serverPid)?.state === 'Z', () => `server ${first.serverPid} to become a zombie: ${JSON.stringify(identityOf(first.serverPid))}`);
      const second = await startServerProcess(['--engine', 'btree', '--data-dir', dir]);
      try {
        assert.equal(await (await fetch(`${second.url}/kv/before-kill`)).text(), 'kept');
        assert.equal(identityOf(first.serverPid)?.state, 'Z', 'the old server was a zombie all along');
      } finally {
        second.kill('SIGTERM');
        assert.equal(await second.exited, 0);
      }
    } finally {
      await stopGroup(first.shell, first.exited);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('releases the lock when SIGTERM comes after the engine failed (its shutdown fails), so a restart finds no claim', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-failed-'));
    // A 200 KB file size limit: the lsm WAL write fails with EFBIG and the engine turns fail-stop; closing it then fails too.
    const server = await startWrapped('ulimit -f 400; exec "$0" "$@"', ['--engine', 'lsm', '--data-dir', dir]);
    try {
      let failed = false;
      for (let i = 0; i < 100 && !failed; i++) failed = (await fetch(`${server.url}/kv/k${i}`, { method: 'PUT', body: 'x'.repeat(50_000) })).status === 500;
      assert.ok(failed, 'the engine failed');
      server.shell.kill('SIGTERM');
      assert.equal(await server.exited, 1, 'the failed shutdown exits 1');
      assert.ok(server.lines.some((line) => line.includes('error during shutdown')));
      assert.deepEqual(await claimsIn(join(dir, 'lsm.lock')), [], 'no claim left behind');
    } finally {
      await stopGroup(server.shell, server.exited);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('logs SIGHUP (nothing to reload without security files), keeps serving, and still stops cleanly on SIGTERM', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-sighup-'));
    try {
      const server = await startServerProcess(['--engine', 'leveldb', '--data-dir', dir]);
      server.kill('SIGHUP');
      await waitFor(() => server.output.some((line) => line.includes('nothing to reload')), () => `the SIGHUP log line:\n${server.output.join('\n')}`);
      assert.equal((await fetch(`${server.url}/kv/after-hup`, { method: 'PUT', body: 'v' })).status, 204);
      server.kill('SIGTERM');
      assert.equal(await server.exited, 0);
      assert.deepEqual(await claimsIn(join(dir, 'leveldb.lock')), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
