/**
 * Unit tests of the Raft core through a tiny synchronous harness that does
 * what the driver does, without its callbacks: each node persists every Ready
 * to a `MemLogStore` (synced at once), messages go through a queue the test
 * can filter, committed entries apply to a list, and a leader's `snapshot`
 * message is sent with the leader's image (its applied list), staged at the
 * receiver before the message is stepped. Every test asserts the one outcome
 * the deterministic core produces.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../util/random.js';
import { MemLogStore } from '../../testkit/sim/mem-log-store.js';
import { DEFAULT_RAFT_TIMING, RaftNode, type RaftConfig } from './raft.js';
import type { ConfChange, ConfState, Message, NodeId, RaftMutations, ReadState, Ready } from './types.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The harness's state machine: the applied payloads, its applied index and configuration. Durable (never lost). */
interface ListMachine {
  applied: string[];
  appliedIndex: number;
  conf: ConfState;
}

interface HarnessNode {
  raft: RaftNode;
  store: MemLogStore;
  sm: ListMachine;
  /** The image staged by the last snapshot received. */
  staged: ListMachine | null;
  readStates: ReadState[];
}

function change(type: ConfChange['type'], nodeId: NodeId): ConfChange {
  return { type, nodeId, context: encoder.encode(`addr-${nodeId}`) };
}

class Harness {
  readonly nodes = new Map<NodeId, HarnessNode>();
  readonly queue: Message[] = [];
  /** Returns false to drop a message. */
  filter: (m: Message) => boolean = () => true;
  readonly random = new SeededRandom(42);
  sent: Message[] = [];

  constructor(
    voters: NodeId[],
    private readonly overrides: Partial<RaftConfig> = {},
  ) {
    for (const id of voters) this.add(id, { voters, learners: [] });
  }

  add(id: NodeId, bootstrap: ConfState): HarnessNode {
    const node: HarnessNode = { raft: undefined as unknown as RaftNode, store: new MemLogStore(bootstrap), sm: { applied: [], appliedIndex: 0, conf: bootstrap }, staged: null, readStates: [] };
    this.nodes.set(id, node);
    this.boot(id);
    return node;
  }

  /** (Re)starts a node from its store and its state machine's applied index. */
  boot(id: NodeId): void {
    const node = this.nodes.get(id)!;
    node.raft = new RaftNode(this.config(id), { storage: node.store, applied: node.sm.appliedIndex });
  }

  config(id: NodeId): RaftConfig {
    return { id, ...DEFAULT_RAFT_TIMING, random: this.random.fork(), ...this.overrides };
  }

  node(id: NodeId): HarnessNode {
    return this.nodes.get(id)!;
  }

  /** Handles one Ready of `node` in the documented order; returns it. */
  handleReady(node: HarnessNode): Ready {
    const ready = node.raft.ready();
    node.store.save({ snapshot: ready.snapshot, entries: ready.entries, hardState: ready.hardState }, (error) => assert.equal(error, null));
    for (const m of ready.messages) {
      const sent = m.type === 'snapshot' ? this.withImage(m) : m;
      this.sent.push(sent);
      if (this.filter(sent)) this.queue.push(sent);
    }
    if (ready.snapshot !== null) {
      assert.equal(node.staged?.appliedIndex, ready.snapshot.index, `the staged image is the one the core installs`);
      node.sm = { ...node.staged!, applied: [...node.staged!.applied] };
    }
    for (const entry of ready.committedEntries) {
      if (entry.kind === 'normal' && entry.data.length > 0) node.sm.applied.push(decoder.decode(entry.data));
      if (entry.kind === 'conf-change') node.sm.conf = entry.confState;
      node.sm.appliedIndex = entry.index;
    }
    node.readStates.push(...ready.readStates);
    node.raft.advance(ready);
    // The store above wrote synchronously: a leader's asynchronous append is durable already.
    const last = ready.entries[ready.entries.length - 1];
    if (ready.persistAsync && last !== undefined) node.raft.persisted(last.index, last.term);
    return ready;
  }

  /** The driver's job: a snapshot message carries the leader's current image and its meta. */
  private withImage(m: Extract<Message, { type: 'snapshot' }>): Message {
    const sm = this.node(m.from).sm;
    const sent: Message = { ...m, snapshot: { index: sm.appliedIndex, term: this.node(m.from).raft.termAt(sm.appliedIndex)!, confState: sm.conf } };
    this.images.set(sent, { ...sm, applied: [...sm.applied] });
    return sent;
  }
  private readonly images = new Map<Message, ListMachine>();

  private deliver(m: Message): void {
    const target = this.nodes.get(m.to);
    if (target === undefined) return;
    if (m.type === 'snapshot') {
      target.staged = this.images.get(m) ?? null; // staged FIRST, then the message is stepped
      this.images.delete(m);
    }
    target.raft.step(m);
  }

  /** Handles every node's Ready (persist, send, apply, advance) and delivers messages until quiet. */
  settle(stepsMax = 10_000): void {
    for (let step = 0; step < stepsMax; step++) {
      let progressed = false;
      for (const [, node] of this.nodes) {
        if (!node.raft.hasReady()) continue;
        progressed = true;
        this.handleReady(node);
      }
      const m = this.queue.shift();
      if (m !== undefined) {
        progressed = true;
        this.deliver(m);
      }
      if (!progressed) return;
    }
    assert.fail('harness did not settle');
  }

  tick(ids: NodeId[] = [...this.nodes.keys()], times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const id of ids) this.node(id).raft.tick();
      this.settle();
    }
  }

  /** Ticks node `id` until it campaigns, then settles: it becomes leader if it can. */
  elect(id: NodeId): void {
    for (let i = 0; i < 100 && this.node(id).raft.role !== 'leader'; i++) this.tick([id]);
    assert.equal(this.node(id).raft.role, 'leader', `node ${id} did not become leader`);
  }

  propose(id: NodeId, text: string): void {
    const result = this.node(id).raft.propose(encoder.encode(text));
    assert.ok(result.ok, `proposal ${text} refused`);
    this.settle();
  }

  /** Compacts node `id`'s log up to its applied index (the driver's job). */
  compact(id: NodeId): number {
    const node = this.node(id);
    const meta = node.raft.compact(node.sm.appliedIndex);
    node.store.compact(meta, (error) => assert.equal(error, null));
    return meta.index;
  }

  leaders(): NodeId[] {
    return [...this.nodes.entries()].filter(([, node]) => node.raft.role === 'leader').map(([id]) => id);
  }
}

test('a three-node cluster elects one leader and replicates proposals to every node', () => {
  const h = new Harness([1, 2, 3]);
  h.elect(1);
  assert.deepEqual(h.leaders(), [1]);
  for (let i = 0; i < 10; i++) h.propose(1, `v${i}`);
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks); // a heartbeat carries the final commit index
  for (const id of [1, 2, 3]) assert.deepEqual(h.node(id).sm.applied, Array.from({ length: 10 }, (_, i) => `v${i}`), `node ${id}`);
});

test('proposals without a leader are rejected with a typed error, never dropped silently', () => {
  const h = new Harness([1, 2, 3]);
  const none = h.node(2).raft.propose(encoder.encode('x'));
  assert.equal(none.ok, false);
  if (!none.ok) {
    assert.equal(none.error.code, 'IMPULSE_ERR_RAFT_NOT_LEADER');
    assert.equal(none.error.leaderHint, 0);
  }
  h.elect(1);
  const follower = h.node(2).raft.propose(encoder.encode('x'));
  assert.equal(follower.ok, false);
  if (!follower.ok) assert.equal(follower.error.leaderHint, 1, 'a follower names the leader to retry at');
});

test('the Ready that carries a granted vote also carries the hard state recording it (persist before send)', () => {
  const h = new Harness([1, 2, 3]);
  h.elect(1);
  const granted = h.sent.filter((m) => m.type === 'vote-response' && m.granted);
  assert.equal(granted.length, 2, 'both followers granted');
  for (const m of granted) assert.equal(h.node(m.from).store.hardState().vote, 1, 'the vote was persisted by the time it was sent');
  // Restarting a voter keeps its vote: it cannot vote for another candidate in the same term.
  const voter = granted[0]!.from;
  const term = h.node(1).raft.currentTerm;
  h.boot(voter);
  h.node(voter).raft.step({ type: 'vote', from: 3 === voter ? 2 : 3, to: voter, term, lastLogIndex: 100, lastLogTerm: term, transfer: false });
  const ready = h.node(voter).raft.ready();
  assert.ok(ready.messages.some((m) => m.type === 'vote-response' && !m.granted));
  h.node(voter).raft.advance(ready);
});

test('the voteNotPersisted mutant leaves the vote out of the hard state', () => {
  const h = new Harness([1, 2, 3], { mutations: { voteNotPersisted: true } satisfies RaftMutations });
  h.elect(1);
  const voter = h.sent.find((m) => m.type === 'vote-response' && m.granted)!.from;
  assert.equal(h.node(voter).store.hardState().vote, 0);
});

test('an isolated node with pre-vote does not inflate its term; with check-quorum the isolated leader steps down', () => {
  const h = new Harness([1, 2, 3]);
  h.elect(1);
  const term = h.node(1).raft.currentTerm;
  h.filter = (m) => m.from !== 3 && m.to !== 3;
  h.tick([3], DEFAULT_RAFT_TIMING.electionTimeoutTicks * 6);
  assert.equal(h.node(3).raft.currentTerm, term, 'pre-vote kept the term');
  h.filter = (m) => m.from !== 1 && m.to !== 1;
  h.tick([1], DEFAULT_RAFT_TIMING.electionTimeoutTicks * 2 + 1);
  assert.equal(h.node(1).raft.role, 'follower', 'the leader cut off from the majority stepped down');
});

test('fast back-off: a follower with a long conflicting suffix is repaired in one rejection', () => {
  const h = new Harness([1, 2, 3], { entriesPerAppendMax: 100 });
  h.elect(1);
  h.propose(1, 'base');
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  // Node 1 is cut off and appends 40 entries nobody else gets (uncommitted, of its term).
  h.filter = (m) => m.to !== 1 && m.from !== 1;
  for (let i = 0; i < 40; i++) assert.ok(h.node(1).raft.propose(encoder.encode(`stale${i}`)).ok);
  h.settle();
  // Nodes 2 and 3 elect a leader of a later term, which commits 20 entries, then hands over
  // to the other: the new leader's first probe to node 1 starts at the end of a long log,
  // far past where node 1 diverged (index 3).
  for (let i = 0; i < 200 && h.leaders().filter((id) => id !== 1).length === 0; i++) h.tick([2, 3]);
  const first = h.leaders().find((id) => id !== 1)!;
  const second = first === 2 ? 3 : 2;
  for (let i = 0; i < 20; i++) h.propose(first, `new${i}`);
  h.tick([first], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  assert.equal(h.node(first).raft.transferLeadership(second), null);
  h.settle();
  assert.deepEqual(h.leaders().filter((id) => id !== 1), [second]);
  // Heal: node 1 must lose its 40 stale entries.
  h.filter = () => true;
  h.sent = [];
  h.tick([second], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks * 4);
  const rejections = h.sent.filter((m) => m.type === 'append-response' && m.from === 1 && !m.success).length;
  assert.equal(rejections, 1, 'the hint skips the whole stale term at once; one per entry would be over 20');
  assert.deepEqual(h.node(1).sm.applied, ['base', ...Array.from({ length: 20 }, (_, i) => `new${i}`)]);
  assert.equal(h.node(1).raft.lastIndex, h.node(second).raft.lastIndex);
});

test('pipelining keeps at most inflightAppendsMax appends outstanding to a follower', () => {
  const h = new Harness([1, 2, 3], { inflightAppendsMax: 2, entriesPerAppendMax: 1 });
  h.elect(1);
  h.propose(1, 'warm'); // followers enter the replicate state
  h.filter = (m) => m.type !== 'append-response'; // acks vanish: the window must close
  h.sent = [];
  for (let i = 0; i < 10; i++) assert.ok(h.node(1).raft.propose(encoder.encode(`p${i}`)).ok);
  h.settle();
  for (const follower of [2, 3]) {
    const appends = h.sent.filter((m) => m.type === 'append' && m.to === follower && m.entries.length > 0);
    assert.equal(appends.length, 2, `follower ${follower}`);
  }
});

test('batching: proposals made between two Ready cycles travel in one append', () => {
  const h = new Harness([1, 2, 3]);
  h.elect(1);
  h.propose(1, 'warm');
  h.sent = [];
  for (let i = 0; i < 5; i++) assert.ok(h.node(1).raft.propose(encoder.encode(`b${i}`)).ok);
  h.settle();
  const appends = h.sent.filter((m) => m.type === 'append' && m.to === 2 && m.entries.length > 0);
  assert.equal(appends.length, 1);
  assert.equal(appends[0]!.type === 'append' && appends[0]!.entries.length, 5);
});

/** Figure 8 set-up: returns the leader's commit index while only the older-term orphan has reached a quorum. */
function commitWithOnlyOrphanReplicated(mutations: RaftMutations): { orphanIndex: number; commitWhileHeld: number; commitAfter: number } {
  const h = new Harness([1, 2, 3], { checkQuorum: false, entriesPerAppendMax: 1, mutations });
  h.elect(1);
  // Node 1 appends an entry that reaches nobody, then restarts (a follower again, orphan in its log).
  h.filter = () => false;
  assert.ok(h.node(1).raft.propose(encoder.encode('orphan')).ok);
  h.settle();
  const orphanIndex = h.node(1).raft.lastIndex;
  h.boot(1);
  const held: Message[] = [];
  h.filter = (m) => {
    // Let the orphan through, and probes to followers that lack it; hold what comes after it.
    if (m.type === 'append' && h.node(m.to).raft.termAt(orphanIndex) !== undefined && m.entries.some((entry) => entry.index > orphanIndex)) {
      held.push(m);
      return false;
    }
    return true;
  };
  h.elect(1);
  h.settle();
  assert.ok(h.node(2).raft.termAt(orphanIndex) !== undefined || h.node(3).raft.termAt(orphanIndex) !== undefined, 'the orphan reached a follower');
  const commitWhileHeld = h.node(1).raft.commitIndex;
  h.filter = () => true;
  for (const m of held) h.queue.push(m);
  h.settle();
  return { orphanIndex, commitWhileHeld, commitAfter: h.node(1).raft.commitIndex };
}

test('a leader commits an older-term entry only through an entry of its own term', () => {
  const correct = commitWithOnlyOrphanReplicated({});
  assert.deepEqual(correct, { orphanIndex: 2, commitWhileHeld: 1, commitAfter: 3 }, 'committed only once the no-op of the new term replicated');
  const mutant = commitWithOnlyOrphanReplicated({ commitOlderTermEntries: true });
  assert.deepEqual(mutant, { orphanIndex: 2, commitWhileHeld: 2, commitAfter: 3 }, 'the commitOlderTermEntries mutant commits it early, by counting');
});

test('ReadIndex answers only after the term no-op commits and a quorum confirms leadership; a cut-off leader never answers ok', () => {
  const h = new Harness([1, 2, 3]);
  h.elect(1);
  h.propose(1, 'x');
  h.node(1).raft.readIndex(7);
  h.settle();
  const answer = h.node(1).readStates.find((state) => state.requestId === 7);
  assert.ok(answer !== undefined && answer.ok);
  assert.ok(answer.ok && answer.index === 2, 'the commit index when the round started: the no-op and x');
  // Cut the leader off: reads stay pending, then are aborted when it steps down.
  h.filter = (m) => m.from !== 1 && m.to !== 1;
  h.node(1).raft.readIndex(8);
  h.settle();
  assert.equal(h.node(1).readStates.find((state) => state.requestId === 8), undefined);
  h.tick([1], DEFAULT_RAFT_TIMING.electionTimeoutTicks * 2 + 1);
  const aborted = h.node(1).readStates.find((state) => state.requestId === 8);
  assert.ok(aborted !== undefined && !aborted.ok);
  assert.ok(!aborted.ok && aborted.error.code === 'IMPULSE_ERR_RAFT_READ_ABORTED');
});

test('a follower rejects readIndex with NOT_LEADER and the leader hint', () => {
  const h = new Harness([1, 2, 3]);
  h.elect(1);
  h.node(2).raft.readIndex(1);
  h.settle();
  const state = h.node(2).readStates[0]!;
  assert.ok(!state.ok && state.error.code === 'IMPULSE_ERR_RAFT_NOT_LEADER' && state.error.leaderHint === 1);
});

test('a follower behind the compacted log catches up through InstallSnapshot', () => {
  const h = new Harness([1, 2, 3]);
  h.elect(1);
  h.filter = (m) => m.to !== 3 && m.from !== 3;
  for (let i = 0; i < 20; i++) h.propose(1, `s${i}`);
  const leader = h.node(1);
  const snapshotIndex = h.compact(1);
  h.filter = () => true;
  h.sent = [];
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks * 2);
  assert.equal(h.sent.filter((m) => m.type === 'snapshot' && m.to === 3).length, 1);
  h.propose(1, 'after');
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  assert.deepEqual(h.node(3).sm.applied, leader.sm.applied);
  assert.equal(h.node(3).raft.snapshotIndex, snapshotIndex, 'the follower log begins at the image it installed (the leader applied nothing since)');
});

test('membership: a learner catches up before promotion; voters are added and removed one at a time', () => {
  const h = new Harness([1, 2, 3], { learnerCatchUpEntriesMax: 8 });
  h.elect(1);
  for (let i = 0; i < 20; i++) h.propose(1, `m${i}`);
  h.add(4, { voters: [], learners: [] });
  h.filter = (m) => m.to !== 4; // the learner is unreachable at first
  const added = h.node(1).raft.proposeConfChange(change('add-learner', 4));
  assert.ok(added.ok);
  h.settle();
  const early = h.node(1).raft.proposeConfChange(change('add-voter', 4));
  assert.ok(!early.ok && early.error.code === 'IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED', 'a lagging learner is not promoted');
  h.filter = () => true;
  h.sent = [];
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks * 3);
  assert.deepEqual(h.node(4).sm.applied, h.node(1).sm.applied, 'the learner caught up');
  assert.deepEqual(h.node(4).raft.confState.learners, [4]);
  assert.ok(h.node(1).raft.proposeConfChange(change('add-voter', 4)).ok);
  const second = h.node(1).raft.proposeConfChange(change('remove-node', 2));
  assert.ok(!second.ok, 'one uncommitted change at a time');
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  assert.deepEqual(h.node(3).raft.confState.voters, [1, 2, 3, 4]);
  assert.ok(h.node(1).raft.proposeConfChange(change('remove-node', 2)).ok);
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  assert.deepEqual(h.node(1).raft.confState.voters, [1, 3, 4]);
  const self = h.node(1).raft.proposeConfChange(change('remove-node', 1));
  assert.ok(!self.ok, 'the leader does not remove itself');
  // The new configuration commits without node 2.
  h.filter = (m) => m.to !== 2 && m.from !== 2;
  h.propose(1, 'without2');
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  assert.equal(h.node(4).sm.applied.at(-1), 'without2');
});

test('leadership transfer hands over to the target, which campaigns at once', () => {
  const h = new Harness([1, 2, 3]);
  h.elect(1);
  h.propose(1, 't');
  assert.equal(h.node(1).raft.transferLeadership(3), null);
  const during = h.node(1).raft.propose(encoder.encode('x'));
  // The target is caught up, so timeout-now is queued at once; until it wins, proposals are refused.
  assert.ok(!during.ok && during.error.code === 'IMPULSE_ERR_RAFT_TRANSFER_IN_PROGRESS');
  h.settle();
  assert.deepEqual(h.leaders(), [3]);
  assert.equal(h.node(1).raft.leaderId, 3);
});

test('a restarted node rebuilds term, vote, log and configuration from its persisted state', () => {
  const h = new Harness([1, 2, 3]);
  h.elect(1);
  for (let i = 0; i < 3; i++) h.propose(1, `r${i}`);
  const before = { term: h.node(2).raft.currentTerm, last: h.node(2).raft.lastIndex };
  h.boot(2);
  assert.equal(h.node(2).raft.currentTerm, before.term);
  assert.equal(h.node(2).raft.lastIndex, before.last);
  assert.equal(h.node(2).raft.appliedIndex, h.node(2).sm.appliedIndex, 'application resumes after the state machine applied index');
  h.propose(1, 'r3');
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  assert.deepEqual(h.node(2).sm.applied, ['r0', 'r1', 'r2', 'r3'], 'nothing applied twice or skipped');
});

test('input between ready() and advance() is a bug and asserts', () => {
  const h = new Harness([1]);
  h.elect(1);
  h.node(1).raft.propose(encoder.encode('a'));
  const ready = h.node(1).raft.ready();
  assert.throws(() => h.node(1).raft.tick(), /between ready\(\) and advance\(\)/);
  h.node(1).raft.advance(ready);
});

test('campaigns by stale-log nodes do not hold back an up-to-date node’s election timer (no livelock)', () => {
  const h = new Harness([1, 2, 3], { preVote: false, checkQuorum: false });
  h.elect(1);
  h.filter = (m) => m.to !== 3 && m.from !== 3;
  h.propose(1, 'only-on-1-and-2');
  h.filter = (m) => m.to !== 1 && m.from !== 1; // the leader is gone
  const node2 = h.node(2).raft;
  let term = node2.currentTerm;
  // Node 3 (stale log) campaigns every 3 ticks with a higher term; node 2 must still time out and win.
  for (let tick = 0; tick < DEFAULT_RAFT_TIMING.electionTimeoutTicks * 4 && node2.role !== 'leader'; tick++) {
    if (tick % 3 === 0) {
      term = Math.max(term, node2.currentTerm) + 1;
      node2.step({ type: 'vote', from: 3, to: 2, term, lastLogIndex: 1, lastLogTerm: 1, transfer: false });
      h.settle();
    }
    h.tick([2]);
  }
  assert.equal(node2.role, 'leader');
});

test('ReadIndex is batched: 100 reads queued between two Ready cycles cost one heartbeat per follower', () => {
  const h = new Harness([1, 2, 3, 4, 5]);
  h.elect(1);
  h.propose(1, 'x');
  h.sent = [];
  for (let id = 1; id <= 100; id++) h.node(1).raft.readIndex(id);
  h.settle();
  const heartbeats = h.sent.filter((m) => m.type === 'heartbeat').length;
  assert.equal(heartbeats, 4, 'one round: one heartbeat to each of the 4 followers');
  assert.equal(h.node(1).raft.readRounds, 1);
  const answered = h.node(1).readStates.filter((state) => state.ok);
  assert.equal(answered.length, 100, 'every read of the round is confirmed');
});

test('ReadIndex: a read that arrives while a round is in flight waits for the next round', () => {
  const h = new Harness([1, 2, 3]);
  h.elect(1);
  h.propose(1, 'x');
  h.filter = (m) => m.type !== 'heartbeat-response'; // the first round is never confirmed
  h.node(1).raft.readIndex(1);
  h.settle();
  h.filter = () => true;
  h.node(1).raft.readIndex(2); // arrives while round 1 is in flight
  h.settle();
  // Round 2's answers confirm both reads (a later round confirms every earlier one).
  assert.deepEqual(h.node(1).readStates.map((state) => state.requestId).sort(), [1, 2]);
  assert.equal(h.node(1).raft.readRounds, 2, 'read 2 got a round of its own');
});

test('a single voter confirms reads alone, in the same Ready', () => {
  const h = new Harness([1]);
  h.elect(1);
  h.node(1).raft.readIndex(9);
  h.settle();
  assert.deepEqual(h.node(1).readStates, [{ requestId: 9, ok: true, index: 1 }]);
});

test('a follower in the snapshot state gets one snapshot until the driver reports the transfer', () => {
  const h = new Harness([1, 2, 3]);
  h.elect(1);
  h.filter = (m) => m.to !== 3 && m.from !== 3;
  for (let i = 0; i < 20; i++) h.propose(1, `s${i}`);
  h.compact(1);
  // Node 3 is slow: it receives, but its answers do not come back for a long time.
  h.filter = (m) => m.from !== 3;
  h.sent = [];
  h.tick([1], 20);
  assert.equal(h.sent.filter((m) => m.type === 'snapshot' && m.to === 3).length, 1, 'one snapshot in 20 ticks');
  assert.equal(h.node(1).raft.progressOf(3)?.state, 'snapshot');
  // The transfer failed: the leader waits for a heartbeat answer, then sends a new one.
  h.node(1).raft.reportSnapshot(3, false);
  h.filter = () => true;
  h.sent = [];
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks * 2);
  assert.equal(h.sent.filter((m) => m.type === 'snapshot' && m.to === 3).length, 1, 'a new transfer after the failure');
  assert.deepEqual(h.node(3).sm.applied, h.node(1).sm.applied);
  assert.equal(h.node(1).raft.progressOf(3)?.state, 'replicate');
});

test('reportSnapshot success: the leader probes right after the snapshot', () => {
  const h = new Harness([1, 2, 3]);
  h.elect(1);
  h.filter = (m) => m.to !== 3 && m.from !== 3;
  for (let i = 0; i < 10; i++) h.propose(1, `s${i}`);
  const boundary = h.compact(1);
  h.filter = (m) => m.from !== 3 || m.type !== 'append-response'; // the follower's own ack is lost
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks * 2); // the lost pipeline is noticed after a silent interval
  assert.equal(h.node(1).raft.progressOf(3)?.state, 'snapshot');
  h.node(1).raft.reportSnapshot(3, true);
  assert.equal(h.node(1).raft.progressOf(3)?.state, 'probe');
  assert.equal(h.node(1).raft.progressOf(3)?.next, boundary + 1);
  h.filter = () => true;
  h.propose(1, 'after');
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  assert.equal(h.node(3).sm.applied.at(-1), 'after');
});

test('a removed node is told so when it talks to the cluster, and stops campaigning', () => {
  const h = new Harness([1, 2, 3, 4], { preVote: false, checkQuorum: false });
  h.elect(1);
  h.filter = (m) => m.to !== 4 && m.from !== 4; // node 4 misses its own removal
  assert.ok(h.node(1).raft.proposeConfChange(change('remove-node', 4)).ok);
  h.settle();
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  assert.deepEqual(h.node(2).raft.confState.voters, [1, 2, 3]);
  const term = h.node(1).raft.currentTerm;
  h.filter = () => true;
  // Node 4 still believes it is a voter: it times out and campaigns (no pre-vote, no check-quorum).
  for (let i = 0; i < DEFAULT_RAFT_TIMING.electionTimeoutTicks * 3 && !h.node(4).raft.removed; i++) h.tick([4]);
  assert.equal(h.node(4).raft.removed, true, 'node 4 learned it was removed');
  assert.equal(h.node(1).raft.role, 'leader', 'the campaign did not depose the leader');
  assert.equal(h.node(1).raft.currentTerm, term, 'nor raise its term');
  h.sent = [];
  h.tick([4], DEFAULT_RAFT_TIMING.electionTimeoutTicks * 3);
  assert.equal(h.sent.filter((m) => m.from === 4).length, 0, 'a removed node never campaigns again');
});

test('a removed node that keeps a stale configuration cannot disrupt the cluster even before it is told', () => {
  const h = new Harness([1, 2, 3, 4], { preVote: false, checkQuorum: false });
  h.elect(1);
  h.filter = (m) => m.to !== 4 && m.from !== 4;
  assert.ok(h.node(1).raft.proposeConfChange(change('remove-node', 4)).ok);
  h.settle();
  // The removal is appended everywhere but not yet committed on the followers: nobody knows 4 was removed for good.
  const term = h.node(2).raft.currentTerm;
  h.filter = (m) => m.from === 4 || m.to === 4;
  h.node(2).raft.step({ type: 'vote', from: 4, to: 2, term: term + 5, lastLogIndex: 100, lastLogTerm: term + 4, transfer: false });
  h.settle();
  assert.equal(h.node(2).raft.currentTerm, term, 'a campaign by a node outside the configuration changes no term');
});

test('append messages, Ready entries and apply batches are bounded in bytes', () => {
  const big = 'x'.repeat(1000);
  const h = new Harness([1, 2, 3], { appendBytesMax: 2500, readyEntriesBytesMax: 3500, applyBytesMax: 1500 });
  h.elect(1);
  h.propose(1, 'warm');
  h.sent = [];
  const leader = h.node(1).raft;
  for (let i = 0; i < 10; i++) assert.ok(leader.propose(encoder.encode(big)).ok);
  const ready = h.handleReady(h.node(1));
  assert.equal(ready.entries.length, 3, 'the Ready hands out 3 entries of 1000 bytes (3500 bytes max)');
  h.settle();
  const appends = h.sent.filter((m) => m.type === 'append' && m.to === 2 && m.entries.length > 0);
  assert.deepEqual(appends.map((m) => m.type === 'append' && m.entries.length), [2, 2, 2, 2, 2], 'at most 2500 bytes per append');
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  assert.equal(h.node(2).sm.applied.filter((text) => text === big).length, 10, 'everything arrives in the end');
});

test('the leader refuses proposals once its uncommitted proposals pass uncommittedBytesMax', () => {
  const h = new Harness([1, 2, 3], { uncommittedBytesMax: 3000 });
  h.elect(1);
  h.propose(1, 'warm');
  h.filter = () => false; // nothing commits
  const leader = h.node(1).raft;
  const results = Array.from({ length: 5 }, () => leader.propose(new Uint8Array(1000)));
  assert.deepEqual(results.map((result) => result.ok), [true, true, true, false, false]);
  const refused = results[3]!;
  assert.ok(!refused.ok && refused.error.code === 'IMPULSE_ERR_RAFT_OVERLOADED');
});

test('settled: a leader is settled only once every member matches its last entry, all committed and applied; a follower once it knows the leader and applied all', () => {
  const h = new Harness([1, 2, 3]);
  h.elect(1);
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  for (const id of [1, 2, 3]) assert.equal(h.node(id).raft.settled, true, `node ${id} after the election`);
  h.filter = (m) => m.to !== 3;
  const proposed = h.node(1).raft.propose(encoder.encode('x'));
  assert.ok(proposed.ok);
  assert.equal(h.node(1).raft.settled, false, 'a proposal in flight');
  h.settle();
  assert.equal(h.node(1).raft.settled, false, 'committed and applied, but node 3 does not match');
  assert.equal(h.node(1).raft.settledPast((id) => id === 3), true, 'past node 3 when it is down');
  assert.equal(h.node(1).raft.settledPast((id) => id === 2), false, 'not past a member that is down but matches while node 3 lags');
  assert.equal(h.node(1).raft.settledPast((id) => id === 1), false, 'the leader\'s own progress is never skipped');
  h.filter = () => true;
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  assert.equal(h.node(1).raft.settled, true);
  assert.equal(h.node(3).raft.settled, true);
  h.node(1).raft.readIndex(1);
  assert.equal(h.node(1).raft.settled, false, 'a read waits for its round');
});

test('resumeTicking after a quiescence: a fresh check-quorum round, so the leader is not deposed for the silence it slept through', () => {
  // The leader quiesces late in a check-quorum round whose answers it never got (quiesced
  // followers send nothing). Resumed without a fresh round, its next tick closes that round
  // with no answers and it steps down; with one, it keeps leading.
  const quiesceLateInRound = (): Harness => {
    const h = new Harness([1, 2, 3]);
    h.elect(1);
    h.filter = (m) => m.from === 1;
    h.tick([1], DEFAULT_RAFT_TIMING.electionTimeoutTicks); // closes the first round on the election's answers
    h.tick([1], DEFAULT_RAFT_TIMING.electionTimeoutTicks - 1); // the next round, unanswered, about to close
    h.filter = () => true;
    return h;
  };
  const resumed = quiesceLateInRound();
  resumed.node(1).raft.resumeTicking();
  resumed.tick([1]);
  assert.equal(resumed.node(1).raft.role, 'leader');
  const notResumed = quiesceLateInRound();
  notResumed.tick([1]);
  assert.notEqual(notResumed.node(1).raft.role, 'leader', 'without the fresh round the skipped silence deposes it');
});

test('leaderUnreachable: the first surviving voter campaigns at its next tick and wins, the second waits its turn; other hints change nothing', () => {
  const h = new Harness([1, 2, 3], { preVote: true, checkQuorum: true });
  h.elect(1);
  h.propose(1, 'a');
  h.filter = (m) => m.from !== 1 && m.to !== 1; // node 1's process is gone
  h.node(2).raft.leaderUnreachable(3); // not its leader: ignored
  assert.equal(h.node(2).raft.leaderId, 1);
  h.node(3).raft.leaderUnreachable(1);
  h.tick([2, 3], 1);
  const survivors = (): NodeId[] => h.leaders().filter((id) => id !== 1);
  assert.deepEqual(survivors(), [], 'node 3 ranks second: it waits, and node 2 (no hint yet) still trusts its lease');
  h.node(2).raft.leaderUnreachable(1);
  h.tick([2, 3], 1);
  assert.deepEqual(survivors(), [2], 'node 2 campaigned at its next tick, node 3 granted (no lease any more)');
  h.propose(2, 'b');
  assert.deepEqual(h.node(3).sm.applied, ['a', 'b']);
});

test('leaderUnreachable with the leader alive: the leader\'s next heartbeat restores it; no term change', () => {
  const h = new Harness([1, 2, 3], { preVote: true, checkQuorum: true });
  h.elect(1);
  const term = h.node(1).raft.currentTerm;
  h.node(2).raft.leaderUnreachable(1);
  assert.equal(h.node(2).raft.leaderId, 0);
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  assert.equal(h.node(2).raft.leaderId, 1, 'the heartbeat restored the leader');
  h.tick([1, 2, 3], DEFAULT_RAFT_TIMING.electionTimeoutTicks * 3);
  assert.deepEqual(h.leaders(), [1]);
  assert.equal(h.node(1).raft.currentTerm, term, 'no election happened');
});

test('a learner that never acknowledged anything is not promoted, however short the log', () => {
  const h = new Harness([1, 2, 3]);
  h.elect(1);
  const added = h.node(1).raft.proposeConfChange(change('add-learner', 4)); // node 4 never answers
  assert.ok(added.ok);
  h.settle();
  h.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  const promoted = h.node(1).raft.proposeConfChange(change('add-voter', 4));
  assert.equal(promoted.ok, false);
  if (!promoted.ok) assert.equal(promoted.error.code, 'IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED');
});
