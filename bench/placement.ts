/**
 * Scale-out on paper, from the placement simulation (testkit/sim/placement.ts):
 * how much placement work a change causes as the cluster grows from 5 to 50
 * nodes and from 100 to 5,000 shards (three replicas each): the replica moves
 * of the first placement, of adding one node, and of one node's death, each
 * beside the lower bound any plan needs; and the peer messages that work and
 * the steady state cost, counted from the protocol (MOVE_MESSAGES below; not
 * measured). Deterministic (no timing): the figures are the same on every
 * machine.
 *
 *   node dist/bench/placement.js
 *
 * Then bytes: the scale (40 nodes at first, 24 seeded additions,
 * deaths and hot-range growths, 30-60 nodes, 5,000 shards of uneven sizes)
 * planned by the byte-weighing planner and by the count-only one (the same
 * planner told no sizes: today's before sizes were reported), same seeds.
 *
 * Prints the tables and writes them to docs/benchmarks.md (section "sharding-placement").
 */
import { type PlacedShard, applyMoves, minimumMoves, planPlacement } from '../src/shard/placement.js';
import { BYTE_TOLERANCE } from '../src/shard/byte-balance.js';
import { GROWTH_CHANCE, GROWTH_FACTOR, GROWTH_SHARE, type PlacementStep, runPlacementSimulation } from '../testkit/sim/placement.js';
import { formatNumber, table, writeSection } from './report.js';

const NODES = [5, 10, 25, 50];
const SHARDS = [100, 1000, 5000];
const FACTOR = 3;
/** Voters of the meta group (the map's Raft group): the first three members. */
const META_VOTERS = 3;
/** Heartbeats (and liveness pings) a second at the default timing: every 2 ticks of 50 ms. */
const HEARTBEATS_PER_SECOND = 10;

/** Peer messages of one Raft commit in a group of `members` (leader included): an append to each other member and its answer. */
const commitMessages = (members: number): number => 2 * (members - 1);

/**
 * Peer messages of one replica move (docs/sharding.md, "Moves"), at least:
 * three map changes committed in the meta group; three membership steps asked
 * of the shard's leader over RPC (request and answer); the learner's addition
 * committed by the three replicas, the learner's probe and its answer, the
 * snapshot (one stream, one answer); the promotion and the removal, each
 * committed by four members. Not counted: retries (a promotion refused while
 * the learner lags), a leadership transfer when the source leads (a
 * timeout-now and one election), heartbeats while the move runs.
 */
const MOVE_MESSAGES = 3 * commitMessages(META_VOTERS) + 3 * 2 + (commitMessages(FACTOR) + 2 + 2) + 2 * commitMessages(FACTOR + 1);

function movesFor(live: number[], shards: PlacedShard[]): { moves: number; minimum: number; after: PlacedShard[] } {
  const input = { liveNodes: live, shards, replicationFactor: FACTOR };
  const plan = planPlacement(input);
  return { moves: plan.length, minimum: minimumMoves(input), after: applyMoves(shards, plan) };
}

const rows: string[][] = [];
const messageRows: string[][] = [];
for (const nodes of NODES) {
  for (const count of SHARDS) {
    const live = Array.from({ length: nodes }, (_, index) => index + 1);
    const first = movesFor(live, Array.from({ length: count }, (_, index) => ({ id: index + 2, replicas: [] })));
    const added = movesFor([...live, nodes + 1], first.after);
    const died = movesFor(live.slice(1), first.after);
    const perNode = (count * FACTOR) / nodes;
    rows.push([String(nodes), formatNumber(count), formatNumber(perNode, 0), `${formatNumber(added.moves)} (${formatNumber(added.minimum)})`, `${formatNumber(died.moves)} (${formatNumber(died.minimum)})`, formatNumber((died.moves / (count * FACTOR)) * 100, 1)]);
    // Steady state: one liveness ping per ordered node pair; an active group's leader heartbeats each follower, which answers.
    const liveness = nodes * (nodes - 1) * HEARTBEATS_PER_SECOND;
    const activeGroups = count * commitMessages(FACTOR) * HEARTBEATS_PER_SECOND;
    messageRows.push([String(nodes), formatNumber(count), formatNumber(added.moves * MOVE_MESSAGES), formatNumber(died.moves * MOVE_MESSAGES), formatNumber(liveness), formatNumber(liveness / nodes), formatNumber(liveness + activeGroups), formatNumber((liveness + activeGroups) / nodes)]);
  }
}
const SEEDS = [1, 2, 3];
const byteRows: string[][] = [];
for (const weighBytes of [true, false]) {
  const runs = SEEDS.map((seed) => runPlacementSimulation({ seed, initialNodes: 40, shards: 5000, replicationFactor: 3, changes: 24, minNodes: 30, sizes: { weighBytes } }));
  const later = runs.flatMap((run) => run.steps.slice(1));
  const sum = (pick: (step: PlacementStep) => number): number => later.reduce((total, step) => total + pick(step), 0);
  byteRows.push([
    weighBytes ? `bytes and counts (tolerance ${BYTE_TOLERANCE * 100}%)` : 'counts only (sizes not told)',
    formatNumber(Math.max(...later.map((step) => step.bytesMaxOverMean)), 3),
    formatNumber(Math.min(...later.map((step) => step.bytesMinOverMean)), 3),
    formatNumber(Math.max(...later.map((step) => (step.maxReplicas - step.meanReplicas) / step.meanReplicas)) * 100, 1),
    `${formatNumber(sum((step) => step.moves))} (${formatNumber(sum((step) => step.minimumMoves))} / ${formatNumber(sum((step) => step.minimumByteMoves))})`,
    String(runs.reduce((total, run) => total + run.violations.length, 0)),
    formatNumber(Math.max(...later.map((step) => step.planMs)), 0),
  ]);
}
const markdown = [
  '### Placement work as the cluster grows (simulation, three replicas a shard)',
  '',
  'From `bench/placement.ts` (deterministic: replica moves the planner makes, the lower bound in parentheses). A move is a learner added, caught up by a snapshot, promoted, the source removed: four membership operations of that shard group and one snapshot of the shard.',
  '',
  table(['nodes', 'shards', 'replicas a node', 'moves: one node added', 'moves: one node dies', 'died: % of all replicas moved'], rows),
  '',
  `Peer messages, counted from the protocol (not measured): a move costs at least ${MOVE_MESSAGES} messages (three map changes committed by the meta group's ${META_VOTERS} voters, three membership steps asked of the shard's leader, the learner added and probed, one snapshot stream and its answer, the promotion and the removal committed by four members; retries, a leadership transfer off the source and heartbeats during the move not counted) plus the snapshot's bytes. At rest, every member pings every other ${HEARTBEATS_PER_SECOND} times a second (node liveness); a quiesced shard sends nothing, an active one ${commitMessages(FACTOR) * HEARTBEATS_PER_SECOND} a second (heartbeats to its two followers and their answers).`,
  '',
  table(['nodes', 'shards', 'messages: one node added', 'messages: one node dies', 'messages/s at rest, all quiesced', '… per node', 'messages/s, every shard active', '… per node'], messageRows),
  '',
  '### Byte balance at the issue\'s scale (simulation)',
  '',
  `Seeds ${SEEDS.join(', ')}: 5,000 shards of three replicas, sizes log-uniform 1-512 MiB; 40 nodes, then 24 changes each (a node added or dying, 30-60 nodes; with chance ${GROWTH_CHANCE}, ${GROWTH_SHARE * 100}% of the shards in key order growing ${GROWTH_FACTOR}x instead). Bytes a node over the mean after every change but the first placement, worst over all runs; moves summed over those changes, with the count bound and the byte bound (\`minimumMoves\` / \`minimumByteMoves\`) summed beside them. Plan time on this machine (shared), the slowest single plan.`,
  '',
  table(['planner', 'most bytes a node / mean', 'least / mean', 'replica count above mean, %', 'moves (count bound / byte bound)', 'invariant violations', 'slowest plan, ms'], byteRows),
].join('\n');
console.log(markdown);
await writeSection('sharding-placement', markdown);
