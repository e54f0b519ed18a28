/** parseMessage: every valid message survives validation unchanged; malformed ones get a coded error. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMessage } from './message.js';
import { RaftError, type Message } from './types.js';

const conf = { voters: [1, 2, 3], learners: [4] };
const valid: Message[] = [
  { type: 'vote', from: 1, to: 2, term: 3, lastLogIndex: 7, lastLogTerm: 2, transfer: false },
  { type: 'pre-vote-response', from: 2, to: 1, term: 4, granted: true },
  {
    type: 'append',
    from: 1,
    to: 2,
    term: 3,
    prevLogIndex: 4,
    prevLogTerm: 2,
    commit: 4,
    entries: [
      { kind: 'normal', index: 5, term: 2, data: new Uint8Array([1, 2]) },
      { kind: 'conf-change', index: 6, term: 3, change: { type: 'add-learner', nodeId: 4, context: new Uint8Array([9]) }, confState: conf },
    ],
  },
  { type: 'append-response', from: 2, to: 1, term: 3, success: false, index: 4, hintIndex: 2, hintTerm: 1 },
  { type: 'heartbeat', from: 1, to: 2, term: 3, commit: 4, readSeq: 9 },
  { type: 'heartbeat-response', from: 2, to: 1, term: 3, readSeq: 9 },
  { type: 'snapshot', from: 1, to: 2, term: 3, snapshot: { index: 10, term: 3, confState: conf } },
  { type: 'timeout-now', from: 1, to: 2, term: 3 },
  { type: 'removed', from: 1, to: 5, term: 3 },
];

test('every well-formed message parses to an equal message', () => {
  for (const message of valid) assert.deepEqual(parseMessage(structuredClone(message)), message, message.type);
});

test('unknown fields are not carried into the parsed message', () => {
  const parsed = parseMessage({ ...valid[5], extra: 'x' });
  assert.equal('extra' in parsed, false);
});

test('malformed messages are refused with IMPULSE_ERR_RAFT_MESSAGE_INVALID', () => {
  const append = valid[2] as Extract<Message, { type: 'append' }>;
  const bad: [string, unknown][] = [
    ['not an object', 'hello'],
    ['null', null],
    ['unknown type', { ...valid[0], type: 'nope' }],
    ['negative term', { ...valid[0], term: -1 }],
    ['fractional index', { ...valid[3], index: 1.5 }],
    ['node 0', { ...valid[4], from: 0 }],
    ['to itself', { ...valid[4], to: 1 }],
    ['string boolean', { ...valid[1], granted: 'yes' }],
    ['gap in entries', { ...append, entries: [append.entries[1]] }],
    ['entry term above the message term', { ...append, entries: [{ ...append.entries[0]!, term: 9 }] }],
    ['entry terms going down', { ...append, prevLogTerm: 3, entries: [append.entries[0]] }],
    ['data not binary', { ...append, entries: [{ ...append.entries[0]!, data: [1, 2] }] }],
    ['unsorted voters', { ...valid[6], snapshot: { index: 10, term: 3, confState: { voters: [2, 1], learners: [] } } }],
    ['voter and learner', { ...valid[6], snapshot: { index: 10, term: 3, confState: { voters: [1, 2], learners: [2] } } }],
    ['unknown conf change', { ...append, entries: [append.entries[0], { ...append.entries[1]!, change: { type: 'boom', nodeId: 4, context: new Uint8Array() } }] }],
    ['huge unsafe integer', { ...valid[4], commit: 2 ** 60 }],
  ];
  for (const [what, body] of bad) {
    assert.throws(
      () => parseMessage(body),
      (error: unknown) => error instanceof RaftError && error.code === 'IMPULSE_ERR_RAFT_MESSAGE_INVALID',
      what,
    );
  }
});
