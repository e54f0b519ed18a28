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
 *   3. Network split two to one (bench/leaderless-split.ts): the same PUT
 *      load on both sides while one member is cut off for 10 s, in network
 *      namespaces (needs root); leaderless beside Raft.
 *   4. Anti-entropy cost: 100,000 keys written to three leaderless members,
 *      the last 10% while member 3 is down (W=2); member 3 restarted; then
 *      `POST /cluster/repair` at member 1: its time, and the keys and bytes
 *      the exchanges moved, the members' CPU time.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/leaderless.js [--rounds 3] [--duration 10] [--only throughput|availability|split|anti-entropy]
 *     [--keys 100000] [--request-timeout-ms 10000]
 *
 * Prints the tables and writes them to docs/benchmarks.md (section "leaderless").
 */
import { readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { ProcessCluster } from '../testkit/process/cluster-process.js';
import { type WrkResult, putNewKeysScript, requestScript, runWrk, runWrkAsync } from './lib/wrk.js';
import { flag, formatNumber, machineLine, table, writeSection } from './report.js';
import { splitTable } from './leaderless-split.js';

const rounds = Number(flag('rounds', '3'));
const durationSeconds = Number(flag('duration', '10'));
const connections = Number(flag('connections', '100'));
const only = flag('only', 'all');
const engine = flag('engine', 'lsm');
/** Leaderless members' --request-timeout-ms in the anti-entropy run (its loader): generous, the machine is shared. */
const requestTimeoutMs = Number(flag('request-timeout-ms', '10000'));
const KEYS = 1000;
const LEADERLESS_ARGS = ['--engine', engine, '--replication', 'leaderless', '--read-quorum', '2', '--write-quorum', '2'];
const RAFT_ARGS = ['--engine', engine];

/** PUT of a new key per request (unique per run through `prefix`), GET cycling through the preloaded keys. */
const putScript = (prefix: string): Promise<string> => putNewKeysScript(prefix);
const getScript = (): Promise<string> => requestScript('get', [`  return wrk.format("GET", "/kv/key" .. (counter % ${KEYS}))`]);

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
 * replicas within the request time, on a loaded machine) is retried after a
 * growing pause (100 ms doubling to 2 s), at most `PUT_ATTEMPTS` times in all.
 * A retried blind write may leave a second sibling with the same value:
 * harmless for this measurement.
 */
const PUT_ATTEMPTS = 10;
let putRetries = 0;
async function putWithRetry(url: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    let status = 0;
    try {
      const response = await fetch(url, { method: 'PUT', body: 'value-0000000000' });
      await response.arrayBuffer();
      status = response.status;
    } catch (error) {
      if (attempt >= PUT_ATTEMPTS || !(error instanceof TypeError)) throw error;
    }
    if (status === 204) return;
    if ((status !== 0 && status !== 503) || attempt >= PUT_ATTEMPTS) throw new Error(`${url}: HTTP ${status} after ${attempt} attempts`);
    putRetries++;
    await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * 2 ** (attempt - 1))));
  }
}

/** CPU seconds (user + system) process `pid` has used so far, from /proc (Linux). */
async function cpuSeconds(pid: number | undefined): Promise<number> {
  if (pid === undefined) return NaN;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // Fields after the command name (which may hold spaces): utime and stime are fields 14 and 15, in clock ticks (100 per second on Linux).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const REPAIR_CALLS_MAX = 5;

interface RepairRun {
  /** `POST /cluster/repair` calls until the digests were equal (or REPAIR_CALLS_MAX). */
  readonly calls: number;
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly keysPushed: number;
  readonly bytes: number;
  readonly exchanges: number;
  readonly equal: boolean;
  readonly loadSeconds: number;
}

/** The anti-entropy figures summed over members 1 to 3 (their `/status`). */
async function antiEntropyFigures(cluster: ProcessCluster): Promise<{ bytes: number; pushed: number; exchanges: number }> {
  const figures = await Promise.all([1, 2, 3].map(async (id) => ((await cluster.client(id).status()) as { figures: Record<string, number> }).figures));
  const sum = (name: string): number => figures.reduce((total, f) => total + (f[name] ?? 0), 0);
  return { bytes: sum('leaderless_anti_entropy_bytes'), pushed: sum('leaderless_anti_entropy_keys_pushed'), exchanges: sum('leaderless_anti_entropy_exchanges') };
}

/**
 * 100,000 keys (16 writers spread over members 1 and 2), the last 10% while
 * member 3 is down (W=2; with three members there is no stand-in, so no hint
 * holds them); member 3 restarted; then `POST /cluster/repair` at member 1,
 * again while the digests differ (at most REPAIR_CALLS_MAX calls; one
 * normally suffices). The figures are deltas over the repair, summed over the three members
 * (a periodic exchange that happens to run meanwhile is counted too); CPU is
 * the three member processes' user + system time.
 */
async function antiEntropyRun(total: number): Promise<RepairRun> {
  const cluster = await ProcessCluster.start(3, { serveArgs: [...LEADERLESS_ARGS, '--request-timeout-ms', String(requestTimeoutMs)] });
  try {
    const missed = total / 10;
    const write = async (from: number, to: number, query: string): Promise<void> => {
      let next = from;
      await Promise.all(
        Array.from({ length: 16 }, async (_, worker) => {
          for (let i = next++; i < to; i = next++) await putWithRetry(`${cluster.url(1 + (worker % 2))}/kv/ae-${i}${query}`);
        }),
      );
    };
    const loadStarted = performance.now();
    await write(0, total - missed, '?w=all');
    await cluster.kill(3);
    await write(total - missed, total, '?w=2');
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    await cluster.start(3);
    const before = await antiEntropyFigures(cluster);
    const cpuBefore = await Promise.all([1, 2, 3].map((id) => cpuSeconds(cluster.pid(id))));
    const started = performance.now();
    // One `repair` normally suffices; one that reports a failed exchange is called again, at most REPAIR_CALLS_MAX times in all.
    let calls = 0;
    let equal = false;
    while (!equal && calls < REPAIR_CALLS_MAX) {
      calls++;
      const report = await cluster.client(1, 600_000).repair();
      for (const exchange of report.exchanges) if ('error' in exchange) console.log(`  repair call ${calls}: exchange with member ${exchange.peer} failed: ${exchange.error}`);
      const digests = await Promise.all([1, 2, 3].map((id) => cluster.client(id).digest()));
      equal = new Set(digests.map((digest) => digest.digest)).size === 1;
    }
    const seconds = (performance.now() - started) / 1000;
    const cpuAfter = await Promise.all([1, 2, 3].map((id) => cpuSeconds(cluster.pid(id))));
    const after = await antiEntropyFigures(cluster);
    return {
      calls,
      seconds,
      cpuSeconds: cpuAfter.reduce((sum, value, i) => sum + value - cpuBefore[i]!, 0),
      keysPushed: after.pushed - before.pushed,
      bytes: after.bytes - before.bytes,
      exchanges: after.exchanges - before.exchanges,
      equal,
      loadSeconds,
    };
  } finally {
    await cluster.close();
  }
}

async function antiEntropyCost(): Promise<string> {
  const total = Number(flag('keys', '100000'));
  const runs: RepairRun[] = [];
  for (let round = 0; round < rounds; round++) {
    const run = await antiEntropyRun(total);
    runs.push(run);
    console.log(`anti-entropy run ${round + 1}: ${run.seconds.toFixed(1)} s in ${run.calls} repair call(s), CPU ${run.cpuSeconds.toFixed(1)} s, ${run.keysPushed} keys pushed, ${run.bytes} bytes, ${run.exchanges} exchanges, replicas equal: ${run.equal} (load ${run.loadSeconds.toFixed(0)} s, ${putRetries} PUT retries so far; ${loadLine()})`);
  }
  const spread = (values: number[], digits: number): string => {
    const sorted = [...values].sort((a, b) => a - b);
    const show = (value: number): string => formatNumber(value, digits);
    return `${show(sorted[Math.floor(sorted.length / 2)]!)} (${show(sorted[0]!)}–${show(sorted[sorted.length - 1]!)})`;
  };
  return table(
    ['keys', 'missed by member 3', 'runs', 'repair calls', 'repair time s', 'CPU s (3 members)', 'keys pushed', 'bytes exchanged', 'exchanges', 'replicas equal after'],
    [[
      formatNumber(total), formatNumber(total / 10), runs.length, runs.map((run) => run.calls).join(', '),
      spread(runs.map((run) => run.seconds), 1), spread(runs.map((run) => run.cpuSeconds), 1),
      spread(runs.map((run) => run.keysPushed), 0), spread(runs.map((run) => run.bytes), 0), spread(runs.map((run) => run.exchanges), 0),
      runs.every((run) => run.equal) ? 'yes' : 'NO',
    ]],
  );
}

/** The machine's load averages (1, 5, 15 min), printed beside each run: the machine is shared. */
function loadLine(): string {
  return `load ${loadavg().map((value) => value.toFixed(1)).join(' ')}`;
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
  if (only === 'all' || only === 'split') {
    const split = await splitTable({ rounds, connections, leaderlessArgs: LEADERLESS_ARGS, raftArgs: RAFT_ARGS, note: loadLine });
    sections.push(`### Network split two to one: PUT load on both sides for 20 s, split from 5 s to 15 s, ${rounds} runs\n\n${split}\n`);
  }
  if (only === 'all' || only === 'anti-entropy') sections.push(`### Anti-entropy: repairing a member that missed 10% of ${formatNumber(Number(flag('keys', '100000')))} keys, ${rounds} runs\n\n${await antiEntropyCost()}\n`);
  const markdown = `## Leaderless mode beside Raft (bench/leaderless.ts)\n\n${sections.join('\n')}`;
  console.log(markdown);
  if (only === 'all') await writeSection('leaderless', markdown);
}

await main();
