/**
 * The handshake of a node-to-node connection, as pure values and checks (the
 * TCP transport does the I/O):
 *
 *   1. the dialer sends the preamble (MAGIC, protocol version) and a HELLO:
 *      cluster id, its own node id, the node id it means to reach, and its
 *      incarnation (a random nonce drawn once per transport instance, so a
 *      restarted process is told apart from a second connection of the same
 *      one);
 *   2. the acceptor checks it (`checkHello`, then the duplicate-id rule in the
 *      transport) and answers WELCOME (its id and incarnation) or REFUSE
 *      (a catalog code and a reason), then closes on a refusal;
 *   3. the dialer checks that WELCOME names the node it meant to reach.
 *
 * The HELLO, WELCOME and REFUSE layouts are frozen across protocol versions so
 * that two versions can at least tell each other why they refuse.
 */
import type { NodeId } from '../raft/types.js';

export interface Hello {
  readonly clusterId: string;
  readonly from: NodeId;
  /** The node the dialer means to reach (its address book may be stale, or point at the wrong process). */
  readonly to: NodeId;
  readonly incarnation: number;
}

export interface Welcome {
  readonly node: NodeId;
  readonly incarnation: number;
}

/** Why an acceptor refused a connection; the key of `rejectedConnections` in the stats. */
export type RefusalReason =
  | 'bad-magic'
  | 'bad-version'
  | 'malformed-hello'
  | 'cluster-mismatch'
  | 'own-id'
  | 'wrong-node'
  | 'unknown-peer'
  | 'duplicate-id'
  | 'handshake-timeout'
  | 'too-many-pending'
  | 'closing'
  /** The dialer's TLS certificate does not name the node id its HELLO claims. */
  | 'certificate-mismatch';

export interface Refusal {
  readonly code: string;
  readonly reason: string;
  readonly message: string;
}

/** Longest cluster id accepted (bytes of UTF-8); a config error above it. */
export const CLUSTER_ID_BYTES_MAX = 128;

/** A node id on the wire: a positive safe integer (0 is NO_NODE). */
export function isNodeId(value: unknown): value is NodeId {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function isIncarnation(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

export function helloToWire(hello: Hello): unknown {
  return { cluster: hello.clusterId, from: hello.from, to: hello.to, incarnation: hello.incarnation };
}

/** The HELLO in a decoded frame, or null when any field is missing or of the wrong type. */
export function parseHello(value: unknown): Hello | null {
  if (typeof value !== 'object' || value === null) return null;
  const { cluster, from, to, incarnation } = value as Record<string, unknown>;
  if (typeof cluster !== 'string' || Buffer.byteLength(cluster) > CLUSTER_ID_BYTES_MAX) return null;
  if (!isNodeId(from) || !isNodeId(to) || !isIncarnation(incarnation)) return null;
  return { clusterId: cluster, from, to, incarnation };
}

export function welcomeToWire(welcome: Welcome): unknown {
  return { node: welcome.node, incarnation: welcome.incarnation };
}

export function parseWelcome(value: unknown): Welcome | null {
  if (typeof value !== 'object' || value === null) return null;
  const { node, incarnation } = value as Record<string, unknown>;
  if (!isNodeId(node) || !isIncarnation(incarnation)) return null;
  return { node, incarnation };
}

export function parseRefusal(value: unknown): Refusal | null {
  if (typeof value !== 'object' || value === null) return null;
  const { code, reason, message } = value as Record<string, unknown>;
  if (typeof code !== 'string' || typeof reason !== 'string' || typeof message !== 'string') return null;
  return { code: code.slice(0, 100), reason: reason.slice(0, 100), message: message.slice(0, 500) };
}

export interface HelloPolicy {
  readonly clusterId: string;
  readonly localId: NodeId;
  /** Whether `id` is in the acceptor's address book now. */
  readonly isKnownPeer: (id: NodeId) => boolean;
  /** Accept dialers missing from the address book (see TcpTransportOptions.acceptUnknownPeers). */
  readonly acceptUnknownPeers: boolean;
}

/**
 * The stateless checks of a HELLO, in the order a refusal reports them; null
 * when it passes. (The duplicate-id rule needs the live connections: the
 * transport applies it after this.)
 */
export function checkHello(hello: Hello, policy: HelloPolicy): RefusalReason | null {
  if (hello.clusterId !== policy.clusterId) return 'cluster-mismatch';
  if (hello.from === policy.localId) return 'own-id';
  if (hello.to !== policy.localId) return 'wrong-node';
  if (!policy.acceptUnknownPeers && !policy.isKnownPeer(hello.from)) return 'unknown-peer';
  return null;
}

/** "node 2", "nodes 2, 3", or "no node id" for a refusal message. */
export function describeIds(ids: readonly NodeId[]): string {
  if (ids.length === 0) return 'no node id';
  return `${ids.length === 1 ? 'node' : 'nodes'} ${ids.join(', ')}`;
}
