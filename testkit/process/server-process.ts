/**
 * Starts a real `impulse serve` process for tests and benchmarks: port 0 on
 * 127.0.0.1, waits for the "listening" log line, and hands back its URL and
 * PID. Only the processes started here are ever signalled. Each runs in its
 * own process group and is killed if this process exits or is stopped by
 * SIGINT, SIGTERM or SIGHUP first (`reapOnExit`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { reapOnExit } from './member-process.js';

export const CLI_PATH = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface ServerProcess {
  readonly url: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Lines the process wrote to stdout and stderr so far (bounded to the last 500). */
  readonly output: string[];
  /** Resolves with the exit code (or signal name) when the process has exited. */
  readonly exited: Promise<number | string>;
  kill(signal: NodeJS.Signals): void;
}

/**
 * Spawns `impulse serve` with `args` and resolves once it logs that it listens.
 * The "listening" line is logged at info level: do not pass `--log-level` above info.
 */
export async function startServerProcess(args: readonly string[], startTimeoutMs = 15_000): Promise<ServerProcess> {
  const child = spawn(process.execPath, [CLI_PATH, 'serve', '--host', '127.0.0.1', '--port', '0', ...args], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  reapOnExit(child);
  const output: string[] = [];
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL'); // never leave a half-started server behind
      reject(new Error(`server did not start within ${startTimeoutMs} ms:\n${output.join('\n')}`));
    }, startTimeoutMs);
    let pending = '';
    const onData = (chunk: Buffer): void => {
      pending += chunk.toString('utf8');
      let newline;
      while ((newline = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        output.push(line);
        if (output.length > 500) output.shift();
        try {
          const record = JSON.parse(line) as { msg?: string; url?: string };
          if (record.msg === 'impulse is listening' && record.url) {
            clearTimeout(timer);
            resolve(record.url);
          }
        } catch {
          // not a log line
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening:\n${output.join('\n')}`));
    });
  });
  return { url, pid: child.pid!, child, output, exited, kill: (signal) => child.kill(signal) };
}
