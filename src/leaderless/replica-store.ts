/**
 * Where a leaderless replica keeps its data: any storage `Engine`, laid out
 * like the key-value layer's keyspace (src/kv/keyspace.ts):
 *
 *   0x01 "format"                 "impulse-leaderless/1" (refused at open when different)
 *   0x01 "h/" u32be(owner) <key>  a hint: a sibling set held for `owner` while it was unreachable
 *   0x01 "members"                the membership state, JSON (membership.ts); absent: the --initial-cluster
 *   'z' <user key>                a sibling set this node owns
 *
 * Every data and hint value is RECORD_SIBLINGS (2) followed by the canonical sibling set
 * (codec.ts). Every write goes through the engine's group commit with its
 * sync mode (fsync on a durable engine), so `write` resolving means durable:
 * a replica acknowledges only after that.
 *
 * `EngineReplicaStore` is the one implementation: production opens it on a
 * disk engine, tests and the simulator on the memory engine (whose "disk"
 * outlives a simulated process crash because the simulator keeps the object).
 */
import { createHash } from 'node:crypto';
import { ImpulseError } from '../errors.js';
import { DATA_PREFIX, FORMAT_KEY, dataKey, dataRange, metaKey, userKeyOf } from '../kv/keyspace.js';
import { RECORD_SIBLINGS } from '../kv/record.js';
import type { Engine, RangeOptions } from '../storage/engine.js';
import { encodeSiblingSet, decodeSiblingSet } from './codec.js';
import type { NodeId, SiblingSet } from './dvv.js';

/** The format value of a leaderless store; a Raft or single-node store ('impulse-kv/1') is refused. */
export const LEADERLESS_FORMAT = Buffer.from('impulse-leaderless/1', 'latin1');
const RECORD_PREFIX = Buffer.from([RECORD_SIBLINGS]);
const HINT_PREFIX = metaKey('h/');
const HINT_END = metaKey('h0'); // '0' follows '/'
const MEMBERSHIP_KEY = metaKey('members');

/** A hint as listed: the owner it is for, the key, the set held. */
export interface StoredHint {
  readonly owner: NodeId;
  readonly key: Buffer;
  readonly set: SiblingSet;
}

/** One key's set in a local scan. */
export interface StoredSet {
  readonly key: Buffer;
  readonly set: SiblingSet;
}

export interface ReplicaStoreLimits {
  /** Longest user key, bytes. */
  readonly keyBytesMax: number;
  /** Longest value, bytes. */
  readonly valueBytesMax: number;
}

export class EngineReplicaStore {
  private constructor(
    private readonly engine: Engine,
    private readonly limits: ReplicaStoreLimits,
    private readonly where: string,
  ) {}

  /**
   * Checks (or, on an empty engine, writes) the format key. `engine` must be
   * open. IMPULSE_ERR_DATA_FORMAT_UNSUPPORTED for a store of another format.
   */
  static async open(engine: Engine, limits: ReplicaStoreLimits, where: string): Promise<EngineReplicaStore> {
    const format = await engine.get(FORMAT_KEY);
    if (format === undefined) {
      const any = await engine.range({ limit: 1 });
      if (any.length > 0) throw new ImpulseError('IMPULSE_ERR_DATA_FORMAT_UNSUPPORTED', `${where} holds data but no format key; it is not a leaderless store`);
      await engine.put(FORMAT_KEY, LEADERLESS_FORMAT);
    } else if (!format.equals(LEADERLESS_FORMAT)) {
      throw new ImpulseError('IMPULSE_ERR_DATA_FORMAT_UNSUPPORTED', `${where} is a "${format.toString('latin1').slice(0, 40)}" store, not a leaderless one; use another --data-dir`);
    }
    return new EngineReplicaStore(engine, limits, where);
  }

  /** The engine limits this store needs for `limits` (keys with their prefixes, sets of many siblings). */
  static engineLimits(limits: ReplicaStoreLimits): { keyBytesMax: number; valueBytesMax: number } {
    return { keyBytesMax: limits.keyBytesMax + 16, valueBytesMax: setBytesMax(limits) + 1 };
  }

  /** The set stored for `key`; empty when none. */
  async read(key: Uint8Array): Promise<SiblingSet> {
    return this.decode(await this.engine.get(dataKey(key)), 'data');
  }

  /** Stores `set` for `key` durably (per the engine's sync mode). */
  async write(key: Uint8Array, set: SiblingSet): Promise<void> {
    await this.engine.put(dataKey(key), this.encode(set));
  }

  /** Removes `key`'s set (a collected tombstone, tombstones.ts). */
  async deleteData(key: Uint8Array): Promise<void> {
    await this.engine.del(dataKey(key));
  }

  /** The stored membership state (membership.ts), if any. */
  async readMembership(): Promise<Buffer | undefined> {
    return this.engine.get(MEMBERSHIP_KEY);
  }

  async writeMembership(bytes: Buffer): Promise<void> {
    await this.engine.put(MEMBERSHIP_KEY, bytes);
  }

  async readHint(owner: NodeId, key: Uint8Array): Promise<SiblingSet> {
    return this.decode(await this.engine.get(hintKey(owner, key)), 'hint');
  }

  async writeHint(owner: NodeId, key: Uint8Array, set: SiblingSet): Promise<void> {
    await this.engine.put(hintKey(owner, key), this.encode(set));
  }

  async deleteHint(owner: NodeId, key: Uint8Array): Promise<void> {
    await this.engine.del(hintKey(owner, key));
  }

  /** Up to `limit` hints, in (owner, key) order, from `after` (exclusive) on. */
  async hints(limit: number, after?: { owner: NodeId; key: Uint8Array }): Promise<StoredHint[]> {
    const range = after === undefined ? { gte: HINT_PREFIX, lt: HINT_END, limit } : { gt: hintKey(after.owner, after.key), lt: HINT_END, limit };
    const entries = await this.engine.range(range);
    return entries.map((entry) => ({ owner: entry.key.readUInt32BE(HINT_PREFIX.length), key: entry.key.subarray(HINT_PREFIX.length + 4), set: this.decode(entry.value, 'hint') }));
  }

  /** Sets of user keys in a range (bounds as `Engine.range` over user keys). */
  async scan(query: RangeOptions): Promise<StoredSet[]> {
    const entries = await this.engine.range(dataRange(query));
    return entries.map((entry) => ({ key: userKeyOf(entry.key), set: this.decode(entry.value, 'data') }));
  }

  /**
   * SHA-256 over every data record in key order (key length, key, record):
   * replicas that hold the same keys with the same sibling sets have equal
   * digests (sets are canonical). Hints are not included. A full scan, in
   * pages of 1000.
   */
  async digest(): Promise<{ digest: string; keys: number; bytes: number }> {
    const hash = createHash('sha256');
    let keys = 0;
    let bytes = 0;
    let after: Buffer | undefined;
    for (;;) {
      const page = await this.engine.range(after === undefined ? { gte: Buffer.from([DATA_PREFIX]), lt: Buffer.from([DATA_PREFIX + 1]), limit: 1000 } : { gt: after, lt: Buffer.from([DATA_PREFIX + 1]), limit: 1000 });
      for (const entry of page) {
        const length = Buffer.allocUnsafe(4);
        length.writeUInt32BE(entry.key.length);
        hash.update(length).update(entry.key).update(entry.value);
        keys++;
        bytes += entry.key.length + entry.value.length;
      }
      if (page.length < 1000) break;
      after = page[page.length - 1]!.key;
    }
    return { digest: hash.digest('hex'), keys, bytes };
  }

  /** The engine's figures (for /status). */
  stats(): ReturnType<Engine['stats']> {
    return this.engine.stats();
  }

  /** The engine itself, for its health and recovery report in /status (read-only use). */
  get storageEngine(): Engine {
    return this.engine;
  }

  /** The largest encoded set this store accepts (see setBytesMax). */
  get setBytesMax(): number {
    return setBytesMax(this.limits);
  }

  private encode(set: SiblingSet): Buffer {
    return encodeSiblingSet(set, RECORD_PREFIX);
  }

  private decode(record: Buffer | undefined, what: string): SiblingSet {
    if (record === undefined) return [];
    if (record[0] !== RECORD_SIBLINGS) throw new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', `${this.where}: a ${what} record of type ${record[0] ?? 'missing'}, not a sibling set`);
    return decodeSiblingSet(record, 1, `${this.where}: ${what} record`, 'IMPULSE_ERR_ENGINE_CORRUPTION', this.limits.valueBytesMax);
  }
}

/** The engine key of the hint for `owner` and `key`. */
function hintKey(owner: NodeId, key: Uint8Array): Buffer {
  const engineKey = Buffer.allocUnsafe(HINT_PREFIX.length + 4 + key.length);
  HINT_PREFIX.copy(engineKey, 0);
  engineKey.writeUInt32BE(owner, HINT_PREFIX.length);
  engineKey.set(key, HINT_PREFIX.length + 4);
  return engineKey;
}

/**
 * The largest sibling set a key may hold, encoded: four values of the largest
 * size plus 64 KiB of versions. A write that would make a set larger is
 * refused (IMPULSE_ERR_SIBLINGS_TOO_MANY) — sibling explosion is bounded.
 */
export function setBytesMax(limits: ReplicaStoreLimits): number {
  return 4 * limits.valueBytesMax + 64 * 1024;
}
