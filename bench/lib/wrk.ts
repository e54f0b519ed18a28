/**
 * Running `wrk` from a benchmark script and reading its summary: requests per
 * second, average and p99 latency, and errors (non-2xx/3xx answers plus
 * socket timeouts).
 */
import { execFile, execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface WrkResult {
  readonly requestsPerSecond: number;
  readonly latencyAvgMs: number;
  readonly latencyP99Ms: number;
  /** Non-2xx/3xx answers plus socket timeouts. */
  readonly errors: number;
  /** Every answer wrk counted (errors' answers included) and over how long. */
  readonly requests: number;
  readonly durationSeconds: number;
  /** Answers outside 2xx/3xx (part of `requests`). */
  readonly non2xx: number;
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
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(output)?.[1] ?? 0);
  const errors = non2xx + Number(/Socket errors:.*?timeout (\d+)/.exec(output)?.[1] ?? 0);
  const total = /(\d+) requests in ([\d.]+)(m|s)/.exec(output);
  if (!Number.isFinite(requestsPerSecond) || total === null) throw new Error(`cannot parse wrk output:\n${output}`);
  const durationSeconds = Number(total[2]) * (total[3] === 'm' ? 60 : 1);
  return { requestsPerSecond, latencyAvgMs, latencyP99Ms, errors, requests: Number(total[1]), durationSeconds, non2xx };
}

function toMs(text: string | undefined): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(text ?? '');
  if (!match) return NaN;
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

/** Writes a wrk Lua script whose `request` function runs `body` with `counter` counting requests; returns its path. */
export async function requestScript(name: string, body: readonly string[]): Promise<string> {
  const path = join(tmpdir(), `impulse-wrk-${process.pid}-${name}.lua`);
  await writeFile(path, ['counter = 0', 'request = function()', '  counter = counter + 1', ...body, 'end'].join('\n') + '\n');
  return path;
}

/** A wrk script PUTting a new key per request, `/kv/<prefix>-<n><query>` (a 16-byte value). */
export function putNewKeysScript(prefix: string, query = ''): Promise<string> {
  return requestScript(`put-${prefix}`, [`  return wrk.format("PUT", "/kv/${prefix}-" .. counter .. "${query}", nil, string.format("value-%010d", counter))`]);
}
