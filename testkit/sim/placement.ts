/**
 * Placement at a scale no machine here runs as processes: a seeded sequence
 * of node additions and deaths over many shards, the product planner
 * (src/shard/placement.ts) run after each, its moves applied to a model of
 * the replica sets, and the invariants checked after every change:
 *
 *   - every shard has `replicationFactor` replicas, on distinct live nodes
 *     (no shard stays below its count once the plan ran);
 *   - every live node holds floor(T/N) or ceil(T/N) replicas: within 10% of
 *     the mean (from 10 replicas a node on, one replica is <= 10%);
 *   - no more moves than needed: exactly `minimumMoves` (a lower bound) when
 *     the change only unbalances, within 3% of it when replicas were lost;
 *   - re-replication after a death is spread out: no live node receives more
 *     than ceil(lost / live) + 1 of the lost replicas, so with `c` copies at
 *     once per node the time a shard spends below its count is bounded by
 *     the dead-node timeout + ceil(that / c) copy times;
 *   - leaders (src/shard/leaders.ts): a shard whose leader died or moved
 *     away elects one of its replicas (seeded), then the leader planner
 *     runs: afterwards no live node leads more than ceil(shards / N), every
 *     transfer went to a replica of its shard, and planning again gives
 *     nothing (no flapping).
 *
 *   - with shard sizes weighed (`sizes.weighBytes`): every node's bytes
 *     within BYTE_TOLERANCE of the mean, counts still in [floor, ceil],
 *     moves against `minimumByteMoves` (after a growth: within
 *     BYTE_MOVES_SLACK of it), and planning again on the result moves
 *     nothing (no flapping). With `weighBytes` false the same sized shards
 *     go to today's count-only planner, for comparison (bytes not checked).
 *
 * A run is a pure function of its options (seed included): `traceHash`
 * lets a test run one twice and compare.
 */
import { createHash } from 'node:crypto';
import { type PlacedShard, type PlacementInput, applyMoves, minimumByteMoves, minimumMoves, planPlacement } from '../../src/shard/placement.js';
import { BYTE_TOLERANCE } from '../../src/shard/byte-balance.js';
import { type LedShard, leaderBound, leaderCounts, planLeaderTransfers } from '../../src/shard/leaders.js';
import { SeededRandom } from '../../src/util/random.js';

export interface PlacementSimOptions {
  readonly seed: number;
  readonly initialNodes: number;
  readonly shards: number;
  readonly replicationFactor: number;
  /** Node additions and deaths after the initial placement. */
  readonly changes: number;
  /** Never fewer live nodes than this (deaths are skipped below it). */
  readonly minNodes: number;
  /**
   * Shard sizes (`SHARD_SIZES`): absent, every shard weighs the same; with
   * sizes, each shard gets a seeded size, and `weighBytes` says whether the
   * planner is told them (false: today's count-only planner on the same
   * shards, for comparison).
   */
  readonly sizes?: { readonly weighBytes: boolean };
}

/** After a growth, a byte-weighing plan may make up to this many times `minimumByteMoves` (the bound is loose for swaps: 3.25× seen at most on one step, while a whole run stays within 2% of the summed bounds). */
export const BYTE_MOVES_SLACK = 4;

/** With sizes, a change is a growth with this chance: GROWTH_SHARE of the shards, in key order from a random one, grow GROWTH_FACTOR-fold. */
export const GROWTH_CHANCE = 0.25;
export const GROWTH_SHARE = 0.05;
export const GROWTH_FACTOR = 4;

/** Uneven shard sizes: log-uniform from 1 MiB to 512 MiB (most shards small, a few 100× larger), seeded apart from the run's other choices. */
export function shardSizes(seed: number, count: number): number[] {
  const random = new SeededRandom(seed * 7919 + 17);
  return Array.from({ length: count }, () => Math.round(2 ** (20 + 9 * random.next())));
}

export interface PlacementStep {
  readonly change: string;
  readonly liveNodes: number;
  readonly moves: number;
  readonly minimumMoves: number;
  /** Lost replicas re-created (moves whose source died). */
  readonly restored: number;
  /** Most restored replicas one node received. */
  readonly restoredPerNodeMax: number;
  readonly minReplicas: number;
  readonly maxReplicas: number;
  readonly meanReplicas: number;
  readonly planMs: number;
  /** Leaderships handed over for balance after the change. */
  readonly leaderTransfers: number;
  /** Most shards one live node leads after them, and the bound (ceil(shards / N)). */
  readonly leadersMax: number;
  readonly leadersBound: number;
  /** With sizes: the most and least bytes on one live node, over the mean (1 = even); 1 without sizes. */
  readonly bytesMaxOverMean: number;
  readonly bytesMinOverMean: number;
  /** With sizes: the lower bound of a plan that also brings bytes within the tolerance (minimumByteMoves); else minimumMoves. */
  readonly minimumByteMoves: number;
}

export interface PlacementSimResult {
  readonly steps: readonly PlacementStep[];
  /** Problems found (empty when every invariant held). */
  readonly violations: readonly string[];
  readonly traceHash: string;
}

export function runPlacementSimulation(options: PlacementSimOptions): PlacementSimResult {
  const random = new SeededRandom(options.seed);
  let nextNode = options.initialNodes + 1;
  let live = Array.from({ length: options.initialNodes }, (_, index) => index + 1);
  const sizes = options.sizes === undefined ? undefined : shardSizes(options.seed, options.shards);
  const weigh = options.sizes?.weighBytes === true;
  let shards: PlacedShard[] = Array.from({ length: options.shards }, (_, index) => ({ id: index + 2, replicas: [], ...(weigh ? { sizeBytes: sizes![index]! } : {}) }));
  const sizeOf = (shard: number): number => (sizes === undefined ? 1 : sizes[shard - 2]!);
  const steps: PlacementStep[] = [];
  const violations: string[] = [];
  const trace = createHash('sha256');
  const leaders = new Map<number, number>();
  const step = (change: string): void => {
    const input: PlacementInput = { liveNodes: live, shards, replicationFactor: options.replicationFactor };
    const started = performance.now();
    const moves = planPlacement(input);
    const planMs = performance.now() - started;
    const minimum = minimumMoves(input);
    shards = applyMoves(shards, moves);
    const restoredTo = new Map<number, number>();
    for (const move of moves) if (move.from !== null && !live.includes(move.from)) restoredTo.set(move.to, (restoredTo.get(move.to) ?? 0) + 1);
    const restored = [...restoredTo.values()].reduce((sum, count) => sum + count, 0);
    const counts = new Map(live.map((id) => [id, 0]));
    for (const shard of shards) for (const id of shard.replicas) counts.set(id, (counts.get(id) ?? 0) + 1);
    const values = [...counts.values()];
    const bytes = new Map(live.map((id) => [id, 0]));
    for (const shard of shards) for (const id of shard.replicas) bytes.set(id, (bytes.get(id) ?? 0) + sizeOf(shard.id));
    const meanBytes = [...bytes.values()].reduce((sum, each) => sum + each, 0) / live.length;
    const sized: PlacementInput = { ...input, shards: input.shards.map((shard) => ({ ...shard, sizeBytes: sizeOf(shard.id) })) };
    const record: PlacementStep = {
      change,
      liveNodes: live.length,
      moves: moves.length,
      minimumMoves: minimum,
      restored,
      restoredPerNodeMax: Math.max(0, ...restoredTo.values()),
      minReplicas: Math.min(...values),
      maxReplicas: Math.max(...values),
      meanReplicas: values.reduce((sum, count) => sum + count, 0) / values.length,
      planMs,
      ...balanceLeaders(shards, live, leaders, random, (problem) => violations.push(`${change}: ${problem}`)),
      bytesMaxOverMean: Math.max(...bytes.values()) / meanBytes,
      bytesMinOverMean: Math.min(...bytes.values()) / meanBytes,
      minimumByteMoves: sizes === undefined ? minimum : minimumByteMoves(sized),
    };
    steps.push(record);
    violations.push(...checkPlacement(record, shards, live, counts, options.replicationFactor, weigh ? { grew: change.includes('grow') } : undefined));
    if (weigh) {
      const again = planPlacement({ liveNodes: live, shards, replicationFactor: options.replicationFactor });
      if (again.length > 0) violations.push(`${change}: the planner would make ${again.length} more moves on its own result (flapping)`);
    }
    trace.update(`${change}|${moves.map((move) => `${move.shard}:${move.from}>${move.to}`).join(',')}|leaders ${[...leaders.values()].join(',')}\n`);
  };
  step(`place ${options.shards} shards on ${live.length} nodes`);
  for (let change = 0; change < options.changes; change++) {
    if (sizes !== undefined && random.chance(GROWTH_CHANCE)) {
      // Writes land unevenly: a contiguous run of shards (a hot key range) grows GROWTH_FACTOR-fold.
      const first = random.int(options.shards);
      const grown = Math.ceil(options.shards * GROWTH_SHARE);
      for (let i = 0; i < grown; i++) sizes[(first + i) % options.shards]! *= GROWTH_FACTOR;
      if (weigh) shards = shards.map((shard) => ({ ...shard, sizeBytes: sizeOf(shard.id) }));
      step(`shards ${first + 2}.. (${grown}) grow ${GROWTH_FACTOR}x`);
    } else if (random.chance(0.5) || live.length <= options.minNodes) {
      live = [...live, nextNode];
      step(`add node ${nextNode++}`);
    } else {
      const dead = live[random.int(live.length)]!;
      live = live.filter((id) => id !== dead);
      step(`node ${dead} dies`);
    }
  }
  return { steps, violations, traceHash: trace.digest('hex') };
}

/**
 * Leaders after a change: a shard whose leader is no longer one of its
 * replicas elects a random replica (as an election would); then the leader
 * planner's transfers are applied and checked (`checkLeaders`). `leaders`
 * (shard → node) is updated in place.
 */
function balanceLeaders(shards: readonly PlacedShard[], live: readonly number[], leaders: Map<number, number>, random: SeededRandom, problem: (text: string) => void): Pick<PlacementStep, 'leaderTransfers' | 'leadersMax' | 'leadersBound'> {
  for (const shard of shards) {
    if (!shard.replicas.includes(leaders.get(shard.id) ?? 0)) leaders.set(shard.id, shard.replicas[random.int(shard.replicas.length)]!);
  }
  const led = (): LedShard[] => shards.map((shard) => ({ id: shard.id, voters: shard.replicas, leader: leaders.get(shard.id)! }));
  const transfers = planLeaderTransfers(live, led());
  const byId = new Map(shards.map((shard) => [shard.id, shard]));
  for (const transfer of transfers) {
    const shard = byId.get(transfer.shard)!;
    if (leaders.get(transfer.shard) !== transfer.from || !shard.replicas.includes(transfer.to)) problem(`leader transfer ${transfer.shard}:${transfer.from}>${transfer.to} is not from its leader to a replica`);
    leaders.set(transfer.shard, transfer.to);
  }
  const problems = checkLeaders(live, led());
  for (const text of problems) problem(text);
  const counts = leaderCounts(live, led());
  return { leaderTransfers: transfers.length, leadersMax: Math.max(...counts.values()), leadersBound: leaderBound(shards.length, live.length) };
}

/** The leader invariants (see the file comment): the problems found. Exported so tests can show it rejects bad leaders. */
export function checkLeaders(live: readonly number[], shards: readonly LedShard[]): string[] {
  const problems: string[] = [];
  const bound = leaderBound(shards.length, live.length);
  for (const [node, count] of leaderCounts(live, shards)) if (count > bound) problems.push(`node ${node} leads ${count} shards, above ${bound}`);
  const again = planLeaderTransfers(live, shards);
  if (again.length > 0) problems.push(`the leader planner would hand ${again.length} more leaderships over (flapping)`);
  return problems;
}

/**
 * The invariants of one step (see the file comment); the problems found.
 * `bytes`: the planner weighed sizes (and `grew`: the change was a growth):
 * bytes are checked against BYTE_TOLERANCE and moves against
 * `minimumByteMoves`. Exported so tests can show it rejects bad placements.
 */
export function checkPlacement(step: PlacementStep, shards: readonly PlacedShard[], live: readonly number[], counts: ReadonlyMap<number, number>, factor: number, bytes?: { readonly grew: boolean }): string[] {
  const problems: string[] = [];
  const liveSet = new Set(live);
  const want = Math.min(factor, live.length);
  for (const shard of shards) {
    if (shard.replicas.length !== want || new Set(shard.replicas).size !== want || shard.replicas.some((id) => !liveSet.has(id))) {
      problems.push(`${step.change}: shard ${shard.id} has replicas ${shard.replicas.join(',')}`);
      break;
    }
  }
  const total = shards.length * want;
  const low = Math.floor(total / live.length);
  const high = Math.ceil(total / live.length);
  for (const [id, count] of counts) {
    if (count < low || count > high) problems.push(`${step.change}: node ${id} holds ${count} replicas, outside [${low}, ${high}]`);
  }
  if (step.maxReplicas > step.meanReplicas * 1.1 || step.minReplicas < step.meanReplicas * 0.9) problems.push(`${step.change}: replica counts ${step.minReplicas}..${step.maxReplicas} are not within 10% of the mean ${step.meanReplicas.toFixed(1)}`);
  // Balancing alone (a node added) meets the lower bound exactly; re-replication may cost a
  // few more (a lost replica cannot go to a node that already has its shard), bounded at 3%.
  const slack = step.restored > 0 ? Math.ceil(step.minimumMoves * 0.03) : 0;
  if (bytes === undefined && step.moves > step.minimumMoves + slack) problems.push(`${step.change}: ${step.moves} moves where ${step.minimumMoves} suffice`);
  if (bytes !== undefined) {
    // Bytes within the tolerance of the mean (float dust aside). Moves: as above against the byte bound; after a
    // growth (swaps within the count band), at most BYTE_MOVES_SLACK times the bound, which is loose for swaps.
    const dust = 1e-9;
    if (step.bytesMaxOverMean > 1 + BYTE_TOLERANCE + dust || step.bytesMinOverMean < 1 - BYTE_TOLERANCE - dust) problems.push(`${step.change}: bytes a node ${step.bytesMinOverMean.toFixed(3)}..${step.bytesMaxOverMean.toFixed(3)} of the mean, outside ${BYTE_TOLERANCE}`);
    const allowed = bytes.grew ? BYTE_MOVES_SLACK * step.minimumByteMoves : step.minimumByteMoves + slack;
    if (step.moves > allowed) problems.push(`${step.change}: ${step.moves} moves where the bound is ${step.minimumByteMoves}`);
  }
  if (step.restored > 0 && step.restoredPerNodeMax > Math.ceil(step.restored / live.length) + 1) problems.push(`${step.change}: one node received ${step.restoredPerNodeMax} of ${step.restored} lost replicas`);
  return problems;
}
