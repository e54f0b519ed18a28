/**
 * Placement: a consistent-hash ring with virtual nodes (Dynamo §4.2, Riak's
 * ring, Cassandra's vnodes).
 *
 *   const ring = new Ring([1, 2, 3], 64);
 *   ring.preferenceList(key, 3);   // the key's N owners: e.g. [2, 3, 1]
 *   ring.walk(key);                // every node, in the order a sloppy quorum tries them
 *
 * Each physical node owns `vnodesPerNode` tokens: the first 48 bits of
 * SHA-256("<node>/<i>"). A key hashes the same way (SHA-256 of its bytes) to
 * a point; walking clockwise from it, the first N DISTINCT physical nodes are
 * its preference list, and the ones after them are the fallbacks a sloppy
 * quorum asks to hold hints. Tokens depend only on the node ids, so every
 * node that knows the same members computes the same ring. With v vnodes per
 * node the share a node owns deviates from 1/nodes by about 1/sqrt(v) of it
 * (64 vnodes: ~12%); moving one node moves ~1/nodes of the keys.
 */
import { createHash } from 'node:crypto';
import { assert } from '../util/assert.js';
import type { NodeId } from './dvv.js';

/** The default virtual nodes per physical node. */
export const DEFAULT_VNODES = 64;
export const VNODES_MAX = 1024;

/** A key's or token's position on the ring: an integer in [0, 2^48). */
export function ringPosition(bytes: Uint8Array | string): number {
  return createHash('sha256').update(bytes).digest().readUIntBE(0, 6);
}

export class Ring {
  /** Token positions, ascending, with their owners. */
  private readonly tokens: readonly { readonly position: number; readonly node: NodeId }[];
  readonly nodes: readonly NodeId[];

  /** `nodes`: distinct positive ids (at least one); `vnodesPerNode` in [1, VNODES_MAX]. */
  constructor(nodes: readonly NodeId[], readonly vnodesPerNode: number = DEFAULT_VNODES) {
    assert(nodes.length > 0 && new Set(nodes).size === nodes.length, 'ring: distinct nodes, at least one', nodes);
    assert(Number.isInteger(vnodesPerNode) && vnodesPerNode >= 1 && vnodesPerNode <= VNODES_MAX, 'ring: vnodes per node', vnodesPerNode);
    this.nodes = [...nodes].sort((a, b) => a - b);
    const tokens = this.nodes.flatMap((node) => Array.from({ length: vnodesPerNode }, (_, index) => ({ position: ringPosition(`${node}/${index}`), node })));
    // Ties (astronomically unlikely with 48 bits) break by node id, so every node builds the same order.
    this.tokens = tokens.sort((a, b) => a.position - b.position || a.node - b.node);
  }

  /** The first `n` distinct nodes clockwise from `key` (fewer when the ring has fewer nodes). */
  preferenceList(key: Uint8Array, n: number): NodeId[] {
    return this.walk(key).slice(0, n);
  }

  /** Every node once, clockwise from `key`: the preference list first, then the fallbacks in order. */
  walk(key: Uint8Array): NodeId[] {
    return this.walkFrom(ringPosition(key));
  }

  /** Every node once, clockwise from `position`. */
  walkFrom(position: number): NodeId[] {
    const order: NodeId[] = [];
    const seen = new Set<NodeId>();
    const start = this.firstTokenAtOrAfter(position);
    for (let step = 0; step < this.tokens.length && order.length < this.nodes.length; step++) {
      const { node } = this.tokens[(start + step) % this.tokens.length]!;
      if (!seen.has(node)) {
        seen.add(node);
        order.push(node);
      }
    }
    return order;
  }

  /** True when `node` is among the first `n` owners of `key`. */
  owns(node: NodeId, key: Uint8Array, n: number): boolean {
    return this.preferenceList(key, n).includes(node);
  }

  private firstTokenAtOrAfter(position: number): number {
    let low = 0;
    let high = this.tokens.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.tokens[middle]!.position < position) low = middle + 1;
      else high = middle;
    }
    return low === this.tokens.length ? 0 : low;
  }
}
