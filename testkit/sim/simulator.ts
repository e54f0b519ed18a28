/**
 * The deterministic cluster simulator: one process runs a whole Raft cluster
 * (3 or 5 nodes, growing and shrinking with membership changes) with the
 * key-value state machine on top, clients issuing put/get/delete/cas, and a
 * nemesis injecting faults. Everything random comes from ONE `SeededRandom`,
 * time is virtual, and events run from one ordered queue, so
 * `runSimulation({ seed })` is a pure function of its options: the same seed
 * replays the same run, event for event (`traceHash` proves it).
 *
 * Per simulated step (one event) the invariants of Raft are checked:
 *   - election safety: at most one leader per term;
 *   - log matching: an (index, term) pair names the same entry, preceded by
 *     the same term, on every node that ever stores it;
 *   - leader completeness: a new leader holds every entry any node applied;
 *   - state-machine safety: no node applies a different entry at an index
 *     than another node did.
 * At the end, the clients' history is checked for linearizability.
 */
import { createHash } from 'node:crypto';
import { AssertionError } from '../../src/util/assert.js';
import { SeededRandom } from '../../src/util/random.js';
import { DEFAULT_RAFT_TIMING, RaftNode } from '../../src/raft/raft.js';
import type { ConfChange, Entry, Message, NodeId, RaftMutations, Ready } from '../../src/raft/types.js';
import { checkKvLinearizability, formatOperations, type CheckResult, type KvInput, type KvOutput, type Operation } from '../check/linearizability.js';
import { EventQueue } from './event-queue.js';
import { decodeCommand, encodeCommand, KvStateMachine, type KvCommand } from './kv.js';
import { SimStorage } from './storage.js';

/** The kinds of fault the nemesis injects; counted in `SimStats.faults`. */
export const FAULT_KINDS = [
  'partition-isolate',
  'partition-leader',
  'partition-split',
  'partition-ring',
  'partition-bridge',
  'crash-one',
  'crash-leader',
  'crash-majority',
  'crash-all',
  'crash-after-vote',
  'crash-new-leader',
  'pause',
  'clock-skew',
  'lossy-network',
  'membership-change',
  'leader-transfer',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

const STORM_FAULTS: readonly FaultKind[] = ['crash-new-leader', 'partition-leader', 'crash-leader', 'crash-after-vote'];

export interface SimOptions {
  readonly seed: number;
  /** Initial voters; by default the seed picks 3 or 5. */
  readonly nodeCount?: 3 | 5;
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

export type ViolationKind =
  | 'election-safety'
  | 'log-matching'
  | 'leader-completeness'
  | 'state-machine-safety'
  | 'core-assertion'
  | 'linearizability'
  | 'liveness';

export interface Violation {
  readonly kind: ViolationKind;
  readonly atMs: number;
  readonly message: string;
}

export interface SimStats {
  simulatedMs: number;
  events: number;
  messagesSent: number;
  messagesDropped: number;
  faults: Record<FaultKind, number>;
  elections: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  opsOk: number;
  opsUnknown: number;
  opsRejected: number;
  /** Operations given to the linearizability checker. */
  opsChecked: number;
  /** Operations that completed in the quiet phase (liveness). */
  quietOpsOk: number;
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

const TICK_MS = 10;
const CLIENT_TIMEOUT_MS = 400;
const INBOX_MAX = 2000;
const CHECK_STEP_BUDGET = 3_000_000;

type Input =
  | { readonly kind: 'message'; readonly message: Message }
  | { readonly kind: 'tick' }
  | { readonly kind: 'client'; readonly request: ClientRequest }
  | { readonly kind: 'conf-change'; readonly change: ConfChange }
  | { readonly kind: 'transfer'; readonly target: NodeId };

interface ClientRequest {
  readonly clientId: number;
  readonly requestId: number;
  readonly input: KvInput;
}

type ClientReply = { readonly kind: 'ok'; readonly output: KvOutput } | { readonly kind: 'rejected'; readonly leaderHint: NodeId };

interface SimNode {
  readonly id: NodeId;
  status: 'up' | 'down' | 'removed';
  /** Bumped on every crash: events for an older incarnation are dropped. */
  incarnation: number;
  pausedUntilMs: number;
  /** Tick-rate multiplier (clock skew): 1 = nominal. */
  clockRate: number;
  readonly storage: SimStorage;
  raft: RaftNode;
  kv: KvStateMachine;
  inbox: Input[];
  /** Waiting for the fsync of a Ready; inputs queue meanwhile. */
  syncing: boolean;
  pendingProposals: Map<number, ClientRequest>;
  pendingReads: Map<number, ClientRequest>;
  readsWaitingApply: { request: ClientRequest; index: number }[];
  nextReadId: number;
  leaderTermsChecked: Set<number>;
  /** Reactive fault: crash right after the next fsync, before sending anything. */
  crashAfterNextSync: boolean;
  /** The initial configuration this node was created with (empty for nodes added later); durable like etcd's bootstrap entries. */
  readonly bootstrapVoters: readonly NodeId[];
}

interface Client {
  readonly id: number;
  leaderGuess: NodeId;
  current: { request: ClientRequest; callMs: number } | null;
  nextRequestId: number;
  lastSeen: Map<string, string | null>;
}

export function runSimulation(options: SimOptions): SimResult {
  return new Simulation(options).run();
}

class Simulation {
  private readonly random: SeededRandom;
  private readonly queue = new EventQueue();
  private nowMs = 0;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly clients: Client[] = [];
  private readonly history: Operation[] = [];
  private readonly violations: Violation[] = [];
  private readonly hash = createHash('sha256');
  private traceBuffer = '';
  private readonly stats: SimStats;
  private readonly nodeCount: 3 | 5;
  private readonly chaosMs: number;
  private readonly quietMs: number;
  private readonly faults: readonly FaultKind[];
  private readonly mutations: RaftMutations;
  private readonly traceSink: ((line: string) => void) | undefined;

  // Per-run configuration drawn from the seed.
  private readonly entriesPerAppendMax: number;
  private readonly inflightAppendsMax: number;
  private readonly snapshotEveryEntries: number;
  private readonly preVote: boolean;
  /**
   * A leadership storm: 3 nodes, one entry per append, and a dense schedule of the faults
   * that depose leaders (crashes of new leaders, leader partitions, crashes after votes), so
   * that several short-lived leaders leave divergent uncommitted suffixes behind.
   */
  private readonly storm: boolean;
  private readonly checkQuorum: boolean;
  private readonly keys: string[];
  private baseLoss = 0.01;
  private baseDuplication = 0.01;
  private lossy = false;
  /** Allowed links while partitioned; null when the network is whole. */
  private links: Set<string> | null = null;
  private partitionedNodes = new Set<NodeId>();
  private nextNodeId: NodeId;
  private stopped = false;
  /** Armed reactive faults: crash the next node that grants a vote / becomes leader. */
  private crashAfterVotesLeft = 0;
  private crashNewLeadersLeft = 0;
  private chaosOver = false;

  // Invariant state.
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly entryIdentity = new Map<string, string>();
  private readonly appliedAt = new Map<number, { term: number; digest: number; by: NodeId }>();
  private maxAppliedIndex = 0;
  private readonly digests = new WeakMap<Entry, number>();

  constructor(options: SimOptions) {
    this.random = new SeededRandom(options.seed);
    this.storm = this.random.chance(0.4);
    this.nodeCount = options.nodeCount ?? (this.storm || this.random.chance(0.5) ? 3 : 5);
    this.chaosMs = options.chaosMs ?? 3000;
    this.quietMs = options.quietMs ?? 1500;
    this.faults = options.faults ?? FAULT_KINDS;
    this.mutations = options.mutations ?? {};
    this.traceSink = options.trace;
    this.entriesPerAppendMax = this.storm ? 1 : this.pick([1, 1, 2, 4, 16]);
    this.preVote = this.random.chance(0.7);
    this.checkQuorum = this.random.chance(0.7);
    this.inflightAppendsMax = this.storm ? 1 : this.pick([1, 2, 4]);
    this.snapshotEveryEntries = this.pick([0, 8, 32]);
    this.keys = ['a', 'b', 'c', 'd'].slice(0, this.random.between(2, 4)) // one key with dozens of unknown-outcome writes can exhaust the checker's budget;
    this.nextNodeId = this.nodeCount + 1;
    const faults = {} as Record<FaultKind, number>;
    for (const kind of FAULT_KINDS) faults[kind] = 0;
    this.stats = {
      simulatedMs: 0,
      events: 0,
      messagesSent: 0,
      messagesDropped: 0,
      faults,
      elections: 0,
      snapshotsTaken: 0,
      snapshotsInstalled: 0,
      opsOk: 0,
      opsUnknown: 0,
      opsRejected: 0,
      opsChecked: 0,
      quietOpsOk: 0,
    };
  }

  private get setup(): string {
    return (
      `${this.storm ? 'leadership storm, ' : ''}${this.nodeCount} nodes, ${this.keys.length} keys, chaos ${this.chaosMs} ms + quiet ${this.quietMs} ms, ` +
      `entriesPerAppend ${this.entriesPerAppendMax}, inflight ${this.inflightAppendsMax}, snapshotEvery ${this.snapshotEveryEntries || 'never'}, preVote ${this.preVote}, checkQuorum ${this.checkQuorum}`
    );
  }

  run(): SimResult {
    this.trace(`setup ${this.setup}`);
    const voters = Array.from({ length: this.nodeCount }, (_, i) => i + 1);
    for (const id of voters) this.createNode(id, voters);
    const clientCount = this.storm ? this.random.between(4, 8) : this.random.between(2, 7);
    for (let id = 1; id <= clientCount; id++) {
      const client: Client = { id, leaderGuess: 0, current: null, nextRequestId: 1, lastSeen: new Map() };
      this.clients.push(client);
      this.at(this.random.between(0, 50), () => this.issue(client));
    }
    this.at(this.random.between(100, 400), () => this.nemesis());
    this.at(this.chaosMs, () => this.healAll());
    const endMs = this.chaosMs + this.quietMs;
    this.at(endMs, () => (this.stopped = true));

    while (!this.stopped && this.violations.length === 0) {
      const event = this.queue.pop();
      if (event === undefined) break;
      this.nowMs = event.timeMs;
      this.stats.events++;
      try {
        event.run();
      } catch (error) {
        if (!(error instanceof AssertionError)) throw error;
        this.violate('core-assertion', error.message);
        break;
      }
      this.checkLeaders();
    }
    this.stats.simulatedMs = this.nowMs;

    // Operations still in flight have an unknown outcome.
    for (const client of this.clients) {
      if (client.current !== null) this.recordTimeout(client);
    }
    let check: CheckResult | null = null;
    if (this.violations.length === 0) {
      if (this.stats.quietOpsOk === 0) this.violate('liveness', 'no client operation completed after every fault healed');
      this.stats.opsChecked = this.history.length;
      check = checkKvLinearizability(this.history, { stepBudget: CHECK_STEP_BUDGET });
      this.trace(`check ${check.verdict} steps=${check.steps}`);
      if (check.verdict === 'not-linearizable') {
        this.violate('linearizability', `key ${JSON.stringify(check.key)}: ${check.explanation}\n${formatOperations(check.operations)}`);
      }
    }
    return {
      seed: this.random.seed,
      nodeCount: this.nodeCount,
      setup: this.setup,
      violations: this.violations,
      check,
      stats: this.stats,
      traceHash: this.hash.update(this.traceBuffer).digest('hex'),
    };
  }

  // ------------------------------------------------------------------ plumbing

  private at(delayMs: number, run: () => void): void {
    this.queue.push(this.nowMs + delayMs, run);
  }

  private trace(line: string): void {
    const full = `${this.nowMs.toFixed(3)} ${line}`;
    // Hash in chunks: one update per line costs more than the hashing itself.
    this.traceBuffer += full + '\n';
    if (this.traceBuffer.length > 65536) {
      this.hash.update(this.traceBuffer);
      this.traceBuffer = '';
    }
    this.traceSink?.(full);
  }

  private violate(kind: ViolationKind, message: string): void {
    this.trace(`VIOLATION ${kind}: ${message}`);
    this.violations.push({ kind, atMs: this.nowMs, message });
  }

  private pick<T>(values: readonly T[]): T {
    return values[this.random.int(values.length)]!;
  }

  // ------------------------------------------------------------------ nodes

  private createNode(id: NodeId, bootstrapVoters: readonly NodeId[]): SimNode {
    const storage = new SimStorage();
    const node: SimNode = {
      id,
      status: 'up',
      incarnation: 0,
      pausedUntilMs: 0,
      clockRate: 0.99 + this.random.next() * 0.02,
      storage,
      raft: undefined as unknown as RaftNode,
      kv: new KvStateMachine(),
      inbox: [],
      syncing: false,
      pendingProposals: new Map(),
      pendingReads: new Map(),
      readsWaitingApply: [],
      nextReadId: 1,
      leaderTermsChecked: new Set(),
      crashAfterNextSync: false,
      bootstrapVoters,
    };
    this.nodes.set(id, node);
    this.boot(node);
    return node;
  }

  /** (Re)starts a node from its durable storage. */
  private boot(node: SimNode): void {
    const durable = node.storage.load();
    node.raft = new RaftNode(
      {
        id: node.id,
        ...DEFAULT_RAFT_TIMING,
        entriesPerAppendMax: this.entriesPerAppendMax,
        inflightAppendsMax: this.inflightAppendsMax,
        preVote: this.preVote,
        checkQuorum: this.checkQuorum,
        random: this.random.fork(),
        mutations: this.mutations,
      },
      { hardState: durable.hardState, snapshot: durable.snapshot, entries: durable.entries, bootstrapConf: { voters: node.bootstrapVoters, learners: [] } },
    );
    node.kv = KvStateMachine.fromSnapshot(durable.snapshot?.data ?? null);
    node.status = 'up';
    node.syncing = false;
    node.inbox = [];
    node.pendingProposals.clear();
    node.pendingReads.clear();
    node.readsWaitingApply = [];
    node.leaderTermsChecked.clear();
    this.trace(`boot n${node.id} inc=${node.incarnation} term=${durable.hardState.term} vote=${durable.hardState.vote} commit=${durable.hardState.commit} snap=${durable.snapshot?.index ?? 0} entries=${durable.entries.length}`);
    this.scheduleTick(node, node.incarnation);
  }

  private scheduleTick(node: SimNode, incarnation: number): void {
    this.at(TICK_MS / node.clockRate, () => {
      if (node.status !== 'up' || node.incarnation !== incarnation) return;
      // A paused process's timer fires late, once, when it resumes.
      if (this.nowMs >= node.pausedUntilMs && !node.inbox.some((input) => input.kind === 'tick')) node.inbox.push({ kind: 'tick' });
      this.process(node);
      this.scheduleTick(node, incarnation);
    });
  }

  private deliver(node: SimNode, input: Input): void {
    if (node.status !== 'up') return;
    if (node.inbox.length >= INBOX_MAX) {
      this.stats.messagesDropped++;
      return;
    }
    node.inbox.push(input);
    this.process(node);
  }

  /** Feeds queued inputs to the core, then starts a Ready cycle. No-op while paused, down or syncing. */
  private process(node: SimNode): void {
    if (node.status !== 'up' || node.syncing || this.nowMs < node.pausedUntilMs) return;
    const inputs = node.inbox;
    node.inbox = [];
    for (const input of inputs) this.handleInput(node, input);
    if (!node.raft.hasReady()) return;
    const ready = node.raft.ready();
    this.persist(node, ready);
    node.syncing = true;
    const incarnation = node.incarnation;
    this.at(0.2 + this.random.next() * 1.5, () => {
      if (node.status !== 'up' || node.incarnation !== incarnation) return;
      this.completeReady(node, ready);
      node.syncing = false;
      this.process(node);
    });
  }

  private handleInput(node: SimNode, input: Input): void {
    const raft = node.raft;
    switch (input.kind) {
      case 'tick':
        raft.tick();
        return;
      case 'message':
        raft.step(input.message);
        return;
      case 'client': {
        const request = input.request;
        if (request.input.kind === 'get') {
          const readId = node.nextReadId++;
          node.pendingReads.set(readId, request);
          raft.readIndex(readId);
          return;
        }
        const command: KvCommand = { clientId: request.clientId, requestId: request.requestId, input: request.input };
        const result = raft.propose(encodeCommand(command));
        if (result.ok) node.pendingProposals.set(result.index, request);
        else this.reply(node, request, { kind: 'rejected', leaderHint: result.error.leaderHint });
        return;
      }
      case 'conf-change': {
        const result = raft.proposeConfChange(input.change);
        this.trace(`n${node.id} conf-change ${input.change.type} n${input.change.nodeId}: ${result.ok ? `index ${result.index}` : result.error.code}`);
        return;
      }
      case 'transfer': {
        const error = raft.transferLeadership(input.target);
        this.trace(`n${node.id} transfer to n${input.target}: ${error === null ? 'started' : error.code}`);
        return;
      }
    }
  }

  /** Step 1 of the Ready contract: write to storage (volatile until the sync event). */
  private persist(node: SimNode, ready: Ready): void {
    if (ready.snapshot !== null) node.storage.writeSnapshot(ready.snapshot);
    if (ready.entries.length > 0) {
      this.checkLogMatching(node, ready.entries);
      node.storage.writeEntries(ready.entries);
    }
    if (ready.hardState !== null) node.storage.writeHardState(ready.hardState);
    this.trace(
      `n${node.id} ready ${ready.softState.role} t${ready.softState.term} hs=${ready.hardState ? `${ready.hardState.term}/${ready.hardState.vote}/${ready.hardState.commit}` : '-'} ` +
        `snap=${ready.snapshot?.index ?? '-'} ents=${ready.entries.length ? `${ready.entries[0]!.index}..${ready.entries[ready.entries.length - 1]!.index}` : '-'} ` +
        `msgs=${ready.messages.length} apply=${ready.committedEntries.length} reads=${ready.readStates.length}`,
    );
  }

  /** Steps 2-4: durable now, so send, apply, answer reads, advance; then maybe compact. */
  private completeReady(node: SimNode, ready: Ready): void {
    node.storage.sync();
    if (node.crashAfterNextSync) {
      this.trace(`fault crash-new-leader n${node.id} (after fsync, before sending)`);
      this.stats.faults['crash-new-leader']++;
      this.crash(node);
      return;
    }
    let grantedVote = false;
    for (const message of ready.messages) {
      this.send(message);
      if (message.type === 'vote-response' && message.granted) grantedVote = true;
    }
    if (grantedVote && this.crashAfterVotesLeft > 0 && !this.chaosOver) {
      // Reactive fault: the vote is on its way; the voter dies right after (its vote must have been durable).
      this.crashAfterVotesLeft--;
      this.trace(`fault crash-after-vote n${node.id}`);
      this.stats.faults['crash-after-vote']++;
      this.crash(node);
      return;
    }
    if (ready.snapshot !== null) {
      node.kv = KvStateMachine.fromSnapshot(ready.snapshot.data);
      this.stats.snapshotsInstalled++;
      // Proposals covered by the snapshot have an unknown fate here; their clients will time out.
      for (const index of [...node.pendingProposals.keys()]) if (index <= ready.snapshot.index) node.pendingProposals.delete(index);
    }
    for (const entry of ready.committedEntries) this.apply(node, entry);
    for (const state of ready.readStates) {
      const request = node.pendingReads.get(state.requestId);
      if (request === undefined) continue;
      node.pendingReads.delete(state.requestId);
      if (state.ok) node.readsWaitingApply.push({ request, index: state.index });
      else this.reply(node, request, { kind: 'rejected', leaderHint: state.error.leaderHint });
    }
    node.raft.advance(ready);
    const applied = node.raft.appliedIndex;
    if (node.readsWaitingApply.length > 0) {
      const stillWaiting: typeof node.readsWaitingApply = [];
      for (const waiting of node.readsWaitingApply) {
        if (waiting.index > applied) {
          stillWaiting.push(waiting);
          continue;
        }
        const input = waiting.request.input as Extract<KvInput, { kind: 'get' }>;
        this.reply(node, waiting.request, { kind: 'ok', output: { kind: 'get', value: node.kv.get(input.key) } });
      }
      node.readsWaitingApply = stillWaiting;
    }
    if (this.snapshotEveryEntries > 0 && applied - node.raft.snapshotIndex >= this.snapshotEveryEntries) {
      const snapshot = node.raft.compact(applied, node.kv.snapshot());
      node.storage.writeCompaction(snapshot);
      this.stats.snapshotsTaken++;
      this.trace(`n${node.id} compact to ${applied}`);
    }
  }

  private apply(node: SimNode, entry: Entry): void {
    this.checkStateMachineSafety(node, entry);
    const pending = node.pendingProposals.get(entry.index);
    node.pendingProposals.delete(entry.index);
    if (entry.kind === 'conf-change') {
      if (entry.change.type === 'remove-node') {
        const removed = this.nodes.get(entry.change.nodeId);
        if (removed !== undefined && removed.status !== 'removed') {
          this.trace(`n${removed.id} removed from the cluster (applied at n${node.id})`);
          removed.status = 'removed';
          removed.incarnation++;
        }
      }
      return;
    }
    const command = decodeCommand(entry.data);
    let output: KvOutput | null = null;
    if (command !== null) output = node.kv.apply(command.input);
    if (pending === undefined) return;
    if (command !== null && output !== null && command.clientId === pending.clientId && command.requestId === pending.requestId) {
      this.reply(node, pending, { kind: 'ok', output });
    } else {
      // Another entry won this index: our proposal can never commit (an index holds one committed entry).
      this.reply(node, pending, { kind: 'rejected', leaderHint: node.raft.leaderId });
    }
  }

  // ------------------------------------------------------------------ network

  private canTalk(a: NodeId, b: NodeId): boolean {
    if (this.links === null || !this.partitionedNodes.has(a) || !this.partitionedNodes.has(b)) return true;
    return this.links.has(`${a}-${b}`);
  }

  private send(message: Message): void {
    this.stats.messagesSent++;
    const loss = this.lossy ? 0.2 : this.baseLoss;
    const duplication = this.lossy ? 0.15 : this.baseDuplication;
    if (!this.canTalk(message.from, message.to) || this.random.chance(loss)) {
      this.stats.messagesDropped++;
      return;
    }
    const copies = this.random.chance(duplication) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      // Mostly fast, sometimes slow: the spread reorders messages.
      let delayMs = 0.5 + this.random.next() * 3;
      if (this.random.chance(this.lossy ? 0.3 : 0.05)) delayMs += this.random.next() * 60;
      if (this.random.chance(0.02)) delayMs += 50 + this.random.next() * 250; // stuck in a queue somewhere
      
      this.at(delayMs, () => {
        const node = this.nodes.get(message.to);
        if (node === undefined || !this.canTalk(message.from, message.to)) {
          this.stats.messagesDropped++;
          return;
        }
        this.trace(`deliver ${message.type} n${message.from}->n${message.to} t${message.term}`);
        this.deliver(node, { kind: 'message', message });
      });
    }
  }

  // ------------------------------------------------------------------ clients

  private issue(client: Client): void {
    if (this.stopped) return;
    const key = this.pick(this.keys);
    const value = `${client.id}.${client.nextRequestId}`;
    const roll = this.random.next();
    let input: KvInput;
    if (roll < 0.4) input = { kind: 'get', key };
    else if (roll < 0.7) input = { kind: 'put', key, value };
    else if (roll < 0.9) input = { kind: 'cas', key, expected: client.lastSeen.get(key) ?? null, value };
    else input = { kind: 'delete', key };
    const request: ClientRequest = { clientId: client.id, requestId: client.nextRequestId++, input };
    client.current = { request, callMs: this.nowMs };
    const members = [...this.nodes.values()].filter((node) => node.status !== 'removed').map((node) => node.id);
    const target = client.leaderGuess !== 0 && members.includes(client.leaderGuess) ? client.leaderGuess : this.pick(members);
    this.trace(`client c${client.id} call #${request.requestId} ${JSON.stringify(input)} -> n${target}`);
    this.at(0.5 + this.random.next() * 2, () => {
      const node = this.nodes.get(target)!;
      this.deliver(node, { kind: 'client', request });
    });
    this.at(CLIENT_TIMEOUT_MS, () => {
      if (client.current?.request !== request) return;
      this.recordTimeout(client);
      client.leaderGuess = 0;
      this.at(this.random.between(1, 20), () => this.issue(client));
    });
  }

  private recordTimeout(client: Client): void {
    const current = client.current!;
    client.current = null;
    this.trace(`client c${client.id} timeout #${current.request.requestId}`);
    // A read nobody saw constrains nothing; a write may still take effect later.
    if (current.request.input.kind !== 'get') {
      this.history.push({ clientId: client.id, input: current.request.input, call: current.callMs, return: undefined, output: undefined });
      this.stats.opsUnknown++;
    }
  }

  private reply(node: SimNode, request: ClientRequest, reply: ClientReply): void {
    const client = this.clients[request.clientId - 1]!;
    const from = node.id;
    this.at(0.5 + this.random.next() * 2, () => {
      const current = client.current;
      if (current === null || current.request !== request) return; // the client gave up on it already
      client.current = null;
      this.trace(`client c${client.id} reply #${request.requestId} from n${from} ${JSON.stringify(reply)}`);
      if (reply.kind === 'ok') {
        this.history.push({ clientId: client.id, input: request.input, call: current.callMs, return: this.nowMs, output: reply.output });
        this.stats.opsOk++;
        if (this.chaosOver) this.stats.quietOpsOk++;
        client.leaderGuess = from;
        if (reply.output.kind === 'get') client.lastSeen.set(request.input.key, reply.output.value);
        this.at(this.random.next() * 10, () => this.issue(client));
      } else {
        // Definitely not applied (not leader, superseded, read aborted): it leaves no trace in the history.
        this.stats.opsRejected++;
        client.leaderGuess = reply.leaderHint;
        this.at(this.random.between(1, 15), () => this.issue(client));
      }
    });
  }

  // ------------------------------------------------------------------ nemesis

  private nemesis(): void {
    if (this.nowMs >= this.chaosMs) return;
    const stormKinds = this.faults.filter((kind) => STORM_FAULTS.includes(kind));
    const kind = this.storm && stormKinds.length > 0 && this.random.chance(0.7) ? this.pick(stormKinds) : this.pick(this.faults);
    if (this.inject(kind)) {
      this.stats.faults[kind]++;
    }
    this.at(this.storm ? this.random.between(10, 120) : this.random.between(30, 300), () => this.nemesis());
  }

  private liveNodes(): SimNode[] {
    return [...this.nodes.values()].filter((node) => node.status === 'up');
  }

  private currentLeader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const node of this.liveNodes()) {
      if (node.raft.role === 'leader' && (best === undefined || node.raft.currentTerm > best.raft.currentTerm)) best = node;
    }
    return best;
  }

  /**
   * Applies one fault; returns true when it was injected now, false when it does not apply
   * right now (e.g. no leader to transfer from) or was only armed (reactive faults count
   * themselves when they fire).
   */
  private inject(kind: FaultKind): boolean {
    const members = [...this.nodes.values()].filter((node) => node.status !== 'removed').map((node) => node.id);
    switch (kind) {
      case 'partition-isolate':
      case 'partition-leader':
      case 'partition-split':
      case 'partition-ring':
      case 'partition-bridge': {
        if (this.links !== null) return false;
        const order = this.shuffle(members);
        const leader = this.currentLeader();
        if (kind === 'partition-leader') {
          if (leader === undefined) return false;
          order.splice(order.indexOf(leader.id), 1);
          order.unshift(leader.id); // the isolated one, and on the minority side of splits
        }
        const links = new Set<string>();
        const connect = (group: readonly NodeId[]): void => {
          for (const a of group) for (const b of group) links.add(`${a}-${b}`);
        };
        if (kind === 'partition-isolate' || kind === 'partition-leader') {
          connect(order.slice(0, 1));
          connect(order.slice(1));
        } else if (kind === 'partition-split') {
          const minority = Math.floor(order.length / 2);
          connect(order.slice(0, minority));
          connect(order.slice(minority));
        } else if (kind === 'partition-ring') {
          // Every node sees its two ring neighbours: each sees a majority (of 5), no two see the same one.
          for (let i = 0; i < order.length; i++) {
            const next = order[(i + 1) % order.length]!;
            connect([order[i]!, next]);
          }
        } else {
          // Bridge: {A,B,C} and {C,D,E}; C alone talks to both sides.
          const middle = Math.floor(order.length / 2);
          connect(order.slice(0, middle + 1));
          connect(order.slice(middle));
        }
        this.links = links;
        this.partitionedNodes = new Set(members);
        this.trace(`fault ${kind} order=${order.join(',')}`);
        let healMs = this.random.between(200, 1500);
        if (kind === 'partition-leader' && this.random.chance(0.5)) {
          // Composite: the cut-off leader keeps taking writes while the leaders elected behind it
          // die young; after the heal, several divergent uncommitted suffixes compete (Figure 8).
          this.crashNewLeadersLeft = Math.max(this.crashNewLeadersLeft, this.random.between(2, 6));
          healMs = this.random.between(100, 500);
          this.trace('fault partition-leader with leader churn');
        }
        this.at(healMs, () => {
          this.links = null;
          this.trace('heal partition');
        });
        return true;
      }
      case 'crash-after-vote':
        // The next few voters die right after granting (their votes must have been durable).
        if (this.crashAfterVotesLeft > 0) return false;
        this.crashAfterVotesLeft = this.random.between(1, 4);
        return false; // armed; counted when it fires
      case 'crash-new-leader':
        // Leader churn: the next few leaders die young, leaving short divergent log suffixes (Figure 8 material).
        if (this.crashNewLeadersLeft > 0) return false;
        this.crashNewLeadersLeft = this.random.between(2, 6);
        return false; // armed; counted when it fires
      case 'crash-leader': {
        const leader = this.currentLeader();
        if (leader === undefined) return false;
        this.crash(leader);
        return true;
      }
      case 'crash-one':
      case 'crash-majority':
      case 'crash-all': {
        const up = this.liveNodes();
        if (up.length === 0) return false;
        const count = kind === 'crash-one' ? 1 : kind === 'crash-all' ? up.length : Math.floor(up.length / 2) + 1;
        // A power cut brings several nodes back at the same instant half the time: their election
        // timers then start together, which makes split votes (several candidates per term) likely.
        const together = count > 1 && this.random.chance(0.5) ? 1 + this.random.next() * 200 : undefined;
        for (const node of this.shuffle(up).slice(0, count)) this.crash(node, together);
        return true;
      }
      case 'pause': {
        const up = this.liveNodes();
        if (up.length === 0) return false;
        // Prefer the leader: pausing it is what tests stale leadership.
        const node = this.currentLeader() !== undefined && this.random.chance(0.7) ? this.currentLeader()! : this.pick(up);
        const durationMs = DEFAULT_RAFT_TIMING.electionTimeoutTicks * TICK_MS * (1.5 + this.random.next() * 4);
        node.pausedUntilMs = this.nowMs + durationMs;
        this.trace(`fault pause n${node.id} for ${durationMs.toFixed(1)} ms`);
        const incarnation = node.incarnation;
        this.at(durationMs, () => {
          if (node.incarnation === incarnation) this.process(node);
        });
        return true;
      }
      case 'clock-skew': {
        const up = this.liveNodes();
        if (up.length === 0) return false;
        const node = this.pick(up);
        const previous = node.clockRate;
        node.clockRate = this.random.chance(0.5) ? 0.3 + this.random.next() * 0.4 : 1.5 + this.random.next() * 1.5;
        this.trace(`fault clock-skew n${node.id} rate ${node.clockRate.toFixed(3)}`);
        this.at(this.random.between(300, 1500), () => (node.clockRate = previous));
        return true;
      }
      case 'lossy-network': {
        if (this.lossy) return false;
        this.lossy = true;
        this.trace('fault lossy-network');
        this.at(this.random.between(200, 1000), () => (this.lossy = false));
        return true;
      }
      case 'membership-change':
        return this.changeMembership();
      case 'leader-transfer': {
        const leader = this.currentLeader();
        if (leader === undefined) return false;
        const others = leader.raft.confState.voters.filter((id) => id !== leader.id);
        if (others.length === 0) return false;
        this.deliver(leader, { kind: 'transfer', target: this.pick(others) });
        return true;
      }
    }
  }

  /** One step of membership churn: add a learner, promote it once caught up, or remove a voter (keeping 3..5 voters). */
  private changeMembership(): boolean {
    const leader = this.currentLeader();
    if (leader === undefined) return false;
    const conf = leader.raft.confState;
    let change: ConfChange;
    if (conf.learners.length > 0) {
      change = { type: 'add-voter', nodeId: conf.learners[0]! };
    } else if (conf.voters.length < 5 && (conf.voters.length < 4 || this.random.chance(0.5)) && this.nextNodeId <= 9) {
      const id = this.nextNodeId++;
      this.createNode(id, []);
      change = { type: 'add-learner', nodeId: id };
    } else if (conf.voters.length > 3) {
      const candidates = conf.voters.filter((id) => id !== leader.id);
      change = { type: 'remove-node', nodeId: this.pick(candidates) };
    } else {
      return false;
    }
    this.deliver(leader, { kind: 'conf-change', change });
    return true;
  }

  private crash(node: SimNode, downMs?: number): void {
    node.status = 'down';
    node.crashAfterNextSync = false;
    node.incarnation++;
    node.storage.crash(this.random);
    node.inbox = [];
    node.syncing = false;
    node.pausedUntilMs = 0;
    this.trace(`fault crash n${node.id}`);
    const incarnation = node.incarnation;
    // Half the restarts are immediate (kill -9 and a supervisor), half after an outage.
    downMs ??= this.random.chance(0.5) ? 1 + this.random.next() * 30 : this.random.between(50, 600);
    this.at(downMs, () => {
      if (node.status === 'down' && node.incarnation === incarnation) this.boot(node);
    });
  }

  private healAll(): void {
    this.chaosOver = true;
    this.links = null;
    this.lossy = false;
    for (const node of this.nodes.values()) {
      node.clockRate = 1;
      if (node.status === 'down') this.boot(node);
      if (node.pausedUntilMs > this.nowMs) {
        node.pausedUntilMs = 0;
        this.process(node);
      }
    }
    this.trace('heal all');
  }

  private shuffle<T>(values: readonly T[]): T[] {
    const copy = [...values];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = this.random.int(i + 1);
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy;
  }

  // ------------------------------------------------------------------ invariants

  private digest(entry: Entry): number {
    let digest = this.digests.get(entry);
    if (digest !== undefined) return digest;
    const bytes = entry.kind === 'normal' ? entry.data : new TextEncoder().encode(JSON.stringify([entry.change, entry.confState]));
    let h = entry.kind === 'normal' ? 0x811c9dc5 : 0x01000193;
    for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193) >>> 0;
    digest = h;
    this.digests.set(entry, digest);
    return digest;
  }

  /** Log matching: an (index, term) pair always names the same entry, preceded by the same term. */
  private checkLogMatching(node: SimNode, entries: readonly Entry[]): void {
    for (const entry of entries) {
      const previousTerm = node.raft.termAt(entry.index - 1);
      const key = `${entry.index}:${entry.term}`;
      const identity = `${this.digest(entry)}`;
      const known = this.entryIdentity.get(key);
      const knownPrevious = this.entryIdentity.get(key + ':prev');
      if (known === undefined) {
        this.entryIdentity.set(key, identity);
      } else if (known !== identity) {
        this.violate('log-matching', `n${node.id} stores a different entry at index ${entry.index} term ${entry.term}`);
        return;
      }
      if (previousTerm !== undefined) {
        if (knownPrevious === undefined) this.entryIdentity.set(key + ':prev', `${previousTerm}`);
        else if (knownPrevious !== `${previousTerm}`) {
          this.violate('log-matching', `n${node.id} has entry ${entry.index}/t${entry.term} after term ${previousTerm}, another node after term ${knownPrevious}`);
          return;
        }
      }
    }
  }

  private checkStateMachineSafety(node: SimNode, entry: Entry): void {
    const digest = this.digest(entry);
    const known = this.appliedAt.get(entry.index);
    if (known === undefined) {
      this.appliedAt.set(entry.index, { term: entry.term, digest, by: node.id });
      this.maxAppliedIndex = Math.max(this.maxAppliedIndex, entry.index);
    } else if (known.term !== entry.term || known.digest !== digest) {
      this.violate('state-machine-safety', `n${node.id} applied ${entry.index}/t${entry.term} but n${known.by} applied ${entry.index}/t${known.term} there`);
    }
  }

  /** After every step: election safety and leader completeness for every node that is leader. */
  private checkLeaders(): void {
    for (const node of this.nodes.values()) {
      if (node.status !== 'up' || node.raft.role !== 'leader') continue;
      const term = node.raft.currentTerm;
      if (node.leaderTermsChecked.has(term)) continue;
      node.leaderTermsChecked.add(term);
      this.stats.elections++;
      this.trace(`n${node.id} is leader of term ${term}`);
      const other = this.leaderOfTerm.get(term);
      if (other !== undefined && other !== node.id) {
        this.violate('election-safety', `n${node.id} and n${other} are both leaders of term ${term}`);
        return;
      }
      this.leaderOfTerm.set(term, node.id);
      if (this.crashNewLeadersLeft > 0 && !this.chaosOver) {
        // Reactive fault: the new leader dies while it is still bringing followers up to date.
        this.crashNewLeadersLeft--;
        const incarnation = node.incarnation;
        // Sometimes after its first append is durable but before it is sent (the leader's
        // entries then exist on its disk alone), sometimes mid-catch-up of its followers.
        const roll = this.random.int(3);
        if (roll === 0) {
          node.crashAfterNextSync = true;
        } else {
          const delayMs = roll === 1 ? this.random.next() * 5 : 5 + this.random.next() * 35;
          this.at(delayMs, () => {
            if (node.status === 'up' && node.incarnation === incarnation) {
              this.trace(`fault crash-new-leader n${node.id}`);
              this.stats.faults['crash-new-leader']++;
              this.crash(node);
            }
          });
        }
      }
      for (let index = node.raft.snapshotIndex + 1; index <= this.maxAppliedIndex; index++) {
        const applied = this.appliedAt.get(index);
        if (applied === undefined) continue;
        const have = node.raft.termAt(index);
        if (have !== applied.term) {
          this.violate('leader-completeness', `new leader n${node.id} (term ${term}) has ${have === undefined ? 'no entry' : `term ${have}`} at ${index}, where n${applied.by} applied term ${applied.term}`);
          return;
        }
      }
    }
  }
}
