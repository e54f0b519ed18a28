/**
 * The leaderless peer protocol: requests a coordinator sends to replicas, on
 * the RPC channel `leaderless` (src/transport/rpc.ts; TCP in production, the
 * simulator's network in `npm run sim`).
 *
 *   [0, key, context, value|null]   coordinate a write → the new set (bytes)
 *   [1, key, set]                   apply (merge) a set → true when it changed anything
 *   [2, owner, key, set]            hold a hint for `owner` → true
 *   [3, key]                        read → the stored set (bytes)
 *   [4]                             ping (failure detection) → [epoch, clientUrl] (the answerer's
 *                                   committed membership epoch and client URL: light gossip,
 *                                   membership-gossip.ts; a member before this answered `true`)
 *   [5, leafCount]                  anti-entropy: the leaf hashes over the keys both own → bytes
 *   [6, leafCount, leaves]          anti-entropy: (key, set hash) pairs of those leaves → [[key, hash], ...]
 *   [7, lower, lowerInclusive, upper, upperInclusive, reverse, limit]
 *                                   range: the stored keys in the range (tombstones too) → [[key, set], ...]
 *   [8, key, set]                   collect the tombstones `set` if that is exactly what is stored → true when removed
 *   [9, phase, epoch, [[id, peerUrl], ...]]   a step of a membership change (membership.ts) → true once done
 *   [10]                            the committed membership → [epoch, [[id, peerUrl], ...]]
 *
 * Keys, values and sets travel as bytes (sets in the canonical encoding of
 * codec.ts, contexts as the client header). A request is untrusted: every
 * field is validated against the limits before the replica sees it, and a
 * malformed one is answered IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID.
 *
 * `PeerLink` is the coordinator's side: the same calls for any node,
 * served by the local replica directly when the node is this one.
 */
import { ImpulseError, isImpulseError } from '../errors.js';
import type { RpcEndpoint } from '../transport/rpc.js';
import { decodeContext, decodeSiblingSet, encodeContext, encodeSiblingSet } from './codec.js';
import type { NodeId, SiblingSet, VersionVector } from './dvv.js';
import type { AntiEntropy } from './anti-entropy.js';
import { LEAF_COUNT_MAX } from './anti-entropy.js';
import type { Replica } from './replica.js';
import { type MemberAddress, type MembershipPhase, MEMBERSHIP_PHASES, checkMembers } from './membership.js';
import type { RangeOptions } from '../storage/engine.js';

/** Runs a membership step this node was sent (the node's side of membership.ts). */
export type MembershipStepHandler = (phase: MembershipPhase, epoch: number, members: readonly MemberAddress[]) => Promise<void>;

/** What a ping answers: the answerer's committed membership epoch and its client URL ('' when it has none). */
export interface PeerStatus {
  readonly epoch: number;
  readonly clientUrl: string;
}

/** A committed membership as a peer sends it. */
export interface CommittedMembership {
  readonly epoch: number;
  readonly members: readonly MemberAddress[];
}

/** The node's membership as the peer protocol serves it. */
export interface MembershipService {
  readonly step: MembershipStepHandler;
  /** This node's ping answer. */
  status(): PeerStatus;
  /** This node's committed membership (a member that missed a commit pulls it). */
  committed(): CommittedMembership;
}

/** Longest client URL a peer may announce. */
const CLIENT_URL_BYTES_MAX = 300;

export const LEADERLESS_CHANNEL = 'leaderless';

const COORDINATE = 0;
const APPLY = 1;
const HINT = 2;
const READ = 3;
const PING = 4;
const TREE_LEAVES = 5;
const LEAF_ENTRIES = 6;
const SCAN = 7;
const REAP = 8;
const MEMBERSHIP = 9;
const COMMITTED_MEMBERSHIP = 10;
/** Most keys one range request may ask for. */
export const SCAN_LIMIT_MAX = 10_000;
/** Most leaves one request may name. */
const LEAVES_PER_REQUEST_MAX = 4096;

export interface PeerLimits {
  readonly keyBytesMax: number;
  readonly valueBytesMax: number;
}

/** The part of `RpcEndpoint` the link uses. */
export type RpcCaller = Pick<RpcEndpoint, 'callAsync'>;

export class PeerLink {
  constructor(
    private readonly self: NodeId,
    private readonly replica: Replica,
    private readonly rpc: RpcCaller,
    private readonly limits: PeerLimits,
  ) {}

  async coordinate(to: NodeId, key: Buffer, context: VersionVector, value: Buffer | null, timeoutMs: number): Promise<SiblingSet> {
    if (to === this.self) return this.replica.coordinate(key, context, value);
    return this.set(await this.rpc.callAsync(to, LEADERLESS_CHANNEL, [COORDINATE, key, encodeContext(context), value], timeoutMs), to);
  }

  async apply(to: NodeId, key: Buffer, set: SiblingSet, timeoutMs: number): Promise<boolean> {
    if (to === this.self) return (await this.replica.apply(key, set)).changed;
    return (await this.rpc.callAsync(to, LEADERLESS_CHANNEL, [APPLY, key, encodeSiblingSet(set)], timeoutMs)) === true;
  }

  async hint(to: NodeId, owner: NodeId, key: Buffer, set: SiblingSet, timeoutMs: number): Promise<void> {
    if (to === this.self) return this.replica.storeHint(owner, key, set);
    await this.rpc.callAsync(to, LEADERLESS_CHANNEL, [HINT, owner, key, encodeSiblingSet(set)], timeoutMs);
  }

  async read(to: NodeId, key: Buffer, timeoutMs: number): Promise<SiblingSet> {
    if (to === this.self) return this.replica.read(key);
    return this.set(await this.rpc.callAsync(to, LEADERLESS_CHANNEL, [READ, key], timeoutMs), to);
  }

  /** Asks `to` to remove `key` if it stores exactly the tombstones `set` (Replica.reap); true when it did. */
  async reap(to: NodeId, key: Buffer, set: SiblingSet, timeoutMs: number): Promise<boolean> {
    if (to === this.self) return this.replica.reap(key, set);
    return (await this.rpc.callAsync(to, LEADERLESS_CHANNEL, [REAP, key, encodeSiblingSet(set)], timeoutMs)) === true;
  }

  /** Sends one step of a membership change to `to` (not this node: the claimant runs its own step itself). */
  async membershipStep(to: NodeId, phase: MembershipPhase, epoch: number, members: readonly MemberAddress[], timeoutMs: number): Promise<void> {
    await this.rpc.callAsync(to, LEADERLESS_CHANNEL, [MEMBERSHIP, phase, epoch, members.map((member) => [member.id, member.peerUrl])], timeoutMs);
  }

  /**
   * A heartbeat; resolves with what `to` said of itself, or undefined when it
   * did not say (a member of an earlier version answers `true`) or said
   * something malformed (ignored: a ping only proves the peer is alive).
   */
  async ping(to: NodeId, timeoutMs: number): Promise<PeerStatus | undefined> {
    if (to === this.self) return undefined;
    const answer = await this.rpc.callAsync(to, LEADERLESS_CHANNEL, [PING], timeoutMs);
    if (!Array.isArray(answer) || answer.length !== 2) return undefined;
    const [epoch, clientUrl] = answer as unknown[];
    if (!validEpoch(epoch) || typeof clientUrl !== 'string' || clientUrl.length > CLIENT_URL_BYTES_MAX) return undefined;
    return { epoch, clientUrl };
  }

  /** The membership `to` has committed. */
  async committedMembership(to: NodeId, timeoutMs: number): Promise<CommittedMembership> {
    const answer = await this.rpc.callAsync(to, LEADERLESS_CHANNEL, [COMMITTED_MEMBERSHIP], timeoutMs);
    const [epoch, members] = Array.isArray(answer) && answer.length === 2 ? (answer as unknown[]) : [];
    if (!validEpoch(epoch) || !Array.isArray(members)) throw new ImpulseError('IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID', `node ${to} answered a membership request with something that is not a membership`);
    return { epoch, members: checkMembers(members.map(memberFromWire)) };
  }

  async treeLeaves(to: NodeId, leafCount: number, timeoutMs: number): Promise<Buffer> {
    const response = await this.rpc.callAsync(to, LEADERLESS_CHANNEL, [TREE_LEAVES, leafCount], timeoutMs);
    if (!(response instanceof Uint8Array) || response.length !== leafCount * 32) throw new ImpulseError('IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID', `node ${to} answered a tree request with something that is not ${leafCount} leaf hashes`);
    return asBuffer(response);
  }

  async leafEntries(to: NodeId, leafCount: number, leaves: readonly number[], timeoutMs: number): Promise<[Buffer, Buffer][]> {
    const response = await this.rpc.callAsync(to, LEADERLESS_CHANNEL, [LEAF_ENTRIES, leafCount, leaves], timeoutMs);
    const valid =
      Array.isArray(response) &&
      response.every((entry: unknown) => Array.isArray(entry) && entry.length === 2 && entry[0] instanceof Uint8Array && entry[0].length <= this.limits.keyBytesMax && entry[1] instanceof Uint8Array && entry[1].length === 32);
    if (!valid) throw new ImpulseError('IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID', `node ${to} answered a leaf request with something that is not (key, hash) pairs`);
    return (response as [Uint8Array, Uint8Array][]).map(([key, hash]) => [asBuffer(key), asBuffer(hash)]);
  }

  /** The keys `to` stores in the range, with their sets (at most `bounds.limit`). */
  async scan(to: NodeId, bounds: RangeOptions, timeoutMs: number): Promise<{ key: Buffer; set: SiblingSet }[]> {
    if (to === this.self) return this.replica.scan(bounds);
    const lower = bounds.gte ?? bounds.gt ?? null;
    const upper = bounds.lt ?? bounds.lte ?? null;
    const request = [SCAN, lower, bounds.gte !== undefined, upper, bounds.lte !== undefined, bounds.reverse === true, bounds.limit];
    const response = await this.rpc.callAsync(to, LEADERLESS_CHANNEL, request, timeoutMs);
    if (!Array.isArray(response) || response.length > bounds.limit) throw new ImpulseError('IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID', `node ${to} answered a range request with something that is not a key list`);
    return response.map((entry: unknown) => {
      if (!Array.isArray(entry) || entry.length !== 2 || !(entry[0] instanceof Uint8Array)) throw new ImpulseError('IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID', `node ${to} answered a range request with a malformed entry`);
      return { key: asBuffer(entry[0]), set: this.set(entry[1], to) };
    });
  }

  private set(response: unknown, from: NodeId): SiblingSet {
    if (!(response instanceof Uint8Array)) throw new ImpulseError('IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID', `node ${from} answered with something that is not a sibling set`);
    return decodeSiblingSet(asBuffer(response), 0, `a set from node ${from}`, 'IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID', this.limits.valueBytesMax);
  }
}

/**
 * Serves the peer protocol for `replica` on `rpc`. Malformed requests are
 * answered IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID; a replica's own failure
 * (an I/O error, too many siblings) is answered with its error.
 */
export function serveReplica(rpc: Pick<RpcEndpoint, 'serve'>, replica: Replica, limits: PeerLimits, antiEntropy: Pick<AntiEntropy, 'leafHashes' | 'leafEntries'>, membership: MembershipService): void {
  rpc.serve(LEADERLESS_CHANNEL, (from, body, reply) => {
    let work: Promise<unknown>;
    try {
      work = body instanceof Array && (body[0] === MEMBERSHIP || body[0] === COMMITTED_MEMBERSHIP || body[0] === PING) ? membershipRequest(body, membership, from) : handle(replica, antiEntropy, body, limits, from);
    } catch (error) {
      return reply(isImpulseError(error) ? error : new ImpulseError('IMPULSE_ERR_INTERNAL', 'leaderless request failed'));
    }
    work.then(
      (response) => reply(null, response),
      (error: unknown) => reply(isImpulseError(error) ? error : new ImpulseError('IMPULSE_ERR_INTERNAL', 'the replica failed')),
    );
  });
}

/** Validates `body` and runs it on `replica`; throws synchronously when it is malformed. */
function handle(replica: Replica, antiEntropy: Pick<AntiEntropy, 'leafHashes' | 'leafEntries'>, body: unknown, limits: PeerLimits, from: NodeId): Promise<unknown> {
  const invalid = (why: string): ImpulseError => new ImpulseError('IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID', `a leaderless request from node ${from}: ${why}`);
  if (!Array.isArray(body) || body.length === 0) throw invalid('not a request');
  const key = (at: number): Buffer => {
    const raw: unknown = body[at];
    if (!(raw instanceof Uint8Array) || raw.length === 0 || raw.length > limits.keyBytesMax) throw invalid('bad key');
    return asBuffer(raw);
  };
  const set = (at: number): SiblingSet => {
    const raw: unknown = body[at];
    if (!(raw instanceof Uint8Array)) throw invalid('bad set');
    return decodeSiblingSet(asBuffer(raw), 0, `a set from node ${from}`, 'IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID', limits.valueBytesMax);
  };
  switch (body[0]) {
    case COORDINATE: {
      const [, , context, value] = body as unknown[];
      if (body.length !== 4 || typeof context !== 'string' || !(value === null || value instanceof Uint8Array)) throw invalid('bad coordinate request');
      if (value !== null && value.length > limits.valueBytesMax) throw invalid('value over the limit');
      return replica.coordinate(key(1), decodeContext(context), value === null ? null : Buffer.from(value)).then((result) => encodeSiblingSet(result));
    }
    case APPLY:
      if (body.length !== 3) throw invalid('bad apply request');
      return replica.apply(key(1), set(2)).then((result) => result.changed);
    case HINT: {
      const owner: unknown = body[1];
      if (body.length !== 4 || typeof owner !== 'number' || !Number.isSafeInteger(owner) || owner < 1) throw invalid('bad hint request');
      return replica.storeHint(owner, key(2), set(3)).then(() => true);
    }
    case READ:
      if (body.length !== 2) throw invalid('bad read request');
      return replica.read(key(1)).then((result) => encodeSiblingSet(result));
    case TREE_LEAVES: {
      const leafCount: unknown = body[1];
      if (body.length !== 2 || !validLeafCount(leafCount)) throw invalid('bad tree request');
      return antiEntropy.leafHashes(from, leafCount);
    }
    case LEAF_ENTRIES: {
      const [, leafCount, leaves] = body as unknown[];
      if (body.length !== 3 || !validLeafCount(leafCount) || !Array.isArray(leaves) || leaves.length > LEAVES_PER_REQUEST_MAX) throw invalid('bad leaf request');
      if (!leaves.every((leaf: unknown) => Number.isInteger(leaf) && (leaf as number) >= 0 && (leaf as number) < leafCount)) throw invalid('bad leaf index');
      return antiEntropy.leafEntries(from, leafCount, leaves as number[]);
    }
    case REAP:
      if (body.length !== 3) throw invalid('bad reap request');
      return replica.reap(key(1), set(2));
    case SCAN:
      return replica.scan(scanBounds(body, limits, invalid)).then((entries) => entries.map(({ key, set }) => [key, encodeSiblingSet(set)]));
    default:
      throw invalid(`unknown request kind ${String(body[0]).slice(0, 16)}`);
  }
}

/** Validates a ping, a membership step or a membership request and answers it; throws synchronously when it is malformed. */
function membershipRequest(body: unknown[], membership: MembershipService, from: NodeId): Promise<unknown> {
  const bad = (what: string): ImpulseError => new ImpulseError('IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID', `a leaderless request from node ${from}: bad ${what}`);
  if (body[0] === PING) {
    const { epoch, clientUrl } = membership.status();
    return Promise.resolve([epoch, clientUrl]);
  }
  if (body[0] === COMMITTED_MEMBERSHIP) {
    if (body.length !== 1) throw bad('membership request');
    const { epoch, members } = membership.committed();
    return Promise.resolve([epoch, members.map((member) => [member.id, member.peerUrl])]);
  }
  const [, phase, epoch, members] = body;
  if (body.length !== 4 || !(MEMBERSHIP_PHASES as readonly unknown[]).includes(phase) || !validEpoch(epoch) || epoch < 1 || !Array.isArray(members)) throw bad('membership step');
  return membership.step(phase as MembershipPhase, epoch, checkMembers(members.map(memberFromWire))).then(() => true);
}

/** [id, peerUrl] as sent; `checkMembers` validates the fields. */
function memberFromWire(member: unknown): unknown {
  return Array.isArray(member) ? { id: member[0] as unknown, peerUrl: member[1] as unknown } : undefined;
}

function validEpoch(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** The range of a scan request, validated. */
function scanBounds(body: unknown[], limits: PeerLimits, invalid: (why: string) => ImpulseError): RangeOptions {
  const [, lower, lowerInclusive, upper, upperInclusive, reverse, limit] = body;
  const bound = (value: unknown): value is Uint8Array | null => value === null || (value instanceof Uint8Array && value.length <= limits.keyBytesMax);
  if (body.length !== 7 || !bound(lower) || !bound(upper) || typeof lowerInclusive !== 'boolean' || typeof upperInclusive !== 'boolean' || typeof reverse !== 'boolean') throw invalid('bad range request');
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > SCAN_LIMIT_MAX) throw invalid('bad range limit');
  return {
    ...(lower === null ? {} : lowerInclusive ? { gte: asBuffer(lower) } : { gt: asBuffer(lower) }),
    ...(upper === null ? {} : upperInclusive ? { lte: asBuffer(upper) } : { lt: asBuffer(upper) }),
    reverse,
    limit,
  };
}

function validLeafCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= LEAF_COUNT_MAX;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}
