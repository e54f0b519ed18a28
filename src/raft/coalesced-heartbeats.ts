/**
 * Coalesced heartbeats: the heartbeats (and heartbeat responses) of every Raft
 * group a node hosts travel to each peer node as ONE message per heartbeat
 * interval (responses: per run of work), however many groups the two nodes
 * share (CockroachDB's coalesced
 * heartbeats). The core does not know: it emits its `heartbeat` and
 * `heartbeat-response` messages as always, the host hands each one to
 * `offer` instead of the transport, and the receiving host unpacks the
 * coalesced body back into the very same messages and steps each into its
 * group (`decodeCoalescedHeartbeats`). So every field the core's heartbeat
 * semantics rest on travels unchanged, per group and per follower: the term,
 * the commit index the leader chose (`min(match, commit)`, bounded by what
 * that follower is known to hold) and the read-confirmation sequence
 * (`readSeq`, which the response echoes for ReadIndex).
 *
 *   const coalescer = new HeartbeatCoalescer({ send: (node, body) => transport.send(node, { channel: HEARTBEATS_CHANNEL, group: 0, body }),
 *                                              defer: queueMicrotask, nodeOf: nodeOfRaftId });
 *   if (!coalescer.offer(group, message)) transport.send(...);    // the driver's send, per Raft message
 *   coalescer.holdWhile(() => tickEveryGroup());  if (ticks % heartbeatTicks === 0) coalescer.flush();   // the host's timer
 *   for (const { group, message } of decodeCoalescedHeartbeats(body)) groups.get(group)?.receive(from, message);
 *
 * When: the heartbeats the groups' ticks produce wait for the host's
 * heartbeat boundary — the host ticks every group inside `holdWhile`, and
 * every heartbeat interval calls `flush()` — so one message per peer node
 * carries every group's heartbeats of that interval, whatever each group's
 * phase (CockroachDB flushes on a timer the same way). Everything offered
 * outside `holdWhile` (a response, a read's confirmation round) schedules one
 * `flush` through `defer`: production, a microtask, so what one inbound frame
 * or request produced goes together and no timer delays a read; the
 * simulator, an event at the same virtual time. A destination whose batch
 * reaches `heartbeatsPerMessageMax` is sent at once: memory and message size
 * stay bounded. A held heartbeat waits at most one heartbeat interval, far
 * inside an election timeout.
 *
 * Nothing is merged or dropped: a batch carries every message offered (the
 * heartbeats, then the responses, each in the order offered), so coalescing
 * changes how messages travel, never which. It does change their order
 * against messages sent straight to the transport: Raft tolerates any order,
 * but a host protocol that needs a group's heartbeat to arrive before its
 * own message (the quiesce notice, src/cluster/node-host.ts) must `flush()`
 * first.
 */
import { RaftError, type Message, type NodeId } from './types.js';

/** The channel of coalesced heartbeats (group 0; body: `CoalescedHeartbeatsBody`). */
export const HEARTBEATS_CHANNEL = 'heartbeats';

/** Heartbeats plus responses in one coalesced message, at most (a bigger batch is sent as several). */
export const COALESCED_HEARTBEATS_MAX = 4096;

export type Heartbeat = Extract<Message, { type: 'heartbeat' }>;
export type HeartbeatResponse = Extract<Message, { type: 'heartbeat-response' }>;

/** One group's heartbeat or heartbeat response, as carried in a coalesced message. */
export interface GroupHeartbeat {
  readonly group: number;
  readonly message: Heartbeat | HeartbeatResponse;
}

/**
 * The wire body: `[heartbeats, responses]`, each a flat list of integers —
 * 6 per heartbeat (group, from, to, term, commit, readSeq), 5 per response
 * (group, from, to, term, readSeq). `from` and `to` are Raft ids (a shard
 * replica's carries its generation, src/shard/replica-id.ts).
 */
export type CoalescedHeartbeatsBody = readonly [readonly number[], readonly number[]];

const HEARTBEAT_FIELDS = 6;
const RESPONSE_FIELDS = 5;

export interface HeartbeatCoalescerOptions {
  /** Sends one coalesced body to node `to` (the host's transport, channel `HEARTBEATS_CHANNEL`). */
  send(to: NodeId, body: CoalescedHeartbeatsBody): void;
  /** Runs `flush` once, after the current run of work (a microtask; an event at the same virtual time). */
  defer(flush: () => void): void;
  /** The node a Raft id lives on (shard replicas' ids carry their node). */
  nodeOf(raftId: NodeId): NodeId;
  /** Default `COALESCED_HEARTBEATS_MAX`. */
  readonly heartbeatsPerMessageMax?: number;
}

/** Counters of one node's coalesced heartbeats: messages on the wire, and the group heartbeats and responses they carried. */
export interface CoalescedHeartbeatStats {
  messagesSent: number;
  heartbeatsSent: number;
  responsesSent: number;
  messagesReceived: number;
  heartbeatsReceived: number;
  responsesReceived: number;
  /** Coalesced messages refused whole as malformed (`decodeCoalescedHeartbeats`). */
  messagesInvalid: number;
}

interface Batch {
  heartbeats: number[];
  responses: number[];
}

/** Heartbeats plus responses in `batch`. */
function records(batch: Batch): number {
  return heartbeatsIn([batch.heartbeats, batch.responses]);
}

/** Heartbeats plus responses a well-formed coalesced body carries. */
export function heartbeatsIn(body: CoalescedHeartbeatsBody): number {
  return body[0].length / HEARTBEAT_FIELDS + body[1].length / RESPONSE_FIELDS;
}

/** Gathers the heartbeats and responses of every hosted group per destination node; see the file comment. */
export class HeartbeatCoalescer {
  readonly stats: CoalescedHeartbeatStats = { messagesSent: 0, heartbeatsSent: 0, responsesSent: 0, messagesReceived: 0, heartbeatsReceived: 0, responsesReceived: 0, messagesInvalid: 0 };
  /** Offered inside `holdWhile`, per destination node: sent by `flush()` only. */
  private readonly held = new Map<NodeId, Batch>();
  /** Offered outside it: sent by the deferred flush (or an earlier `flush()`). */
  private readonly loose = new Map<NodeId, Batch>();
  private flushScheduled = false;
  private holding = false;
  private readonly perMessageMax: number;

  constructor(private readonly options: HeartbeatCoalescerOptions) {
    this.perMessageMax = options.heartbeatsPerMessageMax ?? COALESCED_HEARTBEATS_MAX;
  }

  /**
   * Takes `message` of `group` into the batch of its destination node when it
   * is a heartbeat or a heartbeat response (true); any other message is the
   * caller's to send as usual (false).
   */
  offer(group: number, message: Message): boolean {
    if (message.type !== 'heartbeat' && message.type !== 'heartbeat-response') return false;
    const to = this.options.nodeOf(message.to);
    const batches = this.holding ? this.held : this.loose;
    let batch = batches.get(to);
    if (batch === undefined) {
      batch = { heartbeats: [], responses: [] };
      batches.set(to, batch);
    }
    if (message.type === 'heartbeat') batch.heartbeats.push(group, message.from, message.to, message.term, message.commit, message.readSeq);
    else batch.responses.push(group, message.from, message.to, message.term, message.readSeq);
    if (records(batch) >= this.perMessageMax) {
      batches.delete(to);
      this.sendBatch(to, batch);
    } else if (!this.holding && !this.flushScheduled) {
      this.flushScheduled = true;
      this.options.defer(() => this.flushLoose());
    }
    return true;
  }

  /** Runs `work` (the host's tick of every group); what it offers waits for the next `flush()`, whatever else goes meanwhile. */
  holdWhile(work: () => void): void {
    const outer = this.holding;
    this.holding = true;
    try {
      work();
    } finally {
      this.holding = outer;
    }
  }

  /** The heartbeat boundary: sends every destination's batch, held and not, as one message each; returns the nodes sent to. */
  flush(): ReadonlySet<NodeId> {
    const sentTo = new Set([...this.held.keys(), ...this.loose.keys()]);
    for (const to of sentTo) {
      const held = this.held.get(to);
      const loose = this.loose.get(to);
      // Never past the bound: two batches that would be are sent apart.
      if (held !== undefined && loose !== undefined && records(held) + records(loose) <= this.perMessageMax) {
        this.sendBatch(to, { heartbeats: [...held.heartbeats, ...loose.heartbeats], responses: [...held.responses, ...loose.responses] });
        continue;
      }
      if (held !== undefined) this.sendBatch(to, held);
      if (loose !== undefined) this.sendBatch(to, loose);
    }
    this.held.clear();
    this.loose.clear();
    return sentTo;
  }

  /** The deferred flush: what was offered outside `holdWhile`. */
  private flushLoose(): void {
    this.flushScheduled = false;
    const batches = [...this.loose];
    this.loose.clear();
    for (const [to, batch] of batches) this.sendBatch(to, batch);
  }

  /** Unpacks a coalesced body received from a peer (counted); throws RaftError IMPULSE_ERR_RAFT_MESSAGE_INVALID, counted, for a malformed one. */
  receive(body: unknown): GroupHeartbeat[] {
    let unpacked: GroupHeartbeat[];
    try {
      unpacked = decodeCoalescedHeartbeats(body, this.perMessageMax);
    } catch (error) {
      this.stats.messagesInvalid++;
      throw error;
    }
    this.stats.messagesReceived++;
    for (const { message } of unpacked) {
      if (message.type === 'heartbeat') this.stats.heartbeatsReceived++;
      else this.stats.responsesReceived++;
    }
    return unpacked;
  }

  private sendBatch(to: NodeId, batch: Batch): void {
    if (batch.heartbeats.length === 0 && batch.responses.length === 0) return;
    this.stats.messagesSent++;
    this.stats.heartbeatsSent += batch.heartbeats.length / HEARTBEAT_FIELDS;
    this.stats.responsesSent += batch.responses.length / RESPONSE_FIELDS;
    this.options.send(to, [batch.heartbeats, batch.responses]);
  }
}

function invalid(what: string): never {
  throw new RaftError('IMPULSE_ERR_RAFT_MESSAGE_INVALID', `invalid coalesced heartbeats: ${what}`);
}

function integers(value: unknown, fields: number, what: string): readonly number[] {
  if (!Array.isArray(value)) invalid(`${what} is not a list`);
  if (value.length % fields !== 0) invalid(`${what} has ${value.length} numbers, not a multiple of ${fields}`);
  for (const item of value) if (typeof item !== 'number' || !Number.isSafeInteger(item) || item < 0) invalid(`${what} holds something other than a non-negative integer`);
  return value as number[];
}

/**
 * The group heartbeats and responses of a coalesced body, in order. Checks
 * the shape only (two lists of non-negative integers, whole records, at most
 * `heartbeatsMax` records); each message is then validated like any Raft
 * message by the driver it is stepped into (`parseMessage`). Throws RaftError
 * IMPULSE_ERR_RAFT_MESSAGE_INVALID: a malformed body is refused whole.
 */
export function decodeCoalescedHeartbeats(body: unknown, heartbeatsMax = COALESCED_HEARTBEATS_MAX): GroupHeartbeat[] {
  if (!Array.isArray(body) || body.length !== 2) invalid('the body is not [heartbeats, responses]');
  const heartbeats = integers(body[0], HEARTBEAT_FIELDS, 'heartbeats');
  const responses = integers(body[1], RESPONSE_FIELDS, 'responses');
  if (heartbeatsIn([heartbeats, responses]) > heartbeatsMax) invalid(`more than ${heartbeatsMax} heartbeats and responses`);
  const unpacked: GroupHeartbeat[] = [];
  for (let i = 0; i < heartbeats.length; i += HEARTBEAT_FIELDS) {
    const [group, from, to, term, commit, readSeq] = heartbeats.slice(i, i + HEARTBEAT_FIELDS) as [number, number, number, number, number, number];
    unpacked.push({ group, message: { type: 'heartbeat', from, to, term, commit, readSeq } });
  }
  for (let i = 0; i < responses.length; i += RESPONSE_FIELDS) {
    const [group, from, to, term, readSeq] = responses.slice(i, i + RESPONSE_FIELDS) as [number, number, number, number, number];
    unpacked.push({ group, message: { type: 'heartbeat-response', from, to, term, readSeq } });
  }
  return unpacked;
}
