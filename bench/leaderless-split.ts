/**
 * The availability contrast under a network split, leaderless beside Raft:
 * three members in three network namespaces (testkit/process/netns.ts), a
 * PUT load on both sides for 20 s while the network is split two to one from
 * 5 s to 15 s (iptables DROP between the sides; wrk, in the root namespace,
 * still reaches every member).
 *
 *   - leaderless: member 3 cut off; half the connections write at member 1
 *     (majority side), half at member 3 (minority side), both W=2 — and a
 *     second configuration where the minority side's writes ask W=1 (what it
 *     can promise alone);
 *   - Raft: the leader cut off (the split that costs Raft most); half the
 *     connections write at a follower (majority side, it forwards), half at
 *     the old leader (minority side).
 *
 * Each side's acknowledged writes per second over the 20 s (wrk's requests
 * minus its non-2xx answers), its errors (non-2xx answers plus wrk's socket
 * timeouts) and p99 (of every answer, errors included). Needs root,
 * iproute2 and iptables (netnsSupport says why not).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ProcessCluster } from '../testkit/process/cluster-process.js';
import { type TestNetwork, createNetwork, netnsSupport } from '../testkit/process/netns.js';
import { type WrkResult, putNewKeysScript, runWrkAsync } from './lib/wrk.js';
import { formatNumber, table } from './report.js';

export interface SplitOptions {
  readonly rounds: number;
  /** wrk connections in all, half per side. */
  readonly connections: number;
  readonly leaderlessArgs: readonly string[];
  readonly raftArgs: readonly string[];
  /** Extra text for each run's log line (the machine's load). */
  readonly note: () => string;
}

const RUN_SECONDS = 20;
const SPLIT_AT_MS = 5000;
const HEAL_AT_MS = 15_000;

interface Configuration {
  readonly system: 'leaderless' | 'Raft';
  readonly label: string;
  /** Query string of the minority side's writes. */
  readonly minorityQuery: string;
}

const CONFIGURATIONS: readonly Configuration[] = [
  { system: 'leaderless', label: 'leaderless, N=3 R=W=2', minorityQuery: '' },
  { system: 'leaderless', label: 'leaderless, N=3 R=W=2, minority writes ?w=1', minorityQuery: '?w=1' },
  { system: 'Raft', label: 'Raft, 3 members', minorityQuery: '' },
];

interface SideRuns {
  readonly majority: WrkResult[];
  readonly minority: WrkResult[];
}

function acknowledgedPerSecond(result: WrkResult): number {
  return (result.requests - result.non2xx) / result.durationSeconds;
}

async function startCluster(network: TestNetwork, args: readonly string[]): Promise<ProcessCluster> {
  const hosts = network.hosts;
  return ProcessCluster.startWith(
    hosts.map((host) => ({ id: host.index + 1, host: host.ip, clientPort: 7070, peerPort: 7171 })),
    { serveArgs: [...args, '--insecure-listen'], spawner: (id, command, spawnArgs) => hosts[id - 1]!.spawn(command, spawnArgs, { stdio: ['ignore', 'pipe', 'pipe'] }) },
  );
}

/** One 20 s run: both sides loaded, member `isolated` cut off from 5 s to 15 s. */
async function splitRun(network: TestNetwork, cluster: ProcessCluster, isolated: number, majorityTarget: number, configuration: Configuration, tag: string, options: SplitOptions): Promise<[WrkResult, WrkResult]> {
  const others = [0, 1, 2].filter((index) => index !== isolated - 1);
  const split = setTimeout(() => network.partition([others, [isolated - 1]]), SPLIT_AT_MS);
  const heal = setTimeout(() => network.heal(), HEAL_AT_MS);
  try {
    const wrkArgs = ['--timeout', '4s'];
    const perSide = Math.max(1, Math.floor(options.connections / 2));
    return await Promise.all([
      runWrkAsync(cluster.url(majorityTarget), await putNewKeysScript(`${tag}-maj`), perSide, RUN_SECONDS, wrkArgs),
      runWrkAsync(cluster.url(isolated), await putNewKeysScript(`${tag}-min`, configuration.minorityQuery), perSide, RUN_SECONDS, wrkArgs),
    ]);
  } finally {
    clearTimeout(split);
    clearTimeout(heal);
    network.heal();
  }
}

async function measure(configuration: Configuration, options: SplitOptions): Promise<SideRuns> {
  const network = createNetwork(3);
  let cluster: ProcessCluster | undefined;
  const runs: SideRuns = { majority: [], minority: [] };
  try {
    const raft = configuration.system === 'Raft';
    cluster = await startCluster(network, raft ? options.raftArgs : options.leaderlessArgs);
    for (let round = 0; round < options.rounds; round++) {
      // Raft: cut off whoever leads now, write at a follower on the other side.
      const isolated = raft ? await cluster.waitForLeader(30_000) : 3;
      const majorityTarget = isolated === 1 ? 2 : 1;
      const [majority, minority] = await splitRun(network, cluster, isolated, majorityTarget, configuration, `s${configuration.system}${configuration.minorityQuery.length}-${round}`, options);
      runs.majority.push(majority);
      runs.minority.push(minority);
      for (const [side, result] of [['majority', majority], ['minority', minority]] as const) {
        console.log(`split ${configuration.label.padEnd(46)} ${side}: ${formatNumber(acknowledgedPerSecond(result)).padStart(6)} acknowledged/s  p99 ${result.latencyP99Ms.toFixed(1)} ms  errors ${result.errors} (${options.note()})`);
      }
      // Healed: let the cut-off member catch up (Raft: leadership settle) before the next run.
      await sleep(3000);
    }
    return runs;
  } finally {
    await cluster?.close();
    network.destroy();
  }
}

function row(configuration: Configuration, side: 'majority' | 'minority', runs: readonly WrkResult[]): string[] {
  const sorted = [...runs].sort((a, b) => acknowledgedPerSecond(a) - acknowledgedPerSecond(b));
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const raft = configuration.system === 'Raft';
  const where = side === 'majority' ? (raft ? 'majority: a follower (forwards)' : 'majority: member 1') : raft ? 'minority: the old leader' : `minority: member 3${configuration.minorityQuery === '' ? '' : ' (w=1)'}`;
  return [
    configuration.label,
    where,
    `${formatNumber(acknowledgedPerSecond(median))} (${formatNumber(acknowledgedPerSecond(sorted[0]!))}–${formatNumber(acknowledgedPerSecond(sorted[sorted.length - 1]!))})`,
    median.latencyP99Ms.toFixed(1),
    `${median.errors} (${runs.map((run) => run.errors).join(', ')})`,
  ];
}

/** Every configuration's table rows, or a sentence saying why the split cannot run here. */
export async function splitTable(options: SplitOptions): Promise<string> {
  const reason = netnsSupport();
  if (reason !== undefined) return `Not measured: ${reason}.`;
  const rows: string[][] = [];
  for (const configuration of CONFIGURATIONS) {
    const runs = await measure(configuration, options);
    rows.push(row(configuration, 'majority', runs.majority), row(configuration, 'minority', runs.minority));
  }
  return table(['system', 'side (where wrk writes)', 'acknowledged PUT/s over 20 s, median (min–max)', 'p99 ms (median run)', 'errors (median run; per run)'], rows);
}
