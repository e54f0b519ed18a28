/**
 * What the data of a normal Raft log entry means, and how a batch of
 * committed Raft entries becomes the key-value state machine's apply entries.
 *
 *   empty                      a new leader's no-op
 *   first byte 1               a key-value command (src/kv/command.ts: its own format byte, COMMAND_FORMAT)
 *   first byte 0x43 ('C')      a cluster command: 'C' + JSON (publish a member's client URL)
 *   anything else              handed to the key-value layer, which refuses it (IMPULSE_ERR_COMMAND_INVALID)
 *
 * Conf-change entries and cluster commands become writes of the membership
 * document (cluster metadata), so the membership changes in the same engine
 * batch as the applied index. Everything here is deterministic: every replica
 * turns the same entries into the same writes.
 */
import type { ApplyEntry } from '../kv/apply.js';
import type { Entry, NodeId } from '../raft/types.js';
import { type Membership, MEMBERSHIP_META_NAME, applyConfChange, applyPublish, encodeMembership, isClientUrl } from './membership.js';

export const CLUSTER_COMMAND_FORMAT = 0x43;

/** A member tells the cluster where clients reach it (etcd's member attribute publish). */
export interface PublishCommand {
  readonly type: 'publish';
  readonly nodeId: NodeId;
  readonly clientUrl: string;
}

export type ClusterCommand = PublishCommand;

export function encodeClusterCommand(command: ClusterCommand): Uint8Array {
  const json = Buffer.from(JSON.stringify(command), 'utf8');
  const bytes = Buffer.allocUnsafe(1 + json.length);
  bytes[0] = CLUSTER_COMMAND_FORMAT;
  json.copy(bytes, 1);
  return bytes;
}

/** The cluster command in `data`, or undefined when it is malformed (then it changes nothing). */
export function decodeClusterCommand(data: Uint8Array): ClusterCommand | undefined {
  if (data.length < 2 || data.length > 4096 || data[0] !== CLUSTER_COMMAND_FORMAT) return undefined;
  try {
    const value = JSON.parse(Buffer.from(data.buffer, data.byteOffset + 1, data.length - 1).toString('utf8')) as Record<string, unknown>;
    if (value['type'] === 'publish' && typeof value['nodeId'] === 'number' && Number.isSafeInteger(value['nodeId']) && value['nodeId'] > 0 && isClientUrl(value['clientUrl'])) {
      return { type: 'publish', nodeId: value['nodeId'], clientUrl: value['clientUrl'] };
    }
  } catch {
    // malformed: a no-op
  }
  return undefined;
}

export interface ApplyPlan {
  readonly entries: ApplyEntry[];
  /** The membership after the batch. */
  readonly membership: Membership;
  readonly membershipChanged: boolean;
}

/** Turns committed Raft entries into apply entries, tracking the membership they change. */
export function planApply(entries: readonly Entry[], membership: Membership): ApplyPlan {
  let current = membership;
  let changed = false;
  const planned = entries.map((entry): ApplyEntry => {
    const { index, term } = entry;
    let next: Membership;
    if (entry.kind === 'conf-change') {
      next = applyConfChange(current, entry.change, entry.confState);
    } else if (entry.data.length === 0) {
      return { index, term, type: 'noop' };
    } else if (entry.data[0] !== CLUSTER_COMMAND_FORMAT) {
      return { index, term, type: 'command', command: entry.data };
    } else {
      const command = decodeClusterCommand(entry.data);
      next = command === undefined ? current : applyPublish(current, command.nodeId, command.clientUrl);
    }
    if (next === current && entry.kind !== 'conf-change') return { index, term, type: 'noop' };
    current = next;
    changed = true;
    return { index, term, type: 'meta', name: MEMBERSHIP_META_NAME, value: encodeMembership(next) };
  });
  return { entries: planned, membership: current, membershipChanged: changed };
}
