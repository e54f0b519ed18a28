/**
 * The resilience benchmark (issue #11): sixty seconds of load against a
 * three-node cluster with two faults on a fixed schedule, the same for
 * impulse and for a three-node etcd (Debian's etcd-server), side by side:
 *
 *   20 s  kill -9 of the leader            30 s  it is started again on its data
 *   40 s  the leader isolated (partition)  50 s  healed
 *
 * Both clusters' peer traffic goes through the chaos tester's LinkProxy
 * (testkit/chaos/proxy.ts): impulse through one proxy per directed link (its
 * test-only dial override), etcd through one proxy in front of each member's
 * advertised peer URL that tells dialers apart by the `X-Server-From` header
 * of etcd's peer requests — so "the leader isolated" cuts the same links.
 *
 * Load: W closed-loop clients (default 4 per member), each bound to one
 * member, alternating a put of a random key among 1000 and a linearizable
 * get of another; 2 s client timeout. Per second: successful operations,
 * p99 latency of the successful ones, successful writes, and successful
 * reads served by majority-side members during the partition. Summary:
 * availability (share of seconds with a successful write), time from each
 * fault (once in place) to the first successful write begun after it.
 *
 *   node dist/bench/resilience.js [--rounds 3] [--systems impulse,etcd] [--workers-per-node 4] [--chart docs/resilience.svg]
 *   node dist/bench/resilience.js --from bench/results/resilience.json [--chart docs/resilience.svg]   (tables and chart of an earlier run)
 *
 * Run under `flock /tmp/impulse-bench.lock` (docs/benchmarks.md).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImpulseClient } from '../src/client/client.js';
import { SeededRandom } from '../src/util/random.js';
import { ChaosCluster } from '../testkit/chaos/cluster.js';
import { LinkProxy } from '../testkit/chaos/proxy.js';
import { type EtcdCluster, etcdPut, etcdStatus, startEtcdCluster } from './lib/etcd.js';
import { median } from './report.js';

const SECONDS = 60;
const KILL_AT_S = 20;
const RESTART_AT_S = 30;
const ISOLATE_AT_S = 40;
const HEAL_AT_S = 50;
const CLIENT_TIMEOUT_MS = 2000;
const KEYS = 1000;

interface System {
  readonly name: string;
  readonly nodes: readonly number[];
  put(node: number, worker: number, key: string, value: string): Promise<void>;
  get(node: number, worker: number, key: string): Promise<void>;
  leader(): Promise<number | undefined>;
  /** kill -9: signals synchronously (before its first await), resolves once the process is gone. */
  kill(node: number): Promise<void>;
  restart(node: number): Promise<void>;
  isolate(node: number): void;
  heal(): void;
  close(): Promise<void>;
}

interface Sample {
  readonly startS: number;
  readonly endS: number;
  readonly kind: 'put' | 'get';
  readonly ok: boolean;
  readonly node: number;
}

// ---- impulse: the chaos tester's cluster (proxy per directed link) ----

async function impulseSystem(): Promise<System> {
  const root = await mkdtemp(join(tmpdir(), 'impulse-resilience-'));
  const cluster = await ChaosCluster.start({ nodes: 3, engine: 'lsm', network: 'proxy', seed: 1, root, spares: 0 });
  const clients = new Map<string, ImpulseClient>();
  const client = (node: number, worker: number): ImpulseClient => {
    const name = `${node}/${worker}`;
    let found = clients.get(name);
    if (found === undefined) clients.set(name, (found = new ImpulseClient({ endpoint: cluster.url(node), timeoutMs: CLIENT_TIMEOUT_MS, writeRetriesMax: 0, connectionsMax: 2 })));
    return found;
  };
  return {
    name: 'impulse',
    nodes: cluster.slots,
    put: async (node, worker, key, value) => void (await client(node, worker).put(key, value)),
    get: async (node, worker, key) => void (await client(node, worker).get(key)),
    leader: () => cluster.leader(),
    kill: (node) => cluster.processes.kill(node),
    restart: (node) => cluster.startMember(node),
    isolate: (node) => cluster.network.cut(cluster.slots.filter((other) => other !== node).flatMap((other) => [[node, other] as const, [other, node] as const])),
    heal: () => cluster.network.heal(),
    close: async () => {
      for (const found of clients.values()) found.close();
      await cluster.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

// ---- etcd: a proxy in front of each member's peer URL, dialers told apart by X-Server-From ----

async function etcdSystem(): Promise<System> {
  const proxies: LinkProxy[] = [];
  const random = new SeededRandom(1);
  const etcd: EtcdCluster = await startEtcdCluster(3, {
    advertisePeerUrl: async (_index, listenPeerUrl) => {
      const target = new URL(listenPeerUrl);
      const proxy = new LinkProxy({ target: { host: target.hostname, port: Number(target.port) }, random: random.fork(), frameAware: false, sourceOf: (head) => /^x-server-from:\s*([0-9a-f]+)\r$/im.exec(head.toString('latin1'))?.[1] ?? (head.includes('\r\n\r\n') ? 'unknown' : undefined) });
      await proxy.start();
      proxies.push(proxy);
      return `http://127.0.0.1:${proxy.address.port}`;
    },
  });
  // etcd's member ids: decimal in the JSON gateway, hex in X-Server-From.
  const ids = await Promise.all(etcd.members.map(async (member) => BigInt((await etcdStatus(member.clientUrl)).memberId).toString(16)));
  const nodes = [1, 2, 3];
  const url = (node: number): string => etcd.members[node - 1]!.clientUrl;
  return {
    name: 'etcd',
    nodes,
    put: (node, _worker, key, value) => etcdPut(url(node), key, value, CLIENT_TIMEOUT_MS),
    get: async (node, _worker, key) => {
      const response = await fetch(`${url(node)}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from(key).toString('base64') }), signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS) });
      const body = (await response.json()) as { error?: string };
      if (!response.ok || body.error !== undefined) throw new Error(`etcd range: HTTP ${response.status} ${body.error ?? ''}`);
    },
    leader: async () => {
      for (const node of nodes) {
        if (etcd.members[node - 1]!.process === undefined) continue;
        const status = await etcdStatus(url(node)).catch(() => undefined);
        if (status?.leader !== undefined) return ids.indexOf(BigInt(status.leader).toString(16)) + 1 || undefined;
      }
      return undefined;
    },
    kill: (node) => etcd.kill(etcd.members[node - 1]!),
    restart: (node) => etcd.restart(etcd.members[node - 1]!),
    isolate: (node) => {
      // Everything into the member's own proxy, and the member's own requests into the others'.
      proxies.forEach((proxy, index) => (index === node - 1 ? proxy.set({ blocked: true }) : proxy.blockSources([ids[node - 1]!])));
    },
    heal: () => proxies.forEach((proxy) => proxy.heal()),
    close: async () => {
      await etcd.stop();
      await Promise.all(proxies.map((proxy) => proxy.close()));
    },
  };
}

// ---- one run: load + schedule ----

interface AppliedFaults {
  killed?: number;
  isolated?: number;
  /** When each fault had really been applied (the leader looked up, the process dead, the links cut), s. */
  killedAtS?: number;
  isolatedAtS?: number;
}

async function runOnce(system: System, workersPerNode: number, log: (line: string) => void): Promise<{ samples: Sample[]; faults: AppliedFaults }> {
  const samples: Sample[] = [];
  const origin = performance.now();
  const now = (): number => (performance.now() - origin) / 1000;
  let running = true;
  const random = new SeededRandom(7);
  const loops = system.nodes.flatMap((node) =>
    Array.from({ length: workersPerNode }, async (_, worker) => {
      const mine = random.fork();
      for (let i = 0; running; i++) {
        const kind = i % 2 === 0 ? 'put' : 'get';
        const key = `k/${mine.int(KEYS)}`;
        const startS = now();
        const ok = await (kind === 'put' ? system.put(node, worker, key, `${node}-${worker}-${i}`) : system.get(node, worker, key)).then(() => true, () => false);
        samples.push({ startS, endS: now(), kind, ok, node });
        if (!ok && now() - startS < 0.02) await sleep(20); // a dead member refuses at once: do not spin
      }
    }),
  );
  const faults: AppliedFaults = {};
  await sleepUntil(now, KILL_AT_S);
  faults.killed = await system.leader();
  // kill() sends SIGKILL before its first await: the fault is in place from then on, while
  // the exit itself can take a second to be reported on a loaded machine.
  const killing = faults.killed === undefined ? undefined : system.kill(faults.killed);
  faults.killedAtS = now();
  await killing;
  log(`  ${system.name}: ${now().toFixed(1)}s killed leader ${faults.killed}`);
  await sleepUntil(now, RESTART_AT_S);
  if (faults.killed !== undefined) await system.restart(faults.killed);
  log(`  ${system.name}: ${now().toFixed(1)}s restarted ${faults.killed}`);
  await sleepUntil(now, ISOLATE_AT_S);
  faults.isolated = await system.leader();
  if (faults.isolated !== undefined) system.isolate(faults.isolated);
  faults.isolatedAtS = now();
  log(`  ${system.name}: ${now().toFixed(1)}s isolated leader ${faults.isolated}`);
  await sleepUntil(now, HEAL_AT_S);
  system.heal();
  await sleepUntil(now, SECONDS);
  running = false;
  await Promise.all(loops);
  return { samples, faults };
}

// ---- figures ----

interface Figures {
  readonly perSecond: { ops: number; writes: number; p99Ms: number; majorityReads: number }[];
  readonly availability: number;
  readonly firstWriteAfterKillS: number | undefined;
  readonly firstWriteAfterIsolationS: number | undefined;
  /** The members those first writes went to (a check that the faults hit the leader). */
  readonly firstWriteAfterKillNode: number | undefined;
  readonly firstWriteAfterIsolationNode: number | undefined;
  readonly secondsWithoutMajorityRead: number;
  readonly medianOpsPerS: number;
}

export function figures(samples: readonly Sample[], faults: AppliedFaults): Figures {
  const isolated = faults.isolated;
  const perSecond = Array.from({ length: SECONDS }, (_, second) => {
    const done = samples.filter((sample) => sample.ok && Math.floor(sample.endS) === second);
    const latencies = done.map((sample) => (sample.endS - sample.startS) * 1000).sort((a, b) => a - b);
    return {
      ops: done.length,
      writes: done.filter((sample) => sample.kind === 'put').length,
      p99Ms: latencies.length === 0 ? 0 : latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))]!,
      majorityReads: done.filter((sample) => sample.kind === 'get' && sample.node !== isolated).length,
    };
  });
  // The first acknowledged write begun once the fault was in place: seconds from then to its end, and the member it went to.
  const firstWriteAfter = (atS: number): { afterS: number; node: number } | undefined => {
    let first: Sample | undefined;
    for (const sample of samples) if (sample.ok && sample.kind === 'put' && sample.startS >= atS && (first === undefined || sample.endS < first.endS)) first = sample;
    return first === undefined ? undefined : { afterS: first.endS - atS, node: first.node };
  };
  const afterKill = firstWriteAfter(faults.killedAtS ?? KILL_AT_S);
  const afterIsolation = firstWriteAfter(faults.isolatedAtS ?? ISOLATE_AT_S);
  const partitionSeconds = perSecond.slice(ISOLATE_AT_S, HEAL_AT_S);
  return {
    perSecond,
    availability: perSecond.filter((second) => second.writes > 0).length / SECONDS,
    // From the moment the fault was in place: a write that began a few ms earlier, before the leader was found and killed or cut off, proves nothing.
    firstWriteAfterKillS: afterKill?.afterS,
    firstWriteAfterKillNode: afterKill?.node,
    firstWriteAfterIsolationS: afterIsolation?.afterS,
    firstWriteAfterIsolationNode: afterIsolation?.node,
    secondsWithoutMajorityRead: partitionSeconds.filter((second) => second.majorityReads === 0).length,
    medianOpsPerS: median(perSecond.map((second) => second.ops)),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function sleepUntil(now: () => number, atS: number): Promise<void> {
  await sleep(Math.max(0, (atS - now()) * 1000));
}

// ---- main: rounds, medians with spread, the chart ----

interface RoundResult {
  readonly system: string;
  readonly round: number;
  readonly figures: Figures;
  readonly faults: AppliedFaults;
}

function flag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 && process.argv[index + 1] !== undefined ? process.argv[index + 1]! : fallback;
}

async function main(): Promise<void> {
  const rounds = Number(flag('rounds', '3'));
  const systems = flag('systems', 'impulse,etcd').split(',');
  const workersPerNode = Number(flag('workers-per-node', '4'));
  const chart = flag('chart', '');
  const from = flag('from', '');
  if (from !== '') {
    // Tables and chart again from an earlier run's results, without running anything.
    const saved = JSON.parse(await readFile(from, 'utf8')) as { results: RoundResult[] };
    const names = [...new Set(saved.results.map((result) => result.system))];
    printTable(saved.results, names);
    if (chart !== '') await writeFile(chart, renderChart(saved.results, names));
    return;
  }
  const results: RoundResult[] = [];
  for (let round = 1; round <= rounds; round++) {
    // Alternate who goes first, so a noisy neighbour hits both alike.
    for (const name of round % 2 === 1 ? systems : [...systems].reverse()) {
      console.log(`round ${round}: ${name}`);
      const system = name === 'etcd' ? await etcdSystem() : await impulseSystem();
      try {
        await sleep(2000);
        const { samples, faults } = await runOnce(system, workersPerNode, (line) => console.log(line));
        results.push({ system: name, round, figures: figures(samples, faults), faults });
      } finally {
        await system.close();
      }
    }
  }
  printTable(results, systems);
  await writeFile(join('bench', 'results', 'resilience.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, rounds, workersPerNode, results }, null, 1) + '\n');
  if (chart !== '') await writeFile(chart, renderChart(results, systems));
}

function spread(values: readonly (number | undefined)[], digits: number): string {
  const known = values.filter((value): value is number => value !== undefined);
  if (known.length < values.length) return `${known.length === 0 ? '—' : median(known).toFixed(digits)} (${values.length - known.length} of ${values.length} never)`;
  return `${median(known).toFixed(digits)} (${Math.min(...known).toFixed(digits)}–${Math.max(...known).toFixed(digits)})`;
}

function printTable(results: readonly RoundResult[], systems: readonly string[]): void {
  const rows: [string, (figures: Figures) => number | undefined, number][] = [
    ['median ops/s (all 60 s)', (f) => f.medianOpsPerS, 0],
    ['median p99 latency of a second, ms', (f) => median(f.perSecond.map((second) => second.p99Ms)), 1],
    ['availability (seconds with a write)', (f) => f.availability * 100, 1],
    ['first write after kill -9 of the leader, s', (f) => f.firstWriteAfterKillS, 2],
    ['first write after the leader\'s isolation, s', (f) => f.firstWriteAfterIsolationS, 2],
    ['seconds of the partition without a majority-side read', (f) => f.secondsWithoutMajorityRead, 0],
  ];
  console.log(`\n| median (min–max) of ${results.length / systems.length} rounds | ${systems.join(' | ')} |`);
  console.log(`|---|${systems.map(() => '---').join('|')}|`);
  for (const [label, pick, digits] of rows) {
    console.log(`| ${label} | ${systems.map((system) => spread(results.filter((result) => result.system === system).map((result) => pick(result.figures)), digits)).join(' | ')} |`);
  }
}

/**
 * Two panels, one line per system (the median over rounds of each second): successful ops/s,
 * and the p99 latency of that second's successful operations (log scale); the fault windows shaded.
 */
function renderChart(results: readonly RoundResult[], systems: readonly string[]): string {
  const width = 900;
  const panelHeight = 220;
  const left = 60;
  const colours = ['#1565c0', '#ef6c00', '#2e7d32'];
  const perSecond = (system: string, pick: (second: Figures['perSecond'][number]) => number): number[] =>
    Array.from({ length: SECONDS }, (_, second) => median(results.filter((result) => result.system === system).map((result) => pick(result.figures.perSecond[second]!))));
  const x = (second: number): number => left + (second / SECONDS) * (width - left - 10);
  const panel = (top: number, title: string, series: number[][], scale: (value: number) => number, ticks: readonly number[]): string[] => {
    const y = (value: number): number => top + 20 + (1 - scale(value)) * (panelHeight - 50);
    const bottom = top + panelHeight - 30;
    return [
      `<text x="${left}" y="${top + 12}" font-weight="bold">${title}</text>`,
      `<rect x="${x(KILL_AT_S)}" y="${top + 20}" width="${x(RESTART_AT_S) - x(KILL_AT_S)}" height="${bottom - top - 20}" fill="#fde0dc"/>`,
      `<rect x="${x(ISOLATE_AT_S)}" y="${top + 20}" width="${x(HEAL_AT_S) - x(ISOLATE_AT_S)}" height="${bottom - top - 20}" fill="#fde0dc"/>`,
      `<line x1="${left}" y1="${bottom}" x2="${width - 10}" y2="${bottom}" stroke="#999"/>`,
      ...ticks.map((tick) => `<text x="${left - 4}" y="${y(tick) + 4}" text-anchor="end">${tick}</text>`),
      ...[0, 10, 20, 30, 40, 50, 60].map((second) => `<text x="${x(second)}" y="${bottom + 14}" text-anchor="middle">${second}s</text>`),
      ...series.map((values, i) => `<polyline fill="none" stroke="${colours[i % colours.length]}" stroke-width="2" points="${values.map((value, second) => `${x(second + 0.5).toFixed(1)},${y(value).toFixed(1)}`).join(' ')}"/>`),
    ];
  };
  const ops = systems.map((system) => perSecond(system, (second) => second.ops));
  const opsMax = Math.max(1, ...ops.flat());
  const p99 = systems.map((system) => perSecond(system, (second) => second.p99Ms));
  const p99Max = Math.max(10, ...p99.flat());
  // Log scale from 1 ms; a second without a successful operation sits on the axis.
  const logScale = (value: number): number => (value <= 1 ? 0 : Math.log10(value) / Math.log10(p99Max));
  const p99Ticks = [1, 10, 100, 1000, 10_000].filter((tick) => tick <= p99Max);
  const marks = [[KILL_AT_S, 'kill -9 leader'], [RESTART_AT_S, 'restart'], [ISOLATE_AT_S, 'isolate leader'], [HEAL_AT_S, 'heal']] as const;
  const height = 2 * panelHeight + 20;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    ...panel(0, 'successful operations per second', ops, (value) => value / opsMax, [0, Math.round(opsMax / 2), Math.round(opsMax)]),
    ...panel(panelHeight, 'p99 latency of the successful operations of each second, ms (log scale)', p99, logScale, p99Ticks),
    ...marks.map(([second, label]) => `<text x="${x(second) + 3}" y="32">${label}</text>`),
    ...systems.map((system, i) => `<text x="${width - 120}" y="${14 + 14 * i}" fill="${colours[i % colours.length]}">— ${system}</text>`),
    '</svg>',
  ];
  return parts.join('\n') + '\n';
}

export { etcdSystem, impulseSystem };

// Run as a script (not when imported, e.g. by a smoke check).
if (process.argv[1]?.endsWith('resilience.js')) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
