/**
 * Helpers for the server processes that tests and benchmarks start
 * (startServerProcess, ProcessCluster, the chaos tester's members, the
 * benchmarks' redis, etcd and echo servers): `reapOnExit` so that none outlives
 * its parent (testkit/process/reap.test.ts), signals to the child's own process group (started
 * with `detached: true`, so the whole group gets them and nothing else on the
 * machine does: tests stop only what they started, never by name), and the
 * wait for its "impulse is listening" line.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

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

/** Groups started through `reapOnExit` and not yet gone: what this process must not leave behind. */
const liveGroups = new Set<number>();
let reaperInstalled = false;

/**
 * Records the process group `child` leads (started with `detached: true`) so
 * that it is killed (SIGCONT, SIGKILL) if this process exits or is stopped
 * by SIGINT, SIGTERM or SIGHUP before it stopped the child itself — a
 * benchmark interrupted by its operator, or a test file the runner kills,
 * leaves no member serving on its own. Forgotten once the child exits.
 */
export function reapOnExit(child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined) return;
  liveGroups.add(pid);
  child.once('exit', () => liveGroups.delete(pid));
  if (reaperInstalled) return;
  reaperInstalled = true;
  const reap = (): void => {
    for (const group of liveGroups) {
      signalGroup(group, 'SIGCONT');
      signalGroup(group, 'SIGKILL');
    }
  };
  process.once('exit', reap);
  for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
    // Only where nothing else handles the signal: then the default was to die, which this keeps.
    if (process.listenerCount(signal) > 0) continue;
    process.once(signal, () => {
      reap();
      process.exit(128 + number);
    });
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

/** Gone, or a zombie waiting for whoever inherited it to reap it: either way it serves nothing and holds no port. */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true; // exited between the two checks
  }
}
