/**
 * A replica move under load, on real processes: three members started with
 * one split key ("m": two shards of three replicas), each shard loaded
 * with `--mib` MiB (64 KiB values; both, as the planner weighs shard sizes
 * and would otherwise move the small one); then `--writers` closed-loop clients put
 * 1 KiB values on keys of both shards (through every member) while a fourth
 * member joins: the meta group's leader moves replicas onto it (learner,
 * snapshot, promote, remove; docs/sharding.md, "Moves") until `/shards` is
 * balanced. Reported per round: how long the moves took (member added →
 * balanced, no move in flight), and the writes' throughput and p99 in the
 * `--phase` seconds before, during the moves, and the `--phase` seconds after.
 * A fresh cluster every round.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/sharding-move.js [--mib 64] [--rounds 3] [--writers 16] [--phase 5] [--snapshot-rate-max <bytes/s>]
 *
 * Prints the table and writes it to docs/benchmarks.md (section "sharding-move";
 * with `--snapshot-rate-max`, given to every member, "sharding-move-throttled").
 */
import { ImpulseClient } from '../src/client/client.js';
import type { ShardsView } from '../src/protocol/shard-view.js';
import { ProcessCluster } from '../testkit/process/cluster-process.js';
import { flag, formatNumber, machineLine, medianCell, table, writeSection } from './report.js';

const mib = Number(flag('mib', '64'));
const rounds = Number(flag('rounds', '3'));
const writerCount = Number(flag('writers', '16'));
const phaseSeconds = Number(flag('phase', '5'));
const snapshotRateMax = flag('snapshot-rate-max', '');
const LOAD_VALUE = Buffer.alloc(64 * 1024, 7);
const VALUE = Buffer.alloc(1024, 1);

interface Phase {
  readonly opsPerSecond: number;
  readonly p99Ms: number;
}

interface Sample {
  readonly moveSeconds: number;
  readonly before: Phase;
  readonly during: Phase;
  readonly after: Phase;
  readonly errors: number;
}

/** Completed writes: when each ended and how long it took. */
class Recorder {
  readonly ends: number[] = [];
  readonly latencies: number[] = [];
  errors = 0;

  phase(from: number, to: number): Phase {
    const inside = this.ends.map((end, i) => [end, this.latencies[i]!] as const).filter(([end]) => end >= from && end < to);
    const sorted = inside.map(([, latency]) => latency).sort((a, b) => a - b);
    return { opsPerSecond: inside.length / Math.max(0.001, (to - from) / 1000), p99Ms: sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]! };
  }
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const balanced = (view: ShardsView): boolean => {
  const counts = [1, 2, 3, 4].map((id) => view.shards.filter((shard) => shard.replicas.includes(id)).length);
  return view.shards.every((shard) => shard.move === undefined) && Math.max(...counts) - Math.min(...counts) <= 1;
};

async function measure(): Promise<Sample> {
  const cluster = await ProcessCluster.start(3, { serveArgs: ['--engine', 'lsm', ...(snapshotRateMax !== '' ? ['--snapshot-rate-max', snapshotRateMax] : [])], memberArgs: (id) => (id <= 3 ? ['--split-keys', 'm'] : []) });
  let stopped = false;
  const recorder = new Recorder();
  let writers: Promise<void>[] = [];
  try {
    const leader = await cluster.waitForLeader(30_000);
    await until('every shard has a leader', async () => (await cluster.client(1).shards()).shards.every((shard) => shard.leader !== null), 30_000);
    const loader = new ImpulseClient({ endpoint: cluster.url(leader), timeoutMs: 30_000 });
    // Both shards get `mib` MiB: the planner weighs the sizes the shards' leaders report (it moves the shard nearest the mean size), so either move is a `mib` MiB move.
    for (let i = 0; i < mib * 16; i++) for (const prefix of ['a', 'y']) await loader.put(`${prefix}/${String(i).padStart(6, '0')}`, LOAD_VALUE);
    loader.close();
    writers = Array.from({ length: writerCount }, async (_, w) => {
      const client = new ImpulseClient({ endpoint: cluster.url((w % 3) + 1), timeoutMs: 10_000 });
      try {
        for (let n = 0; !stopped; n++) {
          const started = Date.now();
          try {
            await client.put(`${n % 2 === 0 ? 'b' : 'x'}/${w}/${n % 256}`, VALUE);
            recorder.ends.push(Date.now());
            recorder.latencies.push(Date.now() - started);
          } catch {
            recorder.errors++;
          }
        }
      } finally {
        client.close();
      }
    });
    await new Promise((resolve) => setTimeout(resolve, phaseSeconds * 1000));
    const moveStart = Date.now();
    const { clusterId } = await cluster.client(leader).cluster();
    const joiner = await cluster.addJoiner(4, clusterId);
    await cluster.client(leader).addMember({ id: 4, ...joiner });
    await cluster.start(4);
    await until('balanced on four members', async () => balanced(await cluster.client(leader).shards()), 600_000);
    const moveEnd = Date.now();
    await new Promise((resolve) => setTimeout(resolve, phaseSeconds * 1000));
    stopped = true;
    await Promise.all(writers);
    return {
      moveSeconds: (moveEnd - moveStart) / 1000,
      before: recorder.phase(moveStart - phaseSeconds * 1000, moveStart),
      during: recorder.phase(moveStart, moveEnd),
      after: recorder.phase(moveEnd, moveEnd + phaseSeconds * 1000),
      errors: recorder.errors,
    };
  } finally {
    stopped = true;
    await Promise.all(writers);
    await cluster.close();
  }
}

async function main(): Promise<void> {
  const samples: Sample[] = [];
  for (let round = 0; round < rounds; round++) {
    const sample = await measure();
    samples.push(sample);
    console.log(`round ${round + 1}: ${JSON.stringify(sample)}`);
  }
  const row = (name: string, pick: (sample: Sample) => Phase): (string | number)[] => [
    name,
    medianCell(samples.map((sample) => pick(sample).opsPerSecond)),
    medianCell(samples.map((sample) => pick(sample).p99Ms)),
  ];
  const markdown = [
    `### A replica move under load: ${mib} MiB shard, a fourth member joins three${snapshotRateMax !== '' ? `, snapshots at most ${formatNumber(Number(snapshotRateMax) / 1024 / 1024, 1)} MiB/s` : ''}`,
    '',
    machineLine(),
    `Real processes, engine lsm, fsync, \`--shard-moves-max 2\`, \`--snapshot-rate-max ${snapshotRateMax !== '' ? snapshotRateMax : '(default: 64 MiB/s)'}\`. Two shards (split key "m") of three replicas, each loaded with ${mib} MiB (64 KiB values) before the round (both: the planner weighs shard sizes and moves the shard nearest the mean size); ${writerCount} closed-loop clients put 1 KiB values on both shards through all three members. A fourth member joins; the planner moves one replica onto it (six replicas over four members: ⌊6/4⌋..⌈6/4⌉; learner, snapshot, promote, remove), which takes ${medianCell(samples.map((sample) => sample.moveSeconds), (value) => formatNumber(value, 1))} s from \`member add\` to a balanced \`/shards\` (median of ${rounds} rounds, min–max). Writes refused per round (retryable, not retried): ${samples.map((sample) => sample.errors).join(' / ')}. The before phase follows the load (the engine still compacting), so it is not a clean baseline. Other engineers' work shared the 2 cores.`,
    '',
    table(['phase', 'PUT/s', 'p99 ms'], [row(`${phaseSeconds} s before`, (sample) => sample.before), row('during the moves', (sample) => sample.during), row(`${phaseSeconds} s after`, (sample) => sample.after)]),
  ].join('\n');
  console.log(markdown);
  await writeSection(snapshotRateMax !== '' ? 'sharding-move-throttled' : 'sharding-move', markdown);
}

await main();
