/**
 * The deterministic cluster simulator: one process runs a whole Raft cluster
 * — every node the product driver (src/raft/driver.ts) on in-memory seams —
 * with the key-value state machine on top, clients issuing put/get/delete/cas,
 * and a nemesis injecting faults. Everything random comes from ONE
 * `SeededRandom`, time is virtual, and events run from one ordered queue, so
 * `runSimulation({ seed })` is a pure function of its options: the same seed
 * replays the same run, event for event (`traceHash` proves it).
 *
 * The parts: world.ts (time, randomness, trace, stats), cluster.ts (the nodes
 * and their seams), network.ts, clients.ts, nemesis.ts (faults), invariants.ts
 * (checks after every event). At the end, the clients' history is checked for
 * linearizability, and liveness: some operation completed after every fault
 * healed.
 */
import { AssertionError } from '../../src/util/assert.js';
import { DEFAULT_RAFT_TIMING } from '../../src/raft/raft.js';
import type { NodeId, RaftMutations } from '../../src/raft/types.js';
import { checkKvLinearizability, formatOperations, type CheckResult } from '../check/linearizability.js';
import { SimClients } from './clients.js';
import { SimCluster, type RunConfig } from './cluster.js';
import type { ViolationKind } from './invariants.js';
import { Nemesis } from './nemesis.js';
import { FAULT_KINDS, SimWorld, type FaultKind, type SimStats } from './world.js';

export { FAULT_KINDS, type FaultKind, type SimStats } from './world.js';
export type { ViolationKind } from './invariants.js';

export interface SimOptions {
  readonly seed: number;
  /** Initial voters; by default the seed picks 1 (rarely), 3 or 5. */
  readonly nodeCount?: 1 | 3 | 5;
  /** Virtual time with faults, then time with every fault healed (liveness must return). Defaults 3000 / 1500 ms. */
  readonly chaosMs?: number;
  readonly quietMs?: number;
  /** Fault kinds the nemesis may use; default all. */
  readonly faults?: readonly FaultKind[];
  /** TEST-ONLY broken core variants (see `RaftMutations`). */
  readonly mutations?: RaftMutations;
  /** Receives every trace line (verbose replay). The trace is hashed either way. */
  readonly trace?: (line: string) => void;
}

export interface Violation {
  readonly kind: ViolationKind;
  readonly atMs: number;
  readonly message: string;
}

export interface SimResult {
  readonly seed: number;
  readonly nodeCount: number;
  /** One line describing the run's randomly chosen configuration. */
  readonly setup: string;
  readonly violations: readonly Violation[];
  readonly check: CheckResult | null;
  readonly stats: SimStats;
  /** sha256 over every trace line: equal for two runs of one seed, or the simulator is not deterministic. */
  readonly traceHash: string;
}

const CHECK_STEP_BUDGET = 3_000_000;
const NEVER = Number.MAX_SAFE_INTEGER;

/** The shape of a run, drawn from its seed. */
interface Shape {
  readonly storm: boolean;
  readonly nodeCount: 1 | 3 | 5;
  readonly votersMin: number;
  readonly keys: readonly string[];
  readonly overload: boolean;
  readonly config: RunConfig;
  readonly summary: string;
}

function drawShape(world: SimWorld, options: SimOptions): Shape {
  const random = world.random;
  const storm = random.chance(0.4);
  const single = random.chance(0.05);
  const nodeCount = options.nodeCount ?? (single ? 1 : storm || random.chance(0.5) ? 3 : 5);
  const votersMin = nodeCount === 1 || random.chance(0.15) ? 1 : 3;
  const entriesPerAppendMax = storm ? 1 : world.pick([1, 1, 2, 4, 16]);
  const inflightAppendsMax = storm ? 1 : world.pick([1, 2, 4]);
  const preVote = random.chance(0.7);
  const checkQuorum = random.chance(0.7);
  const compactEvery = world.pick([NEVER, 8, 32]);
  const catchUp = world.pick([0, 4]);
  const smallBytes = random.chance(0.3); // commands are ~70 bytes: a few per append, Ready and apply batch
  const overload = random.chance(0.3);
  // One key with dozens of unknown-outcome writes can exhaust the checker's budget: 2..4 keys.
  const keys = ['a', 'b', 'c', 'd'].slice(0, random.between(2, 4));
  const voters = Array.from({ length: nodeCount }, (_, i) => i + 1);
  const config: RunConfig = {
    initialConf: { voters, learners: [] },
    raft: {
      ...DEFAULT_RAFT_TIMING,
      applyBatchMax: 64,
      learnerCatchUpEntriesMax: 8,
      entriesPerAppendMax,
      inflightAppendsMax,
      preVote,
      checkQuorum,
      ...(smallBytes ? { appendBytesMax: 200, readyEntriesBytesMax: 300, applyBytesMax: 300, inflightBytesMax: 400 } : {}),
      ...(overload ? { pendingReadsMax: 6, uncommittedEntriesMax: 24 } : {}),
      ...(options.mutations !== undefined ? { mutations: options.mutations } : {}),
    },
    limits: {
      compactThresholdEntries: compactEvery,
      snapshotCatchUpEntries: catchUp,
      ...(overload ? { pendingProposalsMax: 8, pendingReadsMax: 8 } : {}),
    },
  };
  const summary =
    `${storm ? 'leadership storm, ' : ''}${nodeCount} nodes (voters ${votersMin}..5), ${keys.length} keys, ` +
    `entriesPerAppend ${entriesPerAppendMax}, inflight ${inflightAppendsMax}, compactEvery ${compactEvery === NEVER ? 'never' : compactEvery}, ` +
    `preVote ${preVote}, checkQuorum ${checkQuorum}${smallBytes ? ', small byte bounds' : ''}${overload ? ', small request bounds' : ''}`;
  return { storm, nodeCount, votersMin, keys, overload, config, summary };
}

export function runSimulation(options: SimOptions): SimResult {
  const world = new SimWorld(options.seed, options.trace);
  const chaosMs = options.chaosMs ?? 3000;
  const quietMs = options.quietMs ?? 1500;
  const shape = drawShape(world, options);
  const setup = `${shape.summary}, chaos ${chaosMs} ms + quiet ${quietMs} ms`;
  world.trace(`setup ${setup}`);
  const violations: Violation[] = [];
  const violate = (kind: ViolationKind, message: string): void => {
    world.trace(`VIOLATION ${kind}: ${message}`);
    violations.push({ kind, atMs: world.nowMs, message });
  };
  const cluster = new SimCluster(world, shape.config, violate);
  const voters: NodeId[] = [...shape.config.initialConf.voters];
  for (const id of voters) cluster.createNode(id, voters);
  const clients = new SimClients(world, cluster, shape.keys);
  clients.start(shape.storm ? world.random.between(4, 8) : world.random.between(2, 7));
  const nemesis = new Nemesis(world, cluster, clients, {
    faults: options.faults ?? FAULT_KINDS,
    storm: shape.storm,
    chaosMs,
    votersMin: shape.votersMin,
    votersMax: 5,
    electionTimeoutTicks: shape.config.raft.electionTimeoutTicks,
  });
  nemesis.start();
  world.at(chaosMs, () => {
    clients.chaosOver = true;
    nemesis.heal();
  });
  let stopped = false;
  world.at(chaosMs + quietMs, () => (stopped = true));
  runEvents(world, cluster, violations, violate, () => stopped);
  world.stats.simulatedMs = world.nowMs;
  for (const node of cluster.nodes.values()) world.stats.compactions += node.store.counters.compactions;
  clients.stopped = true;
  clients.finish();
  const check = violations.length === 0 ? checkHistory(world, clients, violate) : null;
  return { seed: options.seed, nodeCount: shape.nodeCount, setup, violations, check, stats: world.stats, traceHash: world.traceHash() };
}

/** Runs events until the end, or the first violation; checks the invariants after each. */
function runEvents(world: SimWorld, cluster: SimCluster, violations: readonly Violation[], violate: (kind: ViolationKind, message: string) => void, stopped: () => boolean): void {
  while (!stopped() && violations.length === 0) {
    const event = world.queue.pop();
    if (event === undefined) break;
    world.nowMs = event.timeMs;
    world.stats.events++;
    try {
      event.run();
      cluster.checkAfterEvent();
    } catch (error) {
      if (!(error instanceof AssertionError)) throw error;
      violate('core-assertion', error.message);
    }
  }
}

function checkHistory(world: SimWorld, clients: SimClients, violate: (kind: ViolationKind, message: string) => void): CheckResult {
  if (world.stats.quietOpsOk === 0) violate('liveness', 'no client operation completed after every fault healed');
  world.stats.opsChecked = clients.history.length;
  const check = checkKvLinearizability(clients.history, { stepBudget: CHECK_STEP_BUDGET });
  world.trace(`check ${check.verdict} steps=${check.steps}`);
  if (check.verdict === 'not-linearizable') {
    violate('linearizability', `key ${JSON.stringify(check.key)}: ${check.explanation}\n${formatOperations(check.operations)}`);
  }
  return check;
}
