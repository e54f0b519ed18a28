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
 * Prints the table and writes it to docs/benchmarks.md (section "sharding-placement").
 */
import { type PlacedShard, applyMoves, minimumMoves, planPlacement } from '../src/shard/placement.js';
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
].join('\n');
console.log(markdown);
await writeSection('sharding-placement', markdown);
