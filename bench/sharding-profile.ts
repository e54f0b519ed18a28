/**
 * Where a member's time goes under write load, one Raft group against many
 * shards: the same cluster and wrk load as bench/sharding-throughput.ts, and
 * for every member the rates that explain the throughput — CPU (% of one
 * core, from /proc), Raft log fsyncs and saves a second (all groups), peer
 * transport messages sent and received a second — measured over the wrk run
 * from the members' /status figures. With `--cpu-prof DIR` every member runs
 * under `node --cpu-prof`, is stopped with SIGTERM after the run (so the
 * profile is written), and the top functions and files by self time are
 * printed per configuration.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/sharding-profile.js [--shards 64] [--members 3] [--duration 10] [--connections 100] [--engine lsm] [--cpu-prof /tmp/prof] [--cli PATH]
 *
 * `--cli` runs the members from another build's dist/src/cli/main.js (an A/B
 * against a build of another commit, e.g. one before a change).
 *
 * A diagnostic: prints its findings, writes nothing into docs/.
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ProcessCluster } from '../testkit/process/cluster-process.js';
import { runWrkAsync } from './lib/wrk.js';
import { flag, formatNumber, processCpuSeconds, table } from './report.js';
import { putScript, splitKeys, untilLeaders } from './lib/sharding-load.js';

const shardCount = Number(flag('shards', '64'));
const members = Number(flag('members', '3'));
const durationSeconds = Number(flag('duration', '10'));
const connections = Number(flag('connections', '100'));
const engine = flag('engine', 'lsm');
const profileDir = flag('cpu-prof', '');
const cliPath = flag('cli', '');

type Figures = Record<string, number>;

interface MemberSample {
  readonly cpuSeconds: number;
  readonly figures: Figures;
}

async function sample(cluster: ProcessCluster): Promise<MemberSample[]> {
  return Promise.all(
    Array.from({ length: members }, async (_, i) => {
      const status = (await cluster.client(i + 1).status()) as { figures?: Figures };
      return { cpuSeconds: await processCpuSeconds(cluster.pid(i + 1) ?? -1), figures: status.figures ?? {} };
    }),
  );
}

const figure = (figures: Figures, name: string): number => figures[name] ?? 0;
/** Raft log fsyncs of the member: the meta group's and the shard groups' own, plus the node journal's (one for every group's saves). */
const fsyncs = (figures: Figures): number => figure(figures, 'raft_log_fsyncs') + figure(figures, 'shards_log_fsyncs') + figure(figures, 'raft_journal_fsyncs');
const saves = (figures: Figures): number => figure(figures, 'raft_log_saves') + figure(figures, 'shards_log_saves');

async function run(shards: number, script: string, profileOut: string | undefined): Promise<void> {
  const serveArgs = ['--engine', engine, ...(shards > 1 ? ['--split-keys', splitKeys(shards).join(',')] : [])];
  if (profileOut !== undefined) await mkdir(profileOut, { recursive: true });
  // Node refuses --cpu-prof in NODE_OPTIONS: the members are spawned with it (detached: their own process groups, as by default).
  const nodeFlags = profileOut === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileOut}`];
  const spawner =
    nodeFlags.length === 0 && cliPath === ''
      ? undefined
      : (_id: number, command: string, [cli, ...rest]: readonly string[]) => spawn(command, [...nodeFlags, cliPath === '' ? cli! : cliPath, ...rest], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const cluster = await ProcessCluster.start(members, { serveArgs, ...(spawner !== undefined ? { spawner } : {}) });
  try {
    await cluster.waitForLeader(30_000);
    await untilLeaders(cluster, members, shards);
    const before = await sample(cluster);
    const per = Array.from({ length: members }, (_, i) => Math.floor(connections / members) + (i < connections % members ? 1 : 0));
    const results = await Promise.all(per.map((count, i) => runWrkAsync(cluster.url(i + 1), script, count, durationSeconds)));
    const after = await sample(cluster);
    const putsPerSecond = results.reduce((sum, result) => sum + result.requestsPerSecond, 0);
    const rate = (i: number, of: (figures: Figures) => number): string => formatNumber((of(after[i]!.figures) - of(before[i]!.figures)) / durationSeconds);
    const rows = after.map((member, i) => [
      i + 1,
      formatNumber((100 * (member.cpuSeconds - before[i]!.cpuSeconds)) / durationSeconds),
      rate(i, fsyncs),
      rate(i, saves),
      rate(i, (f) => figure(f, 'transport_sent_messages')),
      rate(i, (f) => figure(f, 'transport_received_messages')),
    ]);
    console.log(`\n## ${shards} shard(s), ${members} members: ${formatNumber(putsPerSecond)} PUT/s, errors ${results.reduce((sum, r) => sum + r.errors, 0)}`);
    console.log(table(['member', 'CPU % of a core', 'log fsyncs/s', 'log saves/s', 'messages sent/s', 'messages received/s'], rows));
    if (profileOut !== undefined) for (let id = 1; id <= members; id++) await cluster.stop(id);
  } finally {
    await cluster.close();
  }
  if (profileOut !== undefined) await summarizeProfiles(profileOut);
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}
interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
}

/** Self time by function and by file over every profile in `dir`, in % of all samples. */
async function summarizeProfiles(dir: string): Promise<void> {
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let total = 0;
  for (const name of (await readdir(dir)).filter((file) => file.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(await readFile(join(dir, name), 'utf8')) as CpuProfile;
    const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
    for (const id of profile.samples) {
      const frame = nodes.get(id)!.callFrame;
      const file = frame.url === '' ? `(${frame.functionName || 'native'})` : frame.url.replace(/^.*\/(dist|node_modules)\//, '$1/');
      const fn = `${frame.functionName || '(anonymous)'} ${file}:${frame.lineNumber + 1}`;
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + 1);
      byFile.set(file, (byFile.get(file) ?? 0) + 1);
      total++;
    }
  }
  const top = (map: Map<string, number>, count: number): string[][] =>
    [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, count).map(([key, value]) => [key, formatNumber((100 * value) / total, 1)]);
  console.log(`\nself time, ${total} samples over all members (whole lifetime, start-up included):`);
  console.log(table(['file', '%'], top(byFile, 25)));
  console.log(table(['function', '%'], top(byFunction, 30)));
  await rm(dir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const script = await putScript();
  for (const shards of [1, shardCount]) await run(shards, script, profileDir === '' ? undefined : join(profileDir, String(shards)));
}

await main();
