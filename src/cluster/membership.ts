/**
 * The membership of a Raft group as the state machine keeps it: who the
 * voters and learners are (the core's `ConfState`), where each member listens
 * for peers and for clients, and which ids were removed. It is replicated
 * state: it changes only by applying log entries (conf changes, and the
 * "publish" cluster command a member sends once it knows its client URL), and
 * it is stored in the key-value layer's cluster metadata (name `membership`)
 * in the same engine batch as the applied index, so it travels in snapshots
 * and survives restarts exactly like the data.
 *
 * Everything here is pure: `applyConfChange` and `applyPublish` return a new
 * value; encoding is canonical JSON (members and removed ids sorted), so every
 * replica writes the same bytes.
 */
import { ImpulseError } from '../errors.js';
import type { ConfChange, ConfState, NodeId } from '../raft/types.js';
import { parseAddress } from '../transport/socket-factory.js';

/** The cluster metadata name the membership is stored under (src/kv: `0x01 m/membership`). */
export const MEMBERSHIP_META_NAME = 'membership';

/** Removed members whose peer address is kept (so their messages can still be answered `removed`); older ones keep only their id. */
export const REMOVED_ADDRESSES_MAX = 64;

const URL_BYTES_MAX = 512;

export interface MemberInfo {
  readonly id: NodeId;
  /** "host:port" where peers reach it; null when its conf change carried no valid address. */
  readonly peerUrl: string | null;
  /** The URL clients (and forwarding members) use; null until the member published it. */
  readonly clientUrl: string | null;
}

export interface RemovedMember {
  readonly id: NodeId;
  /** Kept for the newest REMOVED_ADDRESSES_MAX removals, null before. */
  readonly peerUrl: string | null;
}

export interface Membership {
  readonly confState: ConfState;
  /** Every voter and learner of `confState`, by id. */
  readonly members: ReadonlyMap<NodeId, MemberInfo>;
  /** Ids removed by committed configurations, oldest first. Never reused. */
  readonly removed: readonly RemovedMember[];
}

export const EMPTY_MEMBERSHIP: Membership = { confState: { voters: [], learners: [] }, members: new Map(), removed: [] };

/** What a conf change entry carries about its member (the core's opaque `context`). */
export interface MemberContext {
  readonly peerUrl: string;
  readonly clientUrl: string | null;
}

/** The membership of a new cluster: `voters` with their peer addresses, no client URLs yet. */
export function initialMembership(voters: ReadonlyMap<NodeId, string>): Membership {
  const ids = [...voters.keys()].sort((a, b) => a - b);
  const members = new Map<NodeId, MemberInfo>(ids.map((id) => [id, { id, peerUrl: voters.get(id)!, clientUrl: null }]));
  return { confState: { voters: ids, learners: [] }, members, removed: [] };
}

/**
 * The membership after the conf change `change`, whose resulting configuration
 * is `confState` (from the entry: the core's word is final). An added member's
 * addresses come from the context; a promoted learner keeps its own.
 */
export function applyConfChange(membership: Membership, change: ConfChange, confState: ConfState): Membership {
  const members = new Map(membership.members);
  let removed = membership.removed;
  if (change.type === 'remove-node') {
    const gone = members.get(change.nodeId);
    members.delete(change.nodeId);
    if (!removed.some((member) => member.id === change.nodeId)) removed = keepNewestAddresses([...removed, { id: change.nodeId, peerUrl: gone?.peerUrl ?? null }]);
  } else {
    const context = decodeMemberContext(change.context);
    const existing = members.get(change.nodeId);
    members.set(change.nodeId, {
      id: change.nodeId,
      peerUrl: context?.peerUrl ?? existing?.peerUrl ?? null,
      clientUrl: context?.clientUrl ?? existing?.clientUrl ?? null,
    });
  }
  const inConfig = new Set([...confState.voters, ...confState.learners]);
  for (const id of [...members.keys()]) if (!inConfig.has(id)) members.delete(id);
  for (const id of inConfig) if (!members.has(id)) members.set(id, { id, peerUrl: null, clientUrl: null });
  return { confState: { voters: [...confState.voters], learners: [...confState.learners] }, members, removed };
}

/** The membership with member `id`'s client URL set; unchanged when `id` is not a member. */
export function applyPublish(membership: Membership, id: NodeId, clientUrl: string): Membership {
  const member = membership.members.get(id);
  if (member === undefined || member.clientUrl === clientUrl) return membership;
  const members = new Map(membership.members);
  members.set(id, { ...member, clientUrl });
  return { ...membership, members };
}

function keepNewestAddresses(removed: RemovedMember[]): RemovedMember[] {
  const forget = removed.length - REMOVED_ADDRESSES_MAX;
  return forget <= 0 ? removed : removed.map((member, index) => (index < forget ? { id: member.id, peerUrl: null } : member));
}

/** Peer addresses to keep in the transport's address book: members, and removed members whose address is known. */
export function peerAddresses(membership: Membership): Map<NodeId, string> {
  const book = new Map<NodeId, string>();
  for (const member of membership.removed) if (member.peerUrl !== null) book.set(member.id, member.peerUrl);
  for (const member of membership.members.values()) if (member.peerUrl !== null) book.set(member.id, member.peerUrl);
  return book;
}

export function isVoter(membership: Membership, id: NodeId): boolean {
  return membership.confState.voters.includes(id);
}

// ---------------------------------------------------------------- encodings

/** Canonical JSON bytes: sorted ids, fixed key order. */
export function encodeMembership(membership: Membership): Uint8Array {
  const members = [...membership.members.values()].sort((a, b) => a.id - b.id).map((member) => [member.id, member.peerUrl, member.clientUrl]);
  const document = {
    v: 1,
    voters: [...membership.confState.voters].sort((a, b) => a - b),
    learners: [...membership.confState.learners].sort((a, b) => a - b),
    members,
    removed: membership.removed.map((member) => [member.id, member.peerUrl]),
  };
  return Buffer.from(JSON.stringify(document), 'utf8');
}

/** Decodes stored membership bytes; IMPULSE_ERR_ENGINE_CORRUPTION when they are not a membership document. */
export function decodeMembership(bytes: Uint8Array): Membership {
  let document: unknown;
  try {
    document = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw corrupt('it is not JSON');
  }
  if (typeof document !== 'object' || document === null) throw corrupt('it is not an object');
  const { v, voters, learners, members, removed } = document as Record<string, unknown>;
  if (v !== 1) throw corrupt(`its version is ${String(v)}, this impulse reads 1`);
  const voterIds = nodeIds(voters, 'voters');
  const learnerIds = nodeIds(learners, 'learners');
  if (!Array.isArray(members) || !Array.isArray(removed)) throw corrupt('members or removed is not a list');
  const byId = new Map<NodeId, MemberInfo>();
  for (const entry of members) {
    if (!Array.isArray(entry) || entry.length !== 3 || !isNodeId(entry[0]) || !isUrlOrNull(entry[1]) || !isUrlOrNull(entry[2])) throw corrupt('a member is not [id, peerUrl, clientUrl]');
    byId.set(entry[0], { id: entry[0], peerUrl: entry[1], clientUrl: entry[2] });
  }
  const removedMembers = removed.map((entry): RemovedMember => {
    if (!Array.isArray(entry) || entry.length !== 2 || !isNodeId(entry[0]) || !isUrlOrNull(entry[1])) throw corrupt('a removed member is not [id, peerUrl]');
    return { id: entry[0], peerUrl: entry[1] };
  });
  return { confState: { voters: voterIds, learners: learnerIds }, members: byId, removed: removedMembers };
}

/** The context of an add-learner / add-voter change. */
export function encodeMemberContext(context: MemberContext): Uint8Array {
  return Buffer.from(JSON.stringify({ peerUrl: context.peerUrl, clientUrl: context.clientUrl }), 'utf8');
}

/** The member context in a conf change, or undefined when it carries none that is valid (an empty context, another version's). */
export function decodeMemberContext(bytes: Uint8Array): MemberContext | undefined {
  if (bytes.length === 0 || bytes.length > 4 * URL_BYTES_MAX) return undefined;
  try {
    const { peerUrl, clientUrl } = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
    if (typeof peerUrl !== 'string' || !isUrlOrNull(peerUrl) || !isUrlOrNull(clientUrl ?? null)) return undefined;
    return { peerUrl, clientUrl: (clientUrl as string | null | undefined) ?? null };
  } catch {
    return undefined;
  }
}

/**
 * Checks an address given by an operator (`member add`): a peer address
 * "host:port" and an optional client URL "http(s)://host:port". Throws
 * IMPULSE_ERR_CONFIG_INVALID naming what is wrong.
 */
export function validateMemberAddresses(peerUrl: unknown, clientUrl: unknown): MemberContext {
  if (typeof peerUrl !== 'string' || peerUrl.length === 0 || peerUrl.length > URL_BYTES_MAX) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'peerUrl must be "host:port"');
  parseAddress(peerUrl); // IMPULSE_ERR_CONFIG_INVALID naming the problem
  if (clientUrl !== undefined && clientUrl !== null && !isClientUrl(clientUrl)) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'clientUrl must be a URL like http://10.0.0.4:7070');
  return { peerUrl, clientUrl: (clientUrl as string | undefined) ?? null };
}

export function isClientUrl(value: unknown): value is string {
  return typeof value === 'string' && value.length <= URL_BYTES_MAX && /^https?:\/\/[^/\s]+$/.test(value);
}

function nodeIds(value: unknown, what: string): NodeId[] {
  if (!Array.isArray(value) || !value.every(isNodeId)) throw corrupt(`${what} is not a list of node ids`);
  return value;
}

function isNodeId(value: unknown): value is NodeId {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function isUrlOrNull(value: unknown): value is string | null {
  return value === null || (typeof value === 'string' && value.length > 0 && value.length <= URL_BYTES_MAX);
}

function corrupt(reason: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', `the stored cluster membership is malformed: ${reason}`);
}
