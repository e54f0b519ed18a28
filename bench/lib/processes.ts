/**
 * Process helpers for benchmark scripts: free ports, killing a process group
 * we started and waiting until it is gone, polling for a condition.
 */
import type { ChildProcess } from 'node:child_process';

/** Free ports below the ephemeral range, as tests use them (testkit/process/ports.ts says why). */
export { freePorts } from '../../testkit/process/ports.js';

/** kill -9 of the process group led by `child` (started with `detached: true`), then waits until it has exited. */
export async function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
  await exited;
}

/** Polls `condition` every 50 ms until it is true; throws after `timeoutMs` naming `what`. */
export async function waitFor(condition: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
