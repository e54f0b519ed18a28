/**
 * A server started through `startServerProcess` (and so through every helper
 * that registers its child with `reapOnExit`) does not outlive the process
 * that started it: a test file the runner stops with SIGTERM, or one that
 * exits without stopping its servers, leaves nothing serving.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { processGone as isGone, signalGroup } from './member-process.js';
import { eventually } from './eventually.js';

const SERVER_PROCESS_URL = new URL('./server-process.js', import.meta.url).href;

/**
 * Starts a parent process that starts a memory-engine server and prints its PID, then
 * `ending` once it has: 'exit' exits without stopping the server, a signal waits to be sent it.
 */
async function parentWithServer(dataDir: string, ending: 'exit' | 'wait'): Promise<{ parentExit: Promise<number | string>; serverPid: number; parentPid: number }> {
  const script = [
    `const { startServerProcess } = await import(${JSON.stringify(SERVER_PROCESS_URL)});`,
    `const server = await startServerProcess(['--engine', 'memory', '--data-dir', ${JSON.stringify(dataDir)}]);`,
    'console.log(`server ${server.pid}`);',
    // Waiting, it still exits (and so reaps its server) when this test process dies and its stdin closes.
    ending === 'exit' ? 'process.exit(1);' : "process.stdin.on('end', () => process.exit(1)).resume();",
  ].join('\n');
  const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { detached: true, stdio: ['pipe', 'pipe', 'inherit'] });
  const parentExit = new Promise<number | string>((resolve) => parent.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const serverPid = await new Promise<number>((resolve, reject) => {
    let out = '';
    parent.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /server (\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    // Its output's end, not its exit: the exit event may come before the last output is read.
    parent.stdout.once('end', () => reject(new Error(`the parent's output ended before it named its server: ${out}`)));
  });
  return { parentExit, serverPid, parentPid: parent.pid! };
}

describe('reapOnExit: a spawned server does not outlive its parent', { concurrency: false }, () => {
  for (const ending of ['SIGTERM', 'exit'] as const) {
    it(ending === 'exit' ? 'the parent exits without stopping it' : 'the parent is stopped by SIGTERM', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'impulse-reap-'));
      let serverPid: number | undefined;
      try {
        const parent = await parentWithServer(dir, ending === 'exit' ? 'exit' : 'wait');
        serverPid = parent.serverPid;
        if (ending === 'SIGTERM') {
          assert.ok(!isGone(serverPid), 'the server runs while its parent does'); // (an exiting parent may have reaped it already)
          process.kill(parent.parentPid, 'SIGTERM');
        }
        assert.equal(await parent.parentExit, ending === 'SIGTERM' ? 128 + 15 : 1);
        await eventually('the server is gone after its parent', async () => isGone(serverPid!), 15_000);
      } finally {
        // Only if the check failed: never leave the server this test started running.
        if (serverPid !== undefined && !isGone(serverPid)) signalGroup(serverPid, 'SIGKILL');
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
