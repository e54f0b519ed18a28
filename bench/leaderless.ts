/**
 * Leaderless mode beside Raft, on real processes (127.0.0.1, one machine):
 *
 *   1. Throughput: `wrk`, 100 connections, `--duration` s per run, PUT (a new
 *      key per request, 16-byte values: blind writes to one key would pile up
 *      siblings) and GET (1000 preloaded keys), against three leaderless
 *      members (N=3, R=W=2, at member 1) and three Raft members (at the
 *      leader), both started in the same run, `--rounds` runs each.
 *   2. Availability: the same PUT load for 20 s at a member that stays up,
 *      another member paused (SIGSTOP) from 5 s to 15 s — for Raft the leader
 *      (the member whose loss costs most; wrk talks to a follower, which
 *      forwards), for leaderless member 2 (wrk talks to member 1). Requests
 *      per second, errors (non-2xx and timeouts after 2 s) and p99 over the
 *      20 s.
 *   3. Anti-entropy cost: 100,000 keys written to three leaderless members,
 *      the last 10% while member 3 is down (W=2); member 3 restarted; then
 *      `POST /cluster/repair` at member 1: its time, and the keys and bytes
 *      the exchanges moved.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/leaderless.js [--rounds 3] [--duration 10] [--only throughput|availability|anti-entropy]
 *
 * Prints the tables and writes them to docs/benchmarks.md (section "leaderless").
 */
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessCluster } from '../testkit/process/cluster-process.js';
import { type WrkResult, runWrk, runWrkAsync } from './lib/wrk.js';
import { flag, formatNumber, machineLine, table, writeSection } from './report.js';

const rounds = Number(flag('rounds', '3'));
const durationSeconds = Number(flag('duration', '10'));
const connections = Number(flag('connections', '100'));
const only = flag('only', 'all');
const engine = flag('engine', 'lsm');
const KEYS = 1000;
const LEADERLESS_ARGS = ['--engine', engine, '--replication', 'leaderless', '--read-quorum', '2', '--write-quorum', '2'];
const RAFT_ARGS = ['--engine', engine];

async function script(name: string, body: string[]): Promise<string> {
  const path = join(tmpdir(), `impulse-leaderless-bench-${name}.lua`);
  await writeFile(path, ['counter = 0', 'request = function()', '  counter = counter + 1', ...body, 'end'].join('\n') + '\n');
  return path;
}

/** PUT of a new key per request (unique per run through `prefix`), GET cycling through the preloaded keys. */
const putScript = (prefix: string): Promise<string> => script(`put-${prefix}`, [`  return wrk.format("PUT", "/kv/${prefix}-" .. counter, nil, string.format("value-%010d", counter))`]);
const getScript = (): Promise<string> => script('get', [`  return wrk.format("GET", "/kv/key" .. (counter % ${KEYS}))`]);

async function preload(url: string): Promise<void> {
  await Promise.all(
    Array.from({ length: 20 }, async (_, worker) => {
      for (let i = worker; i < KEYS; i += 20) {
        const response = await fetch(`${url}/kv/key${i}`, { method: 'PUT', body: 'value-0000000000' });
        await response.arrayBuffer();
      }
    }),
  );
}

function median(runs: readonly WrkResult[]): WrkResult {
  return [...runs].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond)[Math.floor(runs.length / 2)]!;
}

function cells(runs: readonly WrkResult[]): string[] {
  const m = median(runs);
  const low = Math.min(...runs.map((r) => r.requestsPerSecond));
  const high = Math.max(...runs.map((r) => r.requestsPerSecond));
  return [`${formatNumber(m.requestsPerSecond)} (${formatNumber(low)}–${formatNumber(high)})`, `${m.latencyAvgMs.toFixed(1)} / ${m.latencyP99Ms.toFixed(1)}`, String(m.errors)];
}

interface Subject {
  readonly label: string;
  readonly cluster: ProcessCluster;
  /** Where wrk sends requests in the throughput runs. */
  readonly url: string;
  /** Where wrk sends requests in the availability runs: a member that is not paused (Raft: a follower, which forwards). */
  readonly follower: string;
  /** The member to pause in the availability run. */
  readonly pause: number;
}

async function subjects(): Promise<Subject[]> {
  const leaderless = await ProcessCluster.start(3, { serveArgs: LEADERLESS_ARGS });
  const raft = await ProcessCluster.start(3, { serveArgs: RAFT_ARGS });
  const leader = await raft.waitForLeader();
  const follower = (leader % 3) + 1;
  return [
    { label: `leaderless, 3 members, N=3 R=W=2 (${engine}), at member 1`, cluster: leaderless, url: leaderless.url(1), follower: leaderless.url(1), pause: 2 },
    { label: `Raft, 3 members (${engine}), at the leader`, cluster: raft, url: raft.url(leader), follower: raft.url(follower), pause: leader },
  ];
}

async function throughput(targets: readonly Subject[]): Promise<string> {
  for (const target of targets) await preload(target.url);
  const rows: string[][] = [];
  for (const target of targets) {
    const results: Record<'PUT' | 'GET', WrkResult[]> = { PUT: [], GET: [] };
    for (let round = 0; round < rounds; round++) {
      for (const method of ['PUT', 'GET'] as const) {
        const result = runWrk(target.url, method === 'PUT' ? await putScript(`t${round}`) : await getScript(), connections, durationSeconds);
        results[method].push(result);
        console.log(`${target.label.padEnd(52)} ${method} ${formatNumber(result.requestsPerSecond).padStart(7)} req/s  p99 ${result.latencyP99Ms.toFixed(1)} ms  errors ${result.errors}`);
      }
    }
    rows.push([target.label, ...cells(results.PUT), ...cells(results.GET)]);
  }
  return table(['target', 'PUT req/s median (min–max)', 'PUT avg / p99 ms', 'PUT errors', 'GET req/s median (min–max)', 'GET avg / p99 ms', 'GET errors'], rows);
}

async function availability(targets: readonly Subject[]): Promise<string> {
  const rows: string[][] = [];
  for (const target of targets) {
    const runs: WrkResult[] = [];
    for (let round = 0; round < rounds; round++) {
      const pause = setTimeout(() => target.cluster.signal(target.pause, 'SIGSTOP'), 5000);
      const resume = setTimeout(() => target.cluster.signal(target.pause, 'SIGCONT'), 15_000);
      try {
        const result = await runWrkAsync(target.follower, await putScript(`a${round}`), connections, 20, ['--timeout', '2s']);
        runs.push(result);
        console.log(`${target.label.padEnd(52)} paused ${formatNumber(result.requestsPerSecond).padStart(7)} req/s  p99 ${result.latencyP99Ms.toFixed(1)} ms  errors ${result.errors}`);
      } finally {
        clearTimeout(pause);
        clearTimeout(resume);
        target.cluster.signal(target.pause, 'SIGCONT');
      }
      // Let the paused member catch up (and, under Raft, leadership settle) before the next run.
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
    const raft = target.label.startsWith('Raft');
    rows.push([raft ? 'Raft, 3 members, at a follower' : target.label, `member ${target.pause}${raft ? ' (the leader)' : ''}`, ...cells(runs)]);
  }
  return table(['target', 'paused 5 s → 15 s', 'PUT req/s over 20 s, median (min–max)', 'avg / p99 ms', 'errors'], rows);
}

/**
 * One PUT; a connection closed under it (a keep-alive race) or a 503 (too few
 * replicas within the request time, on a loaded machine) is retried, at most
 * 5 times. A retried blind write may leave a second sibling with the same
 * value: harmless for this measurement.
 */
async function putWithRetry(url: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    let status = 0;
    try {
      const response = await fetch(url, { method: 'PUT', body: 'value-0000000000' });
      await response.arrayBuffer();
      status = response.status;
    } catch (error) {
      if (attempt >= 5 || !(error instanceof TypeError)) throw error;
      continue;
    }
    if (status === 204) return;
    if (status !== 503 || attempt >= 5) throw new Error(`${url}: HTTP ${status}`);
  }
}

/** 100,000 keys, the last 10% while member 3 is down; then one repair at member 1. */
async function antiEntropyCost(): Promise<string> {
  const cluster = await ProcessCluster.start(3, { serveArgs: LEADERLESS_ARGS });
  try {
    const total = 100_000;
    const missed = total / 10;
    const write = async (from: number, to: number, query: string): Promise<void> => {
      let next = from;
      await Promise.all(
        Array.from({ length: 16 }, async (_, worker) => {
          for (let i = next++; i < to; i = next++) await putWithRetry(`${cluster.url(1 + (worker % 2))}/kv/ae-${i}${query}`);
        }),
      );
    };
    await write(0, total - missed, '?w=all');
    await cluster.kill(3);
    await write(total - missed, total, '?w=2');
    await cluster.start(3);
    const started = performance.now();
    const report = await cluster.client(1, 600_000).repair();
    const seconds = (performance.now() - started) / 1000;
    const status = (await cluster.client(1).status()) as { figures: Record<string, number> };
    const pushed = report.exchanges.reduce((sum, exchange) => sum + ('keysPushed' in exchange ? exchange.keysPushed : 0), 0);
    const bytes = status.figures['leaderless_anti_entropy_bytes'] ?? 0;
    const digests = await Promise.all([1, 2, 3].map((id) => cluster.client(id).digest()));
    const equal = new Set(digests.map((digest) => digest.digest)).size === 1;
    console.log(`anti-entropy: ${seconds.toFixed(1)} s, ${pushed} keys pushed, ${bytes} bytes, replicas equal: ${equal}`);
    return table(
      ['keys', 'missed by member 3', 'repair time (s)', 'keys pushed', 'bytes exchanged', 'replicas equal after'],
      [[formatNumber(total), formatNumber(missed), seconds.toFixed(1), formatNumber(pushed), formatNumber(bytes), equal ? 'yes' : 'NO']],
    );
  } finally {
    await cluster.close();
  }
}

async function main(): Promise<void> {
  const sections = [machineLine() + ' · shared machine (other engineers\' work ran at the same time)', ''];
  if (only === 'all' || only === 'throughput' || only === 'availability') {
    const targets = await subjects();
    try {
      if (only !== 'availability') sections.push(`### Throughput: wrk, ${connections} connections, ${durationSeconds} s per run, ${rounds} runs\n\n${await throughput(targets)}\n`);
      if (only !== 'throughput') sections.push(`### Availability: PUT load for 20 s, one member paused (SIGSTOP) from 5 s to 15 s, ${rounds} runs\n\n${await availability(targets)}\n`);
    } finally {
      for (const target of targets) await target.cluster.close();
    }
  }
  if (only === 'all' || only === 'anti-entropy') sections.push(`### Anti-entropy: repairing a member that missed 10% of 100,000 keys\n\n${await antiEntropyCost()}\n`);
  const markdown = `## Leaderless mode beside Raft (bench/leaderless.ts)\n\n${sections.join('\n')}`;
  console.log(markdown);
  if (only === 'all') await writeSection('leaderless', markdown);
}

await main();
