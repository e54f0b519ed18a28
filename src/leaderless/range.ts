/**
 * Range queries in leaderless mode: merged from the replicas, in key order,
 * paged like every range (`limit`, the API's cursor).
 *
 * A key's replicas are spread over the ring, so a range is read from EVERY
 * member: each returns up to `limit` of the keys it stores in the range (its
 * local scan, tombstones included). The coordinator reconciles each key's
 * sets across the answers and keeps the keys with a live value. A member that
 * stopped at its limit bounds what is known: past its last key another key
 * may exist, so only keys up to the nearest such boundary are final, and the
 * next round continues after it (at most `ROUNDS_MAX` rounds per page; a page
 * may come back shorter than `limit`, with a cursor, never with a hole).
 *
 * Consistency (docs/leaderless.md): at least (members − N + 1) members must
 * answer, so every key has at least one replica among them; else
 * IMPULSE_ERR_QUORUM_UNAVAILABLE. Each key is the reconciliation of the
 * replicas that answered — like a read with R = the replicas of that key that
 * answered, without read repair. A range is not a snapshot: keys written
 * while it runs may or may not appear.
 */
import { ImpulseError } from '../errors.js';
import type { RangeOptions } from '../storage/engine.js';
import type { NodeId, SiblingSet } from './dvv.js';
import { liveValues } from './dvv.js';
import type { PeerLink } from './peer-link.js';
import type { Replica } from './replica.js';
import type { Ring } from './ring.js';

const ROUNDS_MAX = 8;

export interface RangeItem {
  readonly key: Buffer;
  /** The live values of the key's siblings (at least one). */
  readonly values: readonly Buffer[];
}

export interface RangeReaderOptions {
  readonly ring: () => Ring;
  readonly replicas: number;
  readonly link: PeerLink;
  readonly replica: Replica;
  readonly timeoutMs: number;
}

export class RangeReader {
  constructor(private readonly options: RangeReaderOptions) {}

  /** Up to `query.limit` live keys of the range, in order (see the file comment). */
  async range(query: RangeOptions): Promise<RangeItem[]> {
    const reverse = query.reverse === true;
    const items: RangeItem[] = [];
    let bounds: RangeOptions = query;
    for (let round = 0; round < ROUNDS_MAX && items.length < query.limit; round++) {
      const answers = await this.scanAll(bounds);
      const boundary = this.boundary(answers, bounds.limit, reverse);
      for (const item of this.merge(answers, boundary, reverse)) items.push(item);
      if (boundary === undefined) break;
      bounds = reverse ? { ...withoutUpper(bounds), lt: boundary, reverse: true, limit: query.limit } : { ...withoutLower(bounds), gt: boundary, limit: query.limit };
    }
    return items.slice(0, query.limit);
  }

  private async scanAll(bounds: RangeOptions): Promise<{ key: Buffer; set: SiblingSet }[][]> {
    const members = this.options.ring().nodes;
    const settled = await Promise.allSettled(members.map((node: NodeId) => this.options.link.scan(node, bounds, this.options.timeoutMs)));
    const answers = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const needed = Math.max(1, members.length - this.options.replicas + 1);
    if (answers.length < needed) {
      throw new ImpulseError('IMPULSE_ERR_QUORUM_UNAVAILABLE', `${answers.length} of the ${needed} members a range needs answered (so that every key has a replica among them)`, { details: { needed, answered: answers.length } });
    }
    return answers;
  }

  /** The last key that is final: the nearest last key of an answer that stopped at its limit; undefined when none did. */
  private boundary(answers: readonly { key: Buffer }[][], limit: number, reverse: boolean): Buffer | undefined {
    let boundary: Buffer | undefined;
    for (const answer of answers) {
      if (answer.length < limit) continue;
      const last = answer[answer.length - 1]!.key;
      if (boundary === undefined || (reverse ? Buffer.compare(last, boundary) > 0 : Buffer.compare(last, boundary) < 0)) boundary = last;
    }
    return boundary;
  }

  /** The keys up to `boundary` (all when undefined), reconciled across answers, live ones only, in order. */
  private merge(answers: readonly { key: Buffer; set: SiblingSet }[][], boundary: Buffer | undefined, reverse: boolean): RangeItem[] {
    const byKey = new Map<string, { key: Buffer; set: SiblingSet }>();
    for (const answer of answers) {
      for (const { key, set } of answer) {
        if (boundary !== undefined && (reverse ? Buffer.compare(key, boundary) < 0 : Buffer.compare(key, boundary) > 0)) continue;
        const name = key.toString('latin1');
        const held = byKey.get(name);
        byKey.set(name, { key, set: held === undefined ? set : this.options.replica.reconcile(held.set, set) });
      }
    }
    const merged = [...byKey.values()].sort((a, b) => (reverse ? Buffer.compare(b.key, a.key) : Buffer.compare(a.key, b.key)));
    return merged.flatMap(({ key, set }) => {
      const values = liveValues(set);
      return values.length === 0 ? [] : [{ key, values }];
    });
  }
}

function withoutLower(bounds: RangeOptions): RangeOptions {
  const { gte: _gte, gt: _gt, ...rest } = bounds;
  return rest;
}

function withoutUpper(bounds: RangeOptions): RangeOptions {
  const { lt: _lt, lte: _lte, ...rest } = bounds;
  return rest;
}
