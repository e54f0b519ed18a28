/**
 * Write throughput of one Raft group against many shards, on real processes:
 * a three-member cluster started without split keys (group 1 holds every key:
 * one leader takes every write) and one started with `--shards - 1` split
 * keys spread over the key space (each shard its own group and leader,
 * leaders spread over the members). `wrk` sends PUTs of 1,000 keys in turn
 * (16-byte values) with `--connections` connections in all, split over
 * three wrk processes, one at each member, at once; the member routes each
 * key to its shard's leader. Fresh clusters every round, configurations
 * alternating.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/sharding-throughput.js [--shards 64] [--rounds 3] [--duration 10] [--connections 100] [--engine lsm]
 *
 * Prints the table and writes it to docs/benchmarks.md (section "sharding-throughput").
 */
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessCluster } from '../testkit/process/cluster-process.js';
import { type WrkResult, runWrkAsync } from './lib/wrk.js';
import { flag, formatNumber, machineLine, medianCell, table, writeSection } from './report.js';

const shardCount = Number(flag('shards', '64'));
const rounds = Number(flag('rounds', '3'));
const durationSeconds = Number(flag('duration', '10'));
const connections = Number(flag('connections', '100'));
const engine = flag('engine', 'lsm');
const KEYS = 1000;
const MEMBERS = 3;

const keyName = (i: number): string => `key${String(i).padStart(4, '0')}`;

/** `count - 1` split keys cutting key0000..key0999 into `count` shards of about equal key counts. */
function splitKeys(count: number): string[] {
  return Array.from({ length: count - 1 }, (_, i) => keyName(Math.round(((i + 1) * KEYS) / count)));
}

async function wrkScript(): Promise<string> {
  const path = join(tmpdir(), 'impulse-sharding-bench-put.lua');
  const lines = [
    'counter = 0',
    'request = function()',
    '  counter = counter + 1',
    `  local key = string.format("/kv/key%04d", counter % ${KEYS})`,
    '  return wrk.format("PUT", key, nil, string.format("value-%010d", counter))',
    'end',
  ];
  await writeFile(path, lines.join('\n') + '\n');
  return path;
}

async function untilLeaders(cluster: ProcessCluster, shards: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const views = await Promise.all(Array.from({ length: MEMBERS }, (_, i) => cluster.client(i + 1).shards().catch(() => undefined)));
    if (views.every((view) => view !== undefined && view.shards.length === shards && view.shards.every((shard) => shard.leader !== null))) return;
    if (Date.now() > deadline) throw new Error(`the ${shards} shards did not all elect a leader within 60 s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

interface Sample {
  readonly requestsPerSecond: number;
  /** The highest of the three wrk processes' p99s. */
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
    await untilLeaders(cluster, shards);
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
  const script = await wrkScript();
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
    `### Write throughput: one group against ${shardCount} shards, three members`,
    '',
    machineLine(),
    `Real processes, engine ${engine}, fsync; wrk PUTs of ${KEYS} keys in turn (16-byte values), ${connections} connections in all, split over three wrk processes, one at each member (members route keys to their shard's leader), ${durationSeconds} s; a fresh cluster every round, median of ${rounds} rounds (min–max). p99 is the highest of the three wrk processes'. The three members, the three wrk processes and other engineers' work shared the 2 cores.`,
    '',
    table(['shards', 'PUT requests/s', 'p99 ms', 'errors per round', 'members leading a shard, per round'], rows),
  ].join('\n');
  console.log(markdown);
  await writeSection('sharding-throughput', markdown);
}

await main();
