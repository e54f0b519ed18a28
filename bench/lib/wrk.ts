/**
 * Running `wrk` from a benchmark script and reading its summary: requests per
 * second, average and p99 latency, and errors (non-2xx/3xx answers plus
 * socket timeouts).
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

export interface WrkResult {
  readonly requestsPerSecond: number;
  readonly latencyAvgMs: number;
  readonly latencyP99Ms: number;
  readonly errors: number;
}

/** One wrk run of `script` against `url` (one thread, `connections` connections, `durationSeconds`). */
export function runWrk(url: string, script: string, connections: number, durationSeconds: number, extraArgs: readonly string[] = []): WrkResult {
  return parseWrk(execFileSync('wrk', wrkArgs(url, script, connections, durationSeconds, extraArgs), { encoding: 'utf8' }));
}

/** `runWrk` without blocking the event loop (timers of the caller keep firing while wrk runs). */
export async function runWrkAsync(url: string, script: string, connections: number, durationSeconds: number, extraArgs: readonly string[] = []): Promise<WrkResult> {
  const { stdout } = await promisify(execFile)('wrk', wrkArgs(url, script, connections, durationSeconds, extraArgs), { encoding: 'utf8' });
  return parseWrk(stdout);
}

function wrkArgs(url: string, script: string, connections: number, durationSeconds: number, extraArgs: readonly string[]): string[] {
  return ['-t1', `-c${connections}`, `-d${durationSeconds}s`, '--latency', ...extraArgs, '-s', script, url];
}

function parseWrk(output: string): WrkResult {
  const requestsPerSecond = Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1]);
  const latencyAvgMs = toMs(/Latency\s+([\d.]+\w+)/.exec(output)?.[1]);
  const latencyP99Ms = toMs(/99%\s+([\d.]+\w+)/.exec(output)?.[1]);
  const errors = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(output)?.[1] ?? 0) + Number(/Socket errors:.*?timeout (\d+)/.exec(output)?.[1] ?? 0);
  if (!Number.isFinite(requestsPerSecond)) throw new Error(`cannot parse wrk output:\n${output}`);
  return { requestsPerSecond, latencyAvgMs, latencyP99Ms, errors };
}

function toMs(text: string | undefined): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(text ?? '');
  if (!match) return NaN;
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}
