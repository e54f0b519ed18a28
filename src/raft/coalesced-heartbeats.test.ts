/**
 * HeartbeatCoalescer: every heartbeat and response offered reaches its node in
 * one message per flush, unchanged (through the transport's msgpack too), and
 * steps into the core as the message it was; the bounds hold; malformed bodies
 * are refused whole with a coded error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { packValue, unpackValue } from '../transport/frames.js';
import { decodeCoalescedHeartbeats, HeartbeatCoalescer, type CoalescedHeartbeatsBody, type GroupHeartbeat } from './coalesced-heartbeats.js';
import { parseMessage } from './message.js';
import { RaftError, type Message, type NodeId } from './types.js';

/** Raft ids of the form generation × 2³¹ + node, as shard replicas' (src/shard/replica-id.ts). */
const nodeOf = (raftId: NodeId): NodeId => raftId % 2 ** 31;

function harness(max?: number) {
  const sent: { to: NodeId; body: CoalescedHeartbeatsBody }[] = [];
  const deferred: (() => void)[] = [];
  const coalescer = new HeartbeatCoalescer({
    send: (to, body) => sent.push({ to, body }),
    defer: (flush) => deferred.push(flush),
    nodeOf,
    ...(max !== undefined ? { heartbeatsPerMessageMax: max } : {}),
  });
  const runDeferred = (): void => {
    for (const flush of deferred.splice(0)) flush();
  };
  return { coalescer, sent, deferred, runDeferred };
}

const heartbeat = (from: NodeId, to: NodeId, term: number, commit: number, readSeq: number): Message => ({ type: 'heartbeat', from, to, term, commit, readSeq });
const response = (from: NodeId, to: NodeId, term: number, readSeq: number): Message => ({ type: 'heartbeat-response', from, to, term, readSeq });

test('the heartbeats and responses of many groups to one node go as one message, each arriving as it was sent', () => {
  const { coalescer, sent, deferred, runDeferred } = harness();
  const offered: GroupHeartbeat[] = [];
  for (let group = 2; group < 66; group++) {
    const message = group % 3 === 0 ? response(1, 2, 5, group) : heartbeat(1, 2, 4, group * 10, group + 1);
    assert.equal(coalescer.offer(group, message), true);
    offered.push({ group, message } as GroupHeartbeat);
  }
  assert.equal(sent.length, 0, 'nothing goes before the flush');
  assert.equal(deferred.length, 1, 'one flush scheduled for the whole run');
  runDeferred();
  assert.equal(sent.length, 1);
  assert.equal(sent[0]!.to, 2);
  // Through the transport's own encoding, as a frame carries it.
  const received = decodeCoalescedHeartbeats(unpackValue(packValue(sent[0]!.body), 'body'));
  const key = (h: GroupHeartbeat): string => `${h.group}:${h.message.type}`;
  assert.deepEqual([...received].sort((a, b) => key(a).localeCompare(key(b))), [...offered].sort((a, b) => key(a).localeCompare(key(b))));
  for (const { message } of received) assert.deepEqual(parseMessage(message), message, 'each steps into the core as a valid Raft message');
  assert.deepEqual(coalescer.stats, { messagesSent: 1, heartbeatsSent: 43, responsesSent: 21, messagesReceived: 0, heartbeatsReceived: 0, responsesReceived: 0, messagesInvalid: 0 });
});

test('one message per destination node, by the node of each Raft id; other messages are not taken', () => {
  const { coalescer, sent, runDeferred } = harness();
  const generation2 = 2 * 2 ** 31;
  coalescer.offer(7, heartbeat(generation2 + 1, generation2 + 3, 2, 9, 1));
  coalescer.offer(8, heartbeat(1, 2, 2, 9, 1));
  coalescer.offer(9, response(1, 3, 2, 4));
  const append: Message = { type: 'append', from: 1, to: 2, term: 2, prevLogIndex: 0, prevLogTerm: 0, entries: [], commit: 0 };
  assert.equal(coalescer.offer(8, append), false);
  assert.equal(coalescer.offer(8, { type: 'vote', from: 1, to: 2, term: 3, lastLogIndex: 1, lastLogTerm: 1, transfer: false }), false);
  runDeferred();
  assert.deepEqual(
    sent.map(({ to, body }) => ({ to, groups: decodeCoalescedHeartbeats(body).map((h) => h.group) })),
    [
      { to: 3, groups: [7, 9] },
      { to: 2, groups: [8] },
    ],
  );
});

test('held offers (the host ticking its groups) wait for the heartbeat boundary, whatever else goes meanwhile', () => {
  const { coalescer, sent, deferred, runDeferred } = harness();
  coalescer.holdWhile(() => {
    coalescer.offer(2, heartbeat(1, 2, 1, 0, 0));
    coalescer.offer(3, heartbeat(1, 2, 1, 0, 0));
  });
  assert.equal(deferred.length, 0, 'a held heartbeat schedules no flush');
  // A response between two boundaries goes at once, alone: the held heartbeats keep waiting.
  coalescer.offer(4, response(1, 2, 1, 0));
  runDeferred();
  assert.deepEqual(
    sent.map(({ body }) => decodeCoalescedHeartbeats(body).map((h) => h.group)),
    [[4]],
  );
  coalescer.holdWhile(() => coalescer.offer(5, heartbeat(1, 2, 1, 0, 0)));
  coalescer.offer(6, response(1, 2, 1, 0));
  // The boundary: held and loose together, one message.
  assert.deepEqual([...coalescer.flush()], [2]);
  assert.deepEqual(
    sent.map(({ body }) => decodeCoalescedHeartbeats(body).map((h) => h.group)),
    [[4], [2, 3, 5, 6]],
  );
  assert.deepEqual([...coalescer.flush()], [], 'an empty flush sends nothing');
  runDeferred();
  assert.equal(sent.length, 2, 'the deferred flush finds nothing left');
});

test('a batch reaching its bound goes at once; nothing is ever dropped', () => {
  const { coalescer, sent, runDeferred } = harness(4);
  coalescer.holdWhile(() => {
    for (let group = 1; group <= 10; group++) coalescer.offer(group, heartbeat(1, 2, 1, 0, 0));
  });
  assert.deepEqual(
    sent.map(({ body }) => decodeCoalescedHeartbeats(body, 4).length),
    [4, 4],
  );
  coalescer.flush();
  runDeferred();
  assert.deepEqual(
    sent.flatMap(({ body }) => decodeCoalescedHeartbeats(body, 4).map((h) => h.group)),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  );
});

test('any mix of heartbeats and responses round-trips (property)', () => {
  const int = fc.integer({ min: 0, max: 2 ** 40 });
  const id = fc.integer({ min: 1, max: 2 ** 40 });
  const groupMessage = fc.oneof(
    fc.record({ group: int, message: fc.record({ type: fc.constant('heartbeat' as const), from: id, to: id, term: int, commit: int, readSeq: int }) }),
    fc.record({ group: int, message: fc.record({ type: fc.constant('heartbeat-response' as const), from: id, to: id, term: int, readSeq: int }) }),
  );
  fc.assert(
    fc.property(fc.array(groupMessage, { maxLength: 50 }), (offers) => {
      const { coalescer, sent, runDeferred } = harness();
      for (const { group, message } of offers) coalescer.offer(group, message);
      runDeferred();
      const received = sent.flatMap(({ to, body }) => decodeCoalescedHeartbeats(unpackValue(packValue(body), 'body')).map((h) => ({ to, ...h })));
      const expected = offers.map((offer) => ({ to: nodeOf(offer.message.to), ...offer }));
      const order = (list: { to: number; group: number; message: Message }[]): string[] => list.map((h) => JSON.stringify([h.to, h.group, h.message])).sort();
      assert.deepEqual(order(received), order(expected));
      assert.equal(sent.length, new Set(expected.map((h) => h.to)).size);
    }),
  );
});

test('malformed bodies are refused whole with a coded error, and counted', () => {
  const { coalescer } = harness();
  const bad: unknown[] = [
    null,
    {},
    [[1, 2, 3, 4, 5, 6]],
    [[1, 2, 3, 4, 5], []],
    [[], [1, 2, 3, 4]],
    [[1, 2, 3, 4, 5, -6], []],
    [[1, 2, 3, 4, 5, 6.5], []],
    [[1, 2, 3, '4', 5, 6], []],
    [[], [2 ** 53, 1, 2, 3, 4]],
    [Array.from({ length: 6 * 4097 }, () => 1), []],
  ];
  for (const body of bad) {
    assert.throws(
      () => coalescer.receive(body),
      (error: unknown) => error instanceof RaftError && error.code === 'IMPULSE_ERR_RAFT_MESSAGE_INVALID',
      JSON.stringify(body)?.slice(0, 60),
    );
  }
  assert.equal(coalescer.stats.messagesInvalid, bad.length);
  assert.equal(coalescer.stats.messagesReceived, 0);
  const good = coalescer.receive([[5, 1, 2, 3, 4, 0], [6, 2, 1, 3, 0]]);
  assert.deepEqual(good, [
    { group: 5, message: { type: 'heartbeat', from: 1, to: 2, term: 3, commit: 4, readSeq: 0 } },
    { group: 6, message: { type: 'heartbeat-response', from: 2, to: 1, term: 3, readSeq: 0 } },
  ]);
  assert.deepEqual(coalescer.stats, { messagesSent: 0, heartbeatsSent: 0, responsesSent: 0, messagesReceived: 1, heartbeatsReceived: 1, responsesReceived: 1, messagesInvalid: bad.length });
});
