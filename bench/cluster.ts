/**
 * The replicated cluster against etcd, on real processes:
 *
 *   1. Throughput: `wrk` with 100 connections for 10 s, PUT (1000 keys in
 *      turn, 16-byte values) and linearizable GET (of those keys), against
 *      a three-member impulse cluster (at its leader, and at a follower:
 *      forwarded writes and follower reads), a three-member etcd cluster (at
 *      its leader, through its JSON gateway `/v3/kv/put` and `/v3/kv/range`,
 *      linearizable by default) and a single impulse node, all started in the
 *      same run and measured back to back, round after round.
 *   2. Failover: kill -9 of the leader while writes go through the other
 *      members, a new one every 10 ms whatever the others wait for (each with
 *      a 3 s timeout): the time from the kill to the first acknowledged write
 *      that STARTED after it, over `--trials` kills, beside the same for etcd.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/cluster.js [--rounds 3] [--duration 10] [--trials 10] [--engine lsm] [--only throughput|failover]
 *
 * Prints the tables and writes them to docs/benchmarks.md (section "cluster").
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessCluster } from '../testkit/process/cluster-process.js';
import { startServerProcess } from '../testkit/process/server-process.js';
import { type EtcdCluster, etcdPut, startEtcdCluster } from './lib/etcd.js';
import { waitFor } from './lib/processes.js';
import { type WrkResult, runWrk } from './lib/wrk.js';
import { flag, formatNumber, machineLine, table, writeSection } from './report.js';

const rounds = Number(flag('rounds', '3'));
const durationSeconds = Number(flag('duration', '10'));
const connections = Number(flag('connections', '100'));
const trials = Number(flag('trials', '10'));
const engine = flag('engine', 'lsm');
const only = flag('only', 'all');
const KEYS = 1000;

interface Target {
  readonly label: string;
  readonly url: string;
  readonly kind: 'impulse' | 'etcd';
}

// ---------------------------------------------------------------- wrk

/** A wrk script cycling through the keys; etcd's gateway takes base64 JSON bodies. */
async function wrkScript(kind: Target['kind'], method: 'PUT' | 'GET'): Promise<string> {
  const path = join(tmpdir(), `impulse-cluster-bench-${kind}-${method}.lua`);
  const lines = ['counter = 0'];
  if (kind === 'impulse') {
    lines.push(
      'request = function()',
      '  counter = counter + 1',
      `  local key = "/kv/key" .. (counter % ${KEYS})`,
      method === 'PUT' ? '  return wrk.format("PUT", key, nil, string.format("value-%010d", counter))' : '  return wrk.format("GET", key)',
      'end',
    );
  } else {
    const keys = Array.from({ length: KEYS }, (_, i) => `"${Buffer.from(`key${i}`).toString('base64')}"`);
    lines.push(
      `keys = {${keys.join(',')}}`,
      'request = function()',
      '  counter = counter + 1',
      `  local key = keys[(counter % ${KEYS}) + 1]`,
      method === 'PUT'
        ? '  return wrk.format("POST", "/v3/kv/put", {["Content-Type"]="application/json"}, "{\\"key\\":\\"" .. key .. "\\",\\"value\\":\\"dmFsdWUtMDAwMDAwMDAwMA==\\"}")'
        : '  return wrk.format("POST", "/v3/kv/range", {["Content-Type"]="application/json"}, "{\\"key\\":\\"" .. key .. "\\"}")',
      'end',
    );
  }
  await writeFile(path, lines.join('\n') + '\n');
  return path;
}

async function wrk(target: Target, method: 'PUT' | 'GET'): Promise<WrkResult> {
  return runWrk(target.url, await wrkScript(target.kind, method), connections, durationSeconds);
}

async function preload(target: Target): Promise<void> {
  await Promise.all(
    Array.from({ length: 20 }, async (_, worker) => {
      for (let i = worker; i < KEYS; i += 20) {
        if (target.kind === 'etcd') await etcdPut(target.url, `key${i}`, 'value-0000000000', 10_000);
        else await fetch(`${target.url}/kv/key${i}`, { method: 'PUT', body: 'value-0000000000' });
      }
    }),
  );
}

// ---------------------------------------------------------------- throughput

/** The member's current Raft term (GET /cluster): each election moves it on (pre-vote rounds do not). */
async function termAt(url: string): Promise<number> {
  const response = await fetch(`${url}/cluster`, { signal: AbortSignal.timeout(5000) });
  const view = (await response.json()) as { term: number };
  return view.term;
}

/** Elections the impulse cluster held while the throughput runs loaded it (none should happen: the leader never died). */
let electionsUnderLoad = 0;

async function throughput(): Promise<string> {
  const impulseCluster = await ProcessCluster.start(3, { serveArgs: ['--engine', engine] });
  const etcd = await startEtcdCluster(3);
  const singleDir = await mkdtemp(join(tmpdir(), 'impulse-bench-single-'));
  const single = await startServerProcess(['--engine', engine, '--data-dir', singleDir, '--sync', 'fsync']);
  try {
    const leader = await impulseCluster.waitForLeader();
    const follower = (leader % 3) + 1;
    const targets: Target[] = [
      { label: `impulse, 3 members (${engine}), at the leader`, url: impulseCluster.url(leader), kind: 'impulse' },
      { label: `impulse, 3 members (${engine}), at a follower`, url: impulseCluster.url(follower), kind: 'impulse' },
      { label: 'etcd 3.4, 3 members, at the leader', url: await etcd.leaderUrl(), kind: 'etcd' },
      { label: `impulse, single node (${engine}, fsync)`, url: single.url, kind: 'impulse' },
    ];
    for (const target of targets) await preload(target);
    const termBefore = await termAt(impulseCluster.url(leader));
    const results = new Map<string, Record<string, WrkResult[]>>();
    for (const method of ['PUT', 'GET'] as const) {
      for (let round = 0; round < rounds; round++) {
        for (const target of targets) {
          const result = await wrk(target, method);
          const byMethod = results.get(target.label) ?? {};
          byMethod[method] = [...(byMethod[method] ?? []), result];
          results.set(target.label, byMethod);
          console.log(`${target.label.padEnd(46)} ${method.padEnd(4)} ${formatNumber(result.requestsPerSecond).padStart(7)} req/s  avg ${result.latencyAvgMs.toFixed(1)} ms  p99 ${result.latencyP99Ms.toFixed(1)} ms  errors ${result.errors}`);
        }
      }
    }
    electionsUnderLoad = (await termAt(impulseCluster.url(leader))) - termBefore;
    const etcdLabel = targets[2]!.label;
    const median = (runs: readonly WrkResult[]): WrkResult => [...runs].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond)[Math.floor(runs.length / 2)]!;
    const rows = targets.map((target) => {
      const cells: (string | number)[] = [target.label];
      for (const method of ['PUT', 'GET'] as const) {
        const runs = results.get(target.label)![method]!;
        const m = median(runs);
        const low = Math.min(...runs.map((r) => r.requestsPerSecond));
        const high = Math.max(...runs.map((r) => r.requestsPerSecond));
        const versus = m.requestsPerSecond / median(results.get(etcdLabel)![method]!).requestsPerSecond;
        cells.push(`${formatNumber(m.requestsPerSecond)} (${formatNumber(low)}–${formatNumber(high)})`, `${m.latencyAvgMs.toFixed(1)} / ${m.latencyP99Ms.toFixed(1)}`, `${versus.toFixed(2)}×`);
      }
      return cells;
    });
    return table(['target', 'PUT req/s (min–max)', 'PUT avg / p99 ms', 'PUT vs etcd', 'GET req/s (min–max)', 'GET avg / p99 ms', 'GET vs etcd'], rows);
  } finally {
    single.kill('SIGKILL');
    await single.exited;
    await rm(singleDir, { recursive: true, force: true });
    await etcd.stop();
    await impulseCluster.close();
  }
}

// ---------------------------------------------------------------- failover

/**
 * Open-loop writes through `urls` until `stop`: a new write every 10 ms
 * (each with its own 3 s timeout, at most 300 outstanding), so a write starts
 * soon after any moment whatever the earlier ones are waiting for. `firstAck`
 * resolves with the acknowledgement time of the first write that STARTED
 * after `since`.
 */
function writers(put: (url: string, key: string) => Promise<void>, urls: () => string[], since: number): { firstAck: Promise<number>; stop: () => void } {
  let resolveAck!: (at: number) => void;
  const firstAck = new Promise<number>((resolve) => (resolveAck = resolve));
  let n = 0;
  let outstanding = 0;
  const timer = setInterval(() => {
    if (outstanding >= 300) return;
    const targets = urls();
    const url = targets[n % targets.length]!;
    const started = performance.now();
    outstanding++;
    put(url, `failover-${n++}`).then(
      () => {
        outstanding--;
        if (started > since) resolveAck(performance.now());
      },
      () => outstanding--,
    );
  }, 10);
  return { firstAck, stop: () => clearInterval(timer) };
}

async function impulsePut(url: string, key: string): Promise<void> {
  const response = await fetch(`${url}/kv/${key}`, { method: 'PUT', body: 'x', signal: AbortSignal.timeout(3000) });
  await response.arrayBuffer();
  if (response.status !== 204) throw new Error(`HTTP ${response.status}`);
}

/** What a failover trial needs of a cluster: its members' URLs, its leader, and a kill and a restart. */
interface FailoverSubject {
  readonly members: readonly string[];
  leaderUrl(): Promise<string>;
  kill(url: string): Promise<void>;
  restart(url: string): Promise<void>;
  put(url: string, key: string): Promise<void>;
}

/** `trials` times: steady state, kill -9 of the leader, the gap until a write started after it is acknowledged, the restart. */
async function failoverTrials(label: string, subject: FailoverSubject): Promise<number[]> {
  const samples: number[] = [];
  for (let trial = 0; trial < trials; trial++) {
    const leader = await subject.leaderUrl();
    await new Promise((resolve) => setTimeout(resolve, 1000)); // steady heartbeats before the kill
    const survivors = subject.members.filter((url) => url !== leader);
    const killedAt = performance.now();
    const load = writers((url, key) => subject.put(url, key), () => survivors, killedAt);
    await subject.kill(leader);
    const ackAt = await load.firstAck;
    load.stop();
    samples.push(ackAt - killedAt);
    console.log(`${label} failover trial ${trial + 1}: ${(ackAt - killedAt).toFixed(0)} ms`);
    await subject.restart(leader);
  }
  return samples;
}

async function failoverImpulse(): Promise<number[]> {
  const cluster = await ProcessCluster.start(3, { serveArgs: ['--engine', engine] });
  const idOf = (url: string): number => [1, 2, 3].find((id) => cluster.url(id) === url)!;
  try {
    return await failoverTrials('impulse', {
      members: [1, 2, 3].map((id) => cluster.url(id)),
      leaderUrl: async () => cluster.url(await cluster.waitForLeader(30_000)),
      kill: (url) => cluster.kill(idOf(url)),
      restart: (url) => cluster.start(idOf(url)),
      put: impulsePut,
    });
  } finally {
    await cluster.close();
  }
}

async function failoverEtcd(): Promise<number[]> {
  const etcd: EtcdCluster = await startEtcdCluster(3);
  const memberOf = (url: string) => etcd.members.find((member) => member.clientUrl === url)!;
  try {
    return await failoverTrials('etcd', {
      members: etcd.members.map((member) => member.clientUrl),
      leaderUrl: async () => {
        let url: string | undefined;
        await waitFor(async () => (url = await etcd.leaderUrl().catch(() => undefined)) !== undefined, 30_000, 'an etcd leader');
        return url!;
      },
      kill: (url) => etcd.kill(memberOf(url)),
      restart: (url) => etcd.restart(memberOf(url)),
      put: (url, key) => etcdPut(url, key, 'x', 3000),
    });
  } finally {
    await etcd.stop();
  }
}

function summary(label: string, samples: readonly number[]): (string | number)[] {
  const sorted = [...samples].sort((a, b) => a - b);
  return [label, samples.length, formatNumber(sorted[Math.floor(sorted.length / 2)]!), formatNumber(sorted[0]!), formatNumber(sorted[sorted.length - 1]!)];
}

async function main(): Promise<void> {
  console.log(machineLine());
  const sections = [machineLine(), '', 'The machine is shared with other work: absolute numbers move with its load; compare the rows of one run.', ''];
  if (only === 'all' || only === 'throughput') {
    const tableText = await throughput();
    sections.push(
      `### Throughput: wrk -t1 -c${connections} -d${durationSeconds}s, median of ${rounds} rounds (min–max)`,
      '',
      `PUT cycles through ${KEYS} keys with 16-byte values; GET (linearizable) reads them. All targets run at once and are measured back to back each round. impulse members use \`--engine ${engine}\` with the default timing (50 ms ticks, election 500–1000 ms, heartbeat 100 ms); etcd 3.4 with its defaults (100 ms heartbeat, 1000 ms election), through its JSON gateway.`,
      '',
      tableText,
      '',
      `Elections in the impulse cluster during these runs (its Raft term moved on; the leader never died): ${electionsUnderLoad}.`,
      '',
    );
    console.log(tableText);
    console.log(`elections under load: ${electionsUnderLoad}`);
  }
  if (only === 'all' || only === 'failover') {
    const impulseSamples = await failoverImpulse();
    const etcdSamples = await failoverEtcd();
    const tableText = table(['cluster', 'trials', 'median ms', 'min ms', 'max ms'], [summary(`impulse (${engine})`, impulseSamples), summary('etcd 3.4', etcdSamples)]);
    sections.push(
      '### Failover: kill -9 of the leader → first acknowledged write started after it',
      '',
      'Writes go through the two other members, a new one every 10 ms whatever the earlier ones wait for (each with a 3 s timeout), so the gap measured is the time the cluster could not acknowledge a write.',
      '',
      tableText,
      '',
    );
    console.log(tableText);
  }
  await writeSection('cluster', `## Replicated cluster (bench/cluster.ts)\n\n${sections.join('\n')}`);
}

await main();
