/**
 * Unit tests of the driver on in-memory seams: `MemLogStore` whose fsyncs the
 * test completes by hand, a transport that queues messages and snapshot
 * streams until the test delivers them, and a list state machine whose
 * durable applied index the test controls. Everything is synchronous and
 * deterministic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../util/random.js';
import type { Clock } from '../util/clock.js';
import { MemLogStore } from '../../testkit/sim/mem-log-store.js';
import { DEFAULT_RAFT_TIMING } from './raft.js';
import { RaftDriver, type RaftDriverLimits, type StopReason } from './driver.js';
import type { GroupMessage, RaftStateMachine, RaftTransport, SnapshotImage } from './driver-seams.js';
import type { ConfChange, ConfState, Entry, Message, NodeId, RaftError, SnapshotMeta } from './types.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const clock: Clock = { now: () => 0, setTimer: () => ({ cancel: () => {} }) };

/** Applies normal entries to a list; its durable applied index follows only when `durableFollows`. */
/** Its images are one JSON byte array (the driver never looks inside a payload). */
class ListMachine implements RaftStateMachine<string, Uint8Array> {
  applied: string[] = [];
  appliedIndex = 0;
  appliedTerm = 0;
  durableIndex = 0;
  durableFollows = true;
  staged: SnapshotImage<Uint8Array> | null = null;
  /** When set, applies complete only when the test runs what is pushed here. */
  heldApplies: (() => void)[] | null = null;
  /** The payload of the last image `snapshot` produced. */
  lastImage: Uint8Array | null = null;
  constructor(public conf: ConfState) {}
  apply(entries: readonly Entry[], done: (error: Error | null, results?: readonly string[]) => void): void {
    const results = entries.map((entry) => {
      this.appliedIndex = entry.index;
      this.appliedTerm = entry.term;
      if (entry.kind === 'conf-change') {
        this.conf = entry.confState;
        return `conf ${entry.change.type} ${entry.change.nodeId} ${decoder.decode(entry.change.context)}`;
      }
      if (entry.data.length === 0) return 'no-op';
      this.applied.push(decoder.decode(entry.data));
      return `applied ${decoder.decode(entry.data)} at ${entry.index}`;
    });
    if (this.durableFollows) this.durableIndex = this.appliedIndex;
    if (this.heldApplies !== null) this.heldApplies.push(() => done(null, results));
    else done(null, results);
  }
  durableAppliedIndex(): number {
    return this.durableIndex;
  }
  snapshot(done: (error: Error | null, image?: SnapshotImage<Uint8Array>) => void): void {
    this.lastImage = encoder.encode(JSON.stringify(this.applied));
    done(null, { meta: { index: this.appliedIndex, term: this.appliedTerm, confState: this.conf }, payload: this.lastImage });
  }
  stageSnapshot(image: SnapshotImage<Uint8Array>, done: (error: Error | null) => void): void {
    this.staged = image;
    done(null);
  }
  installSnapshot(meta: SnapshotMeta, done: (error: Error | null) => void): void {
    assert.equal(this.staged?.meta.index, meta.index);
    this.applied = JSON.parse(decoder.decode(this.staged!.payload)) as string[];
    this.appliedIndex = this.durableIndex = meta.index;
    this.appliedTerm = meta.term;
    this.conf = meta.confState;
    done(null);
  }
}

interface TestNode {
  readonly id: NodeId;
  readonly store: MemLogStore;
  readonly sm: ListMachine;
  readonly syncs: (() => void)[];
  driver: RaftDriver<string, Uint8Array>;
  stops: StopReason[];
}

interface Stream {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly header: GroupMessage;
  readonly payload: Uint8Array;
  readonly done: (error: Error | null) => void;
}

class TestCluster {
  readonly nodes = new Map<NodeId, TestNode>();
  readonly messages: { from: NodeId; to: NodeId; message: GroupMessage }[] = [];
  readonly streams: Stream[] = [];
  /** Every message sent, and when (the count of fsyncs completed by then). */
  readonly log: { from: NodeId; body: Message; syncsDone: number }[] = [];
  syncsDone = 0;
  /** Returns false to drop a message. */
  filter: (from: NodeId, to: NodeId, body: Message) => boolean = () => true;
  autoSync = true;
  autoStream = true;
  private readonly random = new SeededRandom(7);

  constructor(
    voters: NodeId[],
    private readonly limits: Partial<RaftDriverLimits> = {},
    private readonly raftOverrides: object = {},
  ) {
    for (const id of voters) this.add(id, { voters, learners: [] });
  }

  add(id: NodeId, bootstrap: ConfState): TestNode {
    const syncs: (() => void)[] = [];
    const node: TestNode = { id, store: new MemLogStore(bootstrap, (complete) => syncs.push(complete)), sm: new ListMachine(bootstrap), syncs, driver: undefined as unknown as RaftDriver<string, Uint8Array>, stops: [] };
    this.nodes.set(id, node);
    this.start(node);
    return node;
  }

  start(node: TestNode): void {
    const transport: RaftTransport<Uint8Array> = {
      send: (to, message) => {
        assert.equal(message.group, 5, 'every message carries the group id');
        this.log.push({ from: node.id, body: message.body as Message, syncsDone: this.syncsDone });
        this.messages.push({ from: node.id, to, message });
      },
      sendSnapshot: (to, header, payload, done) => this.streams.push({ from: node.id, to, header, payload, done }),
    };
    RaftDriver.start<string, Uint8Array>(
      {
        group: 5,
        raft: { ...DEFAULT_RAFT_TIMING, ...this.raftOverrides, id: node.id, random: this.random.fork() },
        limits: { compactThresholdEntries: Number.MAX_SAFE_INTEGER, ...this.limits },
        logStore: node.store,
        transport,
        stateMachine: node.sm,
        clock,
        appliedIndex: node.sm.appliedIndex,
        onStop: (reason) => node.stops.push(reason),
      },
      (error, driver) => {
        assert.equal(error, null);
        node.driver = driver!;
      },
    );
  }

  node(id: NodeId): TestNode {
    return this.nodes.get(id)!;
  }

  /** Completes fsyncs and delivers messages (and streams, when automatic) until quiet. */
  settle(): void {
    for (let step = 0; step < 100_000; step++) {
      let progressed = false;
      if (this.autoSync) {
        for (const node of this.nodes.values()) {
          while (node.syncs.length > 0) {
            progressed = true;
            this.syncsDone++;
            node.syncs.shift()!();
          }
        }
      }
      const next = this.messages.shift();
      if (next !== undefined) {
        progressed = true;
        const body = next.message.body as Message;
        if (this.filter(next.from, next.to, body)) assert.equal(this.node(next.to).driver.receive(next.from, body), null);
      }
      if (this.autoStream && this.streams.length > 0) {
        progressed = true;
        this.deliverStream(this.streams.shift()!, true);
      }
      if (!progressed) return;
    }
    assert.fail('did not settle');
  }

  deliverStream(stream: Stream, ok: boolean): void {
    if (!ok) return stream.done(new Error('connection reset'));
    this.node(stream.to).driver.receiveSnapshot(stream.from, stream.header.body, stream.payload, stream.done);
  }

  tick(ids: NodeId[], times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const id of ids) this.node(id).driver.tick();
      this.settle();
    }
  }

  elect(id: NodeId): void {
    for (let i = 0; i < 100 && this.node(id).driver.node.role !== 'leader'; i++) this.tick([id]);
    assert.equal(this.node(id).driver.node.role, 'leader');
  }

  /** Proposes and returns a box that receives the outcome. */
  propose(id: NodeId, text: string): { error?: RaftError | null; result?: string } {
    const box: { error?: RaftError | null; result?: string } = {};
    this.node(id).driver.propose(encoder.encode(text), (error, result) => {
      box.error = error;
      if (result !== undefined) box.result = result;
    });
    return box;
  }
}

test('a proposal answers once applied, with the state machine result; every message carries the group id', () => {
  const c = new TestCluster([1, 2, 3]);
  c.elect(1);
  const box = c.propose(1, 'hello');
  c.settle();
  assert.equal(box.error, null);
  assert.equal(box.result, 'applied hello at 2');
  c.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  for (const id of [2, 3]) assert.deepEqual(c.node(id).sm.applied, ['hello']);
});

test('the leader sends appends before its own fsync but counts itself only once durable; a follower acknowledges only after its fsync', () => {
  const c = new TestCluster([1, 2, 3]);
  c.elect(1);
  c.autoSync = false;
  c.filter = (from, to) => from !== 3 && to !== 3; // node 3 is away: a commit needs the leader's own copy
  c.log.length = 0;
  const before = c.syncsDone;
  const box = c.propose(1, 'x');
  c.settle();
  const appends = c.log.filter((m) => m.body.type === 'append' && m.body.entries.length > 0);
  assert.ok(appends.length > 0 && appends.every((m) => m.syncsDone === before), 'the append left before any fsync (§10.2.1)');
  assert.equal(c.log.filter((m) => m.body.type === 'append-response' && m.body.success && m.body.index >= 2).length, 0, 'the follower waits for its own fsync');
  c.syncsDone++;
  c.node(2).syncs.shift()!(); // the follower's copy is durable: it acknowledges
  c.settle();
  assert.ok(c.log.some((m) => m.body.type === 'append-response' && m.body.success && m.body.index >= 2));
  assert.equal(box.error, undefined, 'not committed: one follower, and the leader\'s own copy is not durable yet');
  assert.ok(c.node(1).driver.node.commitIndex < 2);
  c.autoSync = true;
  c.settle();
  assert.equal(box.error, null, 'committed once the leader\'s copy is durable too');
});

test('the selfCountedBeforeDurable mutant commits on one follower and the leader\'s unfinished write (what the test above catches)', () => {
  const c = new TestCluster([1, 2, 3], {}, { mutations: { selfCountedBeforeDurable: true } });
  c.elect(1);
  c.autoSync = false;
  c.filter = (from, to) => from !== 3 && to !== 3;
  const box = c.propose(1, 'x');
  c.settle();
  c.node(2).syncs.shift()!();
  c.settle();
  assert.ok(c.node(1).driver.node.commitIndex >= 2, 'the mutant committed before the leader\'s fsync');
  assert.equal(box.error, null, 'and answered it');
});

test('a leader goes on while its write is in flight: later proposals are sent at once and written in ONE queued save', () => {
  const c = new TestCluster([1, 2, 3]);
  c.elect(1);
  c.autoSync = false;
  c.log.length = 0;
  const savesBefore = c.node(1).store.counters.saves;
  const first = c.propose(1, 'a');
  c.settle(); // the leader's save of 'a' is in flight
  const later = ['b', 'c', 'd'].map((text) => {
    const box = c.propose(1, text);
    c.settle();
    return box;
  });
  const sent = c.log.filter((m) => m.from === 1 && m.body.type === 'append').flatMap((m) => (m.body.type === 'append' ? m.body.entries : []));
  assert.deepEqual([...new Set(sent.map((entry) => decoder.decode(entry.kind === 'normal' ? entry.data : new Uint8Array())))].sort(), ['a', 'b', 'c', 'd'], 'every proposal went out before any fsync');
  assert.equal(c.node(1).store.counters.saves - savesBefore, 1, 'one save in flight; the others wait, merged');
  c.node(1).syncs.shift()!(); // the first save completes: the merged one starts
  assert.equal(c.node(1).store.counters.saves - savesBefore, 2, 'b, c and d in one save');
  c.autoSync = true;
  c.settle();
  assert.equal(first.error, null);
  for (const box of later) assert.equal(box.error, null);
  assert.deepEqual(c.node(1).sm.applied.slice(-4), ['a', 'b', 'c', 'd']);
});

test('a campaign\'s vote requests wait for its durable term and vote', () => {
  const c = new TestCluster([1, 2, 3]);
  c.elect(1);
  c.autoSync = false;
  c.filter = (from, to) => from !== 1 && to !== 1; // the leader is gone for 2 and 3
  c.log.length = 0;
  const before = c.syncsDone;
  let candidate: NodeId | undefined;
  for (let i = 0; i < 200 && candidate === undefined; i++) {
    c.tick([2, 3]);
    candidate = [2, 3].find((id) => c.node(id).driver.node.role === 'candidate');
  }
  assert.ok(candidate !== undefined, 'node 2 or 3 campaigns');
  assert.equal(c.log.filter((m) => m.from === candidate && m.body.type === 'vote').length, 0, 'no vote request before the term and vote are durable');
  while (c.node(candidate).syncs.length > 0) {
    c.syncsDone++;
    c.node(candidate).syncs.shift()!();
  }
  c.settle();
  assert.ok(c.log.some((m) => m.from === candidate && m.body.type === 'vote' && m.syncsDone > before), 'vote requests follow the fsync');
});

test('a failed save stops the node: pending proposals fail with IMPULSE_ERR_RAFT_STOPPED and onStop says why', () => {
  const c = new TestCluster([1, 2, 3]);
  c.elect(1);
  c.node(1).store.failNext(new Error('disk full'));
  const box = c.propose(1, 'lost');
  c.settle();
  assert.equal(box.error?.code, 'IMPULSE_ERR_RAFT_STOPPED');
  assert.equal(c.node(1).driver.stopped, true);
  assert.equal(c.node(1).stops[0]?.kind, 'failed');
  const after = c.propose(1, 'refused');
  assert.equal(after.error?.code, 'IMPULSE_ERR_RAFT_STOPPED', 'a stopped driver refuses at once');
});

test('reads queued while a Ready is in flight are confirmed by one heartbeat round', () => {
  const c = new TestCluster([1, 2, 3, 4, 5]);
  c.elect(1);
  c.settle();
  const held: (() => void)[] = [];
  c.node(1).sm.heldApplies = held;
  c.propose(1, 'x');
  c.settle(); // the leader's Ready that applies 'x' is now in flight
  assert.equal(held.length, 1);
  c.log.length = 0;
  let confirmed = 0;
  for (let i = 0; i < 100; i++) c.node(1).driver.readIndex((error) => (error === null ? confirmed++ : assert.fail(error.message)));
  c.node(1).sm.heldApplies = null;
  held.shift()!();
  c.settle();
  assert.equal(confirmed, 100);
  assert.equal(c.log.filter((m) => m.body.type === 'heartbeat').length, 4, 'one heartbeat per follower for 100 reads');
  assert.equal(c.node(1).driver.metrics().readRounds, 1);
});

test('a read answers only once the state machine applied its index', () => {
  const c = new TestCluster([1, 2, 3], {}, { applyBatchMax: 1 });
  c.elect(1);
  c.settle();
  const sm = c.node(1).sm;
  const held: (() => void)[] = [];
  const apply = sm.apply.bind(sm);
  sm.apply = (entries, done) => held.push(() => apply(entries, done)); // the state machine is slow
  for (let i = 0; i < 5; i++) c.propose(1, `v${i}`);
  c.settle();
  const commitAtRead = c.node(1).driver.node.lastIndex;
  let appliedAtAnswer = -1;
  c.node(1).driver.readIndex((error) => {
    assert.equal(error, null);
    appliedAtAnswer = sm.appliedIndex;
  });
  for (let i = 0; i < 50 && appliedAtAnswer < 0; i++) {
    held.shift()?.();
    c.settle();
  }
  assert.ok(appliedAtAnswer >= commitAtRead, `answered at applied ${appliedAtAnswer}, before the read index ${commitAtRead}`);
});

test('the pending-proposal bound answers IMPULSE_ERR_RAFT_OVERLOADED and holds nothing', () => {
  const c = new TestCluster([1, 2, 3], { pendingProposalsMax: 2 });
  c.elect(1);
  c.filter = () => false; // nothing commits
  const boxes = [c.propose(1, 'a'), c.propose(1, 'b'), c.propose(1, 'c')];
  c.settle();
  assert.equal(boxes[2]!.error?.code, 'IMPULSE_ERR_RAFT_OVERLOADED');
  assert.equal(boxes[0]!.error, undefined, 'still pending');
  assert.equal(c.node(1).driver.metrics().proposalsFailed.IMPULSE_ERR_RAFT_OVERLOADED, 1);
});

test('a snapshot transfer keeps the follower in the snapshot state until the transport reports it', () => {
  const c = new TestCluster([1, 2, 3], { compactThresholdEntries: 5, snapshotCatchUpEntries: 0 });
  c.elect(1);
  c.filter = (from, to) => from !== 3 && to !== 3;
  for (let i = 0; i < 12; i++) c.propose(1, `v${i}`);
  c.settle();
  assert.ok(c.node(1).driver.node.snapshotIndex >= 5, 'the leader compacted');
  c.filter = () => true;
  c.autoStream = false;
  c.tick([1], 20);
  assert.equal(c.streams.length, 1, 'one transfer in 20 ticks, however slow');
  assert.equal(c.streams[0]!.payload, c.node(1).sm.lastImage, 'the state machine image goes to the transport untouched');
  c.deliverStream(c.streams.shift()!, false); // the connection broke
  c.settle();
  c.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks * 2);
  assert.equal(c.streams.length, 1, 'a new transfer after the failure report');
  c.deliverStream(c.streams.shift()!, true);
  c.settle();
  c.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  assert.deepEqual(c.node(3).sm.applied, c.node(1).sm.applied);
  const metrics = c.node(1).driver.metrics();
  assert.equal(metrics.snapshotsSent, 2);
  assert.equal(metrics.snapshotsFailed, 1);
  assert.equal(c.node(3).driver.metrics().snapshotsReceived, 1);
});

test('compaction goes no further than the state machine durable applied index', () => {
  const c = new TestCluster([1], { compactThresholdEntries: 3, snapshotCatchUpEntries: 1 });
  c.elect(1);
  const sm = c.node(1).sm;
  sm.durableFollows = false;
  for (let i = 0; i < 10; i++) c.propose(1, `v${i}`);
  c.settle();
  assert.equal(c.node(1).store.snapshotMeta().index, 0, 'nothing durable, nothing compacted');
  sm.durableIndex = 6;
  c.propose(1, 'w');
  c.settle();
  assert.equal(c.node(1).store.snapshotMeta().index, 5, 'durable 6 less one catch-up entry');
  assert.equal(c.node(1).driver.metrics().compactions, 1);
});

test('a single voter that becomes leader sends nothing to its learner before its new term is durable', () => {
  const c = new TestCluster([1]);
  c.elect(1);
  c.add(2, { voters: [1], learners: [] });
  c.node(1).driver.proposeConfChange({ type: 'add-learner', nodeId: 2, context: new Uint8Array(0) }, (error) => assert.equal(error, null));
  c.settle();
  c.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  c.start(c.node(1)); // a restart: a follower again, it campaigns and wins alone, in one Ready with its new term
  c.autoSync = false;
  c.log.length = 0;
  const before = c.syncsDone;
  for (let i = 0; i < 100 && c.node(1).driver.node.role !== 'leader'; i++) c.tick([1]);
  assert.equal(c.node(1).driver.node.role, 'leader');
  assert.equal(c.log.filter((m) => m.from === 1 && m.syncsDone === before).length, 0, 'nothing left before the new term was durable');
  c.autoSync = true;
  c.settle();
  assert.ok(c.log.some((m) => m.from === 1 && m.body.type === 'append'), 'appends follow the fsync');
});

test('a restart resumes after the state machine applied index and re-applies nothing', () => {
  const c = new TestCluster([1]);
  c.elect(1);
  for (let i = 0; i < 3; i++) c.propose(1, `v${i}`);
  c.settle();
  const node = c.node(1);
  c.start(node);
  c.elect(1);
  c.propose(1, 'v3');
  c.settle();
  assert.deepEqual(node.sm.applied, ['v0', 'v1', 'v2', 'v3']);
});

test('a removed node learns it from the cluster and stops; its id cannot be reused', () => {
  const c = new TestCluster([1, 2, 3, 4], {}, { preVote: false, checkQuorum: false });
  c.elect(1);
  c.filter = (from, to) => from !== 4 && to !== 4; // node 4 misses its removal
  const change: ConfChange = { type: 'remove-node', nodeId: 4, context: new Uint8Array(0) };
  let result: string | undefined;
  c.node(1).driver.proposeConfChange(change, (error, applied) => {
    assert.equal(error, null);
    result = applied;
  });
  c.settle();
  c.tick([1], DEFAULT_RAFT_TIMING.heartbeatIntervalTicks);
  assert.equal(result, 'conf remove-node 4 ', 'the state machine applied it (context handed back)');
  c.filter = () => true;
  for (let i = 0; i < DEFAULT_RAFT_TIMING.electionTimeoutTicks * 3 && c.node(4).stops.length === 0; i++) c.tick([4]);
  assert.deepEqual(c.node(4).stops, [{ kind: 'removed' }]);
  assert.equal(c.node(1).driver.node.role, 'leader', 'the removed node did not disrupt the leader');
  let refused: RaftError | null = null;
  c.node(1).driver.proposeConfChange({ type: 'add-learner', nodeId: 4, context: new Uint8Array(0) }, (error) => (refused = error));
  c.settle();
  assert.equal((refused as RaftError | null)?.code, 'IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED');
});

test('a malformed or misaddressed message is refused with a coded error, counted, and changes nothing', () => {
  const c = new TestCluster([1, 2, 3]);
  c.elect(1);
  const term = c.node(2).driver.node.currentTerm;
  const bad = c.node(2).driver.receive(1, { type: 'heartbeat', from: 1, to: 2, term: -4, commit: 0, readSeq: 0 });
  assert.equal(bad?.code, 'IMPULSE_ERR_RAFT_MESSAGE_INVALID');
  const spoofed = c.node(2).driver.receive(3, { type: 'heartbeat', from: 1, to: 2, term: term + 9, commit: 0, readSeq: 0 });
  assert.equal(spoofed?.code, 'IMPULSE_ERR_RAFT_MESSAGE_INVALID', 'the sender must be the peer the transport saw');
  const bareSnapshot = c.node(2).driver.receive(1, { type: 'snapshot', from: 1, to: 2, term, snapshot: { index: 9, term, confState: { voters: [1], learners: [] } } });
  assert.equal(bareSnapshot?.code, 'IMPULSE_ERR_RAFT_MESSAGE_INVALID', 'a snapshot comes only with its image');
  c.settle();
  assert.equal(c.node(2).driver.node.currentTerm, term);
  assert.equal(c.node(2).driver.metrics().messagesInvalid, 3);
});

test('status shows the leader view of each member', () => {
  const c = new TestCluster([1, 2, 3]);
  c.elect(1);
  c.propose(1, 'x');
  c.settle();
  const status = c.node(1).driver.status();
  assert.equal(status.role, 'leader');
  assert.equal(status.group, 5);
  assert.deepEqual(Object.keys(status.progress), ['1', '2', '3']);
  assert.equal(status.progress['2']!.lag, 0);
  assert.equal(status.progress['2']!.state, 'replicate');
  assert.equal(c.node(2).driver.status().progress['1'], undefined, 'followers have no progress table');
});
