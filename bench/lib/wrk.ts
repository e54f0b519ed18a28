/**
 * Running `wrk` and reading its summary, for the HTTP benchmarks.
 */
import { execFileSync } from 'node:child_process';

export interface WrkResult {
  readonly requestsPerSecond: number;
  readonly latencyAvgMs: number;
  readonly latencyP99Ms: number;
  /** Non-2xx/3xx answers plus socket timeouts. */
  readonly errors: number;
}

/** `wrk -t1 -c<connections> -d<seconds>s --latency -s <script> <url>`; throws when the output cannot be read. */
export function runWrk(url: string, script: string, connections: number, durationSeconds: number): WrkResult {
  const output = execFileSync('wrk', ['-t1', `-c${connections}`, `-d${durationSeconds}s`, '--latency', '-s', script, url], { encoding: 'utf8' });
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
