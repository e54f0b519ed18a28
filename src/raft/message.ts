/**
 * Validation of Raft messages that arrive from the network. The core asserts
 * its invariants on what it is given; a peer's bytes are not trusted to keep
 * them, so the runtime passes every inbound body through `parseMessage` first.
 *
 * `parseMessage(body)` returns a fresh `Message` holding only the known fields,
 * or throws `RaftError` IMPULSE_ERR_RAFT_MESSAGE_INVALID naming the first
 * problem: a wrong type, a negative, fractional or unsafe integer, an unknown
 * message or entry kind, entries that do not continue `prevLogIndex` one by
 * one, terms that go down or pass the message's term, a configuration whose
 * lists are unsorted, repeated or overlapping. Byte fields must be Uint8Array
 * (msgpack decodes binary to Buffer, which is one).
 */
import { RaftError, type ConfChange, type ConfState, type Entry, type Message, type MessageType, type SnapshotMeta } from './types.js';

const TYPES: ReadonlySet<MessageType> = new Set<MessageType>([
  'pre-vote',
  'vote',
  'pre-vote-response',
  'vote-response',
  'append',
  'append-response',
  'heartbeat',
  'heartbeat-response',
  'snapshot',
  'timeout-now',
  'removed',
]);
const CONF_CHANGE_TYPES: ReadonlySet<string> = new Set(['add-learner', 'add-voter', 'remove-node']);

/** Entries per append message accepted from a peer (the leader's own bound is far lower). */
export const MESSAGE_ENTRIES_MAX = 100_000;

class Invalid extends Error {}

function fail(what: string): never {
  throw new Invalid(what);
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${what} is not an object`);
  return value as Record<string, unknown>;
}

/** A safe integer >= min. */
function int(source: Record<string, unknown>, key: string, min = 0): number {
  const value = source[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) fail(`${key} is not an integer >= ${min}`);
  return value;
}

function bool(source: Record<string, unknown>, key: string): boolean {
  const value = source[key];
  if (typeof value !== 'boolean') fail(`${key} is not a boolean`);
  return value;
}

function bytes(source: Record<string, unknown>, key: string): Uint8Array {
  const value = source[key];
  if (!(value instanceof Uint8Array)) fail(`${key} is not binary`);
  return value;
}

function nodeList(value: unknown, what: string): number[] {
  if (!Array.isArray(value)) fail(`${what} is not a list`);
  const ids: number[] = [];
  for (const id of value) {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) fail(`${what} holds a bad node id`);
    if (ids.length > 0 && id <= ids[ids.length - 1]!) fail(`${what} is not sorted and unique`);
    ids.push(id);
  }
  return ids;
}

function confState(value: unknown): ConfState {
  const source = record(value, 'confState');
  const voters = nodeList(source.voters, 'voters');
  const learners = nodeList(source.learners, 'learners');
  if (learners.some((id) => voters.includes(id))) fail('a node is both voter and learner');
  return { voters, learners };
}

function snapshotMeta(value: unknown, messageTerm: number): SnapshotMeta {
  const source = record(value, 'snapshot');
  const meta = { index: int(source, 'index'), term: int(source, 'term'), confState: confState(source.confState) };
  if (meta.term > messageTerm) fail('snapshot term is past the message term');
  return meta;
}

function entry(value: unknown): Entry {
  const source = record(value, 'entry');
  const index = int(source, 'index', 1);
  const term = int(source, 'term', 1);
  if (source.kind === 'normal') return { kind: 'normal', index, term, data: bytes(source, 'data') };
  if (source.kind !== 'conf-change') fail('unknown entry kind');
  const change = record(source.change, 'change');
  if (typeof change.type !== 'string' || !CONF_CHANGE_TYPES.has(change.type)) fail('unknown conf change type');
  const parsed: ConfChange = { type: change.type as ConfChange['type'], nodeId: int(change, 'nodeId', 1), context: bytes(change, 'context') };
  return { kind: 'conf-change', index, term, change: parsed, confState: confState(source.confState) };
}

function entries(source: Record<string, unknown>, prevLogIndex: number, prevLogTerm: number, messageTerm: number): Entry[] {
  const list = source.entries;
  if (!Array.isArray(list)) fail('entries is not a list');
  if (list.length > MESSAGE_ENTRIES_MAX) fail(`more than ${MESSAGE_ENTRIES_MAX} entries`);
  const parsed: Entry[] = [];
  let previousTerm = prevLogTerm;
  for (const value of list) {
    const next = entry(value);
    if (next.index !== prevLogIndex + 1 + parsed.length) fail('entries do not continue prevLogIndex one by one');
    if (next.term < previousTerm || next.term > messageTerm) fail('entry terms go down or pass the message term');
    previousTerm = next.term;
    parsed.push(next);
  }
  return parsed;
}

function parse(body: unknown): Message {
  const m = record(body, 'message');
  const type = m.type;
  if (typeof type !== 'string' || !TYPES.has(type as MessageType)) fail('unknown message type');
  const from = int(m, 'from', 1);
  const to = int(m, 'to', 1);
  const term = int(m, 'term');
  if (from === to) fail('a message from a node to itself');
  // Each literal spells its fields out: an object spread here costs V8 ~50 times more.
  switch (type as MessageType) {
    case 'pre-vote':
    case 'vote':
      return { type: type as 'vote', from, to, term, lastLogIndex: int(m, 'lastLogIndex'), lastLogTerm: int(m, 'lastLogTerm'), transfer: bool(m, 'transfer') };
    case 'pre-vote-response':
    case 'vote-response':
      return { type: type as 'vote-response', from, to, term, granted: bool(m, 'granted') };
    case 'append': {
      const prevLogIndex = int(m, 'prevLogIndex');
      const prevLogTerm = int(m, 'prevLogTerm');
      if (prevLogTerm > term) fail('prevLogTerm is past the message term');
      return { type: 'append', from, to, term, prevLogIndex, prevLogTerm, entries: entries(m, prevLogIndex, prevLogTerm, term), commit: int(m, 'commit') };
    }
    case 'append-response':
      return { type: 'append-response', from, to, term, success: bool(m, 'success'), index: int(m, 'index'), hintIndex: int(m, 'hintIndex'), hintTerm: int(m, 'hintTerm') };
    case 'heartbeat':
      return { type: 'heartbeat', from, to, term, commit: int(m, 'commit'), readSeq: int(m, 'readSeq') };
    case 'heartbeat-response':
      return { type: 'heartbeat-response', from, to, term, readSeq: int(m, 'readSeq') };
    case 'snapshot':
      return { type: 'snapshot', from, to, term, snapshot: snapshotMeta(m.snapshot, term) };
    case 'timeout-now':
    case 'removed':
      return { type: type as 'removed', from, to, term };
  }
}

/** Validates a message body from the network; throws RaftError IMPULSE_ERR_RAFT_MESSAGE_INVALID. */
export function parseMessage(body: unknown): Message {
  try {
    return parse(body);
  } catch (error) {
    if (!(error instanceof Invalid)) throw error;
    throw new RaftError('IMPULSE_ERR_RAFT_MESSAGE_INVALID', `invalid Raft message: ${error.message}`);
  }
}
