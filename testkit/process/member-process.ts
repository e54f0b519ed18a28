/**
 * Helpers for `impulse serve` processes that tests start (ProcessCluster, the
 * chaos tester's members): signals to the child's own process group (started
 * with `detached: true`, so the whole group gets them and nothing else on the
 * machine does: tests stop only what they started, never by name), and the
 * wait for its "impulse is listening" line.
 */
import type { ChildProcess } from 'node:child_process';

/** Sends `signal` to the process group `pid` leads; false when it is gone (or never started). */
export function signalGroup(pid: number | undefined, signal: NodeJS.Signals): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // already gone
  }
}

/** kill -9 of the group (SIGCONT first: a stopped process must be able to die); resolves once `exited` does. */
export async function killGroupAndWait(pid: number | undefined, exited: Promise<void>): Promise<void> {
  signalGroup(pid, 'SIGCONT');
  signalGroup(pid, 'SIGKILL');
  await exited;
}

/**
 * Resolves once `child` logs "impulse is listening"; rejects when it exits first or after
 * `timeoutMs`, with its last output lines. Every line it prints (stdout and stderr) is appended
 * to `output`, which keeps the last `linesKept`.
 */
export function untilListening(child: ChildProcess, exited: Promise<void>, output: string[], what: string, timeoutMs: number, linesKept: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${timeoutMs} ms:\n${output.slice(-20).join('\n')}`)), timeoutMs);
    let pending = '';
    const onData = (chunk: Buffer): void => {
      pending += chunk.toString('utf8');
      for (let newline = pending.indexOf('\n'); newline !== -1; newline = pending.indexOf('\n')) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        output.push(line);
        if (output.length > linesKept) output.shift();
        if (line.includes('"msg":"impulse is listening"')) {
          clearTimeout(timer);
          resolve();
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${what} exited before listening:\n${output.slice(-20).join('\n')}`));
    });
  });
}
