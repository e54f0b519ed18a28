/**
 * Write throughput of one Raft group against many shards, on real processes:
 * a cluster of `--members` members (default 3; the issue asks for six) started without split keys (group 1 holds every key:
 * one leader takes every write) and one started with `--shards - 1` split
 * keys spread over the key space (each shard its own group and leader,
 * leaders spread over the members). `wrk` sends PUTs of 1,000 keys in turn
 * (16-byte values) with `--connections` connections in all, split over
 * one wrk process at each member, at once; the member routes each
 * key to its shard's leader. Fresh clusters every round, configurations
 * alternating.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/sharding-throughput.js [--members 6] [--shards 64] [--rounds 3] [--duration 10] [--connections 100] [--engine lsm]
 *
 * Prints the table and writes it to docs/benchmarks.md (section "sharding-throughput", or
 * "sharding-throughput-<members>" for other than three members).
 */
import { ProcessCluster } from '../testkit/process/cluster-process.js';
import { type WrkResult, runWrkAsync } from './lib/wrk.js';
import { flag, formatNumber, machineLine, medianCell, table, writeSection } from './report.js';
import { KEYS, putScript, splitKeys, untilLeaders } from './lib/sharding-load.js';

const shardCount = Number(flag('shards', '64'));
const rounds = Number(flag('rounds', '3'));
const durationSeconds = Number(flag('duration', '10'));
const connections = Number(flag('connections', '100'));
const engine = flag('engine', 'lsm');
const MEMBERS = Number(flag('members', '3'));

interface Sample {
  readonly requestsPerSecond: number;
  /** The highest of the wrk processes' p99s. */
  readonly p99Ms: number;
  readonly errors: number;
  /** Members leading at least one data shard. */
  readonly leadingMembers: number;
}

async function measure(shards: number, script: string): Promise<Sample> {
  const serveArgs = ['--engine', engine, ...(shards > 1 ? ['--split-keys', splitKeys(shards).join(',')] : [])];
  const cluster = await ProcessCluster.start(MEMBERS, { serveArgs });
  try {
    await cluster.waitForLeader(30_000);
    await untilLeaders(cluster, MEMBERS, shards);
    const view = await cluster.client(1).shards();
    const leadingMembers = new Set(view.shards.map((shard) => shard.leader)).size;
    const per = Array.from({ length: MEMBERS }, (_, i) => Math.floor(connections / MEMBERS) + (i < connections % MEMBERS ? 1 : 0));
    const results: WrkResult[] = await Promise.all(per.map((count, i) => runWrkAsync(cluster.url(i + 1), script, count, durationSeconds)));
    return {
      requestsPerSecond: results.reduce((sum, result) => sum + result.requestsPerSecond, 0),
      p99Ms: Math.max(...results.map((result) => result.latencyP99Ms)),
      errors: results.reduce((sum, result) => sum + result.errors, 0),
      leadingMembers,
    };
  } finally {
    await cluster.close();
  }
}

async function main(): Promise<void> {
  const script = await putScript();
  const configs = [1, shardCount];
  const samples = new Map<number, Sample[]>(configs.map((count) => [count, []]));
  for (let round = 0; round < rounds; round++) {
    for (const count of configs) {
      const sample = await measure(count, script);
      samples.get(count)!.push(sample);
      console.log(`round ${round + 1}, ${count} shard(s): ${JSON.stringify(sample)}`);
    }
  }
  const rows = configs.map((count) => {
    const list = samples.get(count)!;
    return [
      count === 1 ? '1 (not sharded: group 1 holds every key)' : `${count} (split keys)`,
      medianCell(list.map((s) => s.requestsPerSecond)),
      medianCell(list.map((s) => s.p99Ms), (value) => formatNumber(value, 1)),
      list.map((s) => s.errors).join(' / '),
      list.map((s) => s.leadingMembers).join(' / '),
    ];
  });
  const markdown = [
    `### Write throughput: one group against ${shardCount} shards, ${MEMBERS} members`,
    '',
    machineLine(),
    `Real processes, engine ${engine}, fsync; wrk PUTs of ${KEYS} keys in turn (16-byte values), ${connections} connections in all, split over ${MEMBERS} wrk processes, one at each member (members route keys to their shard's leader), ${durationSeconds} s; a fresh cluster every round, median of ${rounds} rounds (min–max). p99 is the highest of the wrk processes'. The ${MEMBERS} members, the ${MEMBERS} wrk processes and other engineers' work shared the 2 cores.`,
    '',
    table(['shards', 'PUT requests/s', 'p99 ms', 'errors per round', 'members leading a shard, per round'], rows),
  ].join('\n');
  console.log(markdown);
  // Three members keep the section they always had; other sizes get their own (the issue asks for six).
  await writeSection(MEMBERS === 3 ? 'sharding-throughput' : `sharding-throughput-${MEMBERS}`, markdown);
}

await main();
