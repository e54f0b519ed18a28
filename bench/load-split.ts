/**
 * What splitting by load and weighing load in leader balance cost in CPU
 * (pure code, one process, no I/O):
 *
 *   - a hot shard's key sample (`KeySampler.offer`, on the request path while
 *     the shard is hot): ns a request, 16-byte keys, a 256-key reservoir;
 *   - the split key's choice (`chooseLoadSplitKey`) on a full reservoir;
 *   - a leader-balance plan (`planLeaderTransfers`) at 50 members and 5,000
 *     shards (three random voters each; member 1 leads every shard it votes
 *     for, the rest random; Zipf-like loads): by counts alone and with loads,
 *     and the busiest member's load after each plan.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/load-split.js [--runs 3]
 *
 * Prints the median of the runs with the spread (min–max). CPU-bound and
 * single-threaded: other load on a shared machine still moves it.
 */
import { performance } from 'node:perf_hooks';
import { type LedShard, planLeaderTransfers } from '../src/shard/leaders.js';
import { KeySampler, LOAD_SAMPLE_KEYS, chooseLoadSplitKey } from '../src/shard/load-split-key.js';
import { SeededRandom } from '../src/util/random.js';
import { flag, formatNumber, loadLine, machineLine, medianCell, table } from './report.js';

const RUNS = Number(flag('runs', '3'));
const OFFERS = 2_000_000;
const MEMBERS = 50;
const SHARDS = 5_000;

function offerNs(seed: number): number {
  const random = new SeededRandom(seed);
  const keys = Array.from({ length: 4096 }, (_, i) => Buffer.from(`user${String(i * 7919).padStart(12, '0')}`));
  const sampler = new KeySampler(random, LOAD_SAMPLE_KEYS);
  const start = performance.now();
  for (let i = 0; i < OFFERS; i++) sampler.offer(keys[i & 4095]!);
  return ((performance.now() - start) * 1e6) / OFFERS;
}

function chooseUs(seed: number): number {
  const random = new SeededRandom(seed);
  const sampler = new KeySampler(random, LOAD_SAMPLE_KEYS);
  for (let i = 0; i < 100_000; i++) sampler.offer(Buffer.from(`user${String(random.int(1_000_000)).padStart(12, '0')}`));
  const rounds = 2000;
  const start = performance.now();
  for (let i = 0; i < rounds; i++) chooseLoadSplitKey(sampler.keys(), { start: Buffer.alloc(0), end: null });
  return ((performance.now() - start) * 1000) / rounds;
}

function cluster(seed: number): { live: number[]; shards: LedShard[] } {
  const random = new SeededRandom(seed);
  const live = Array.from({ length: MEMBERS }, (_, i) => i + 1);
  const shards: LedShard[] = [];
  for (let id = 2; id < SHARDS + 2; id++) {
    const voters = new Set<number>();
    while (voters.size < 3) voters.add(1 + random.int(MEMBERS));
    const list = [...voters];
    shards.push({ id, voters: list, leader: list.includes(1) ? 1 : list[random.int(3)]!, load: Math.round(10_000 / (1 + random.int(SHARDS))) });
  }
  return { live, shards };
}

function busiestLoad(shards: readonly LedShard[], transfers: ReturnType<typeof planLeaderTransfers>): number {
  const leader = new Map(shards.map((shard) => [shard.id, shard.leader]));
  for (const transfer of transfers) leader.set(transfer.shard, transfer.to);
  const loads = new Map<number, number>();
  for (const shard of shards) loads.set(leader.get(shard.id)!, (loads.get(leader.get(shard.id)!) ?? 0) + (shard.load ?? 0));
  return Math.max(...loads.values());
}

function plan(seed: number): { countsMs: number; loadsMs: number; transfers: number; busiestCounts: number; busiestLoads: number } {
  const { live, shards } = cluster(seed);
  const plain = shards.map(({ load: _load, ...shard }) => shard);
  let start = performance.now();
  const byCounts = planLeaderTransfers(live, plain);
  const countsMs = performance.now() - start;
  start = performance.now();
  const byLoads = planLeaderTransfers(live, shards);
  const loadsMs = performance.now() - start;
  return { countsMs, loadsMs, transfers: byLoads.length, busiestCounts: busiestLoad(shards, byCounts), busiestLoads: busiestLoad(shards, byLoads) };
}

console.log(machineLine());
console.log(`start: ${loadLine()}`);
plan(0); // warm-up: the first plan compiles
const offers: number[] = [];
const chooses: number[] = [];
const plans: ReturnType<typeof plan>[] = [];
for (let run = 1; run <= RUNS; run++) {
  offers.push(offerNs(run));
  chooses.push(chooseUs(run));
  plans.push(plan(run));
}
const ms = (value: number): string => formatNumber(value, 1);
console.log(table(['figure', `median of ${RUNS} (min–max)`], [
  ['KeySampler.offer, ns a request (hot shard)', medianCell(offers, (value) => formatNumber(value, 1))],
  [`chooseLoadSplitKey on ${LOAD_SAMPLE_KEYS} keys, µs`, medianCell(chooses, (value) => formatNumber(value, 1))],
  [`leader plan ${MEMBERS}×${formatNumber(SHARDS)}, counts only, ms`, medianCell(plans.map((p) => p.countsMs), ms)],
  [`leader plan ${MEMBERS}×${formatNumber(SHARDS)}, with loads, ms`, medianCell(plans.map((p) => p.loadsMs), ms)],
  ['transfers planned (with loads)', medianCell(plans.map((p) => p.transfers))],
  ['busiest member after the plan, req/s: counts only', medianCell(plans.map((p) => p.busiestCounts))],
  ['busiest member after the plan, req/s: with loads', medianCell(plans.map((p) => p.busiestLoads))],
]));
console.log(`end: ${loadLine()}`);
