/**
 * `LeaderlessKvService`: the `KvService` of a leaderless member
 * (`--replication leaderless`), with causal versions (`CausalKv`): reads and
 * writes go through this node's coordinator to the key's preference list.
 *
 * What the plain `KvService` calls mean here:
 *   - `get`: the value when the key has exactly one live sibling (revision 0:
 *     leaderless mode has no revisions); siblings are refused with
 *     IMPULSE_ERR_LEADERLESS_UNSUPPORTED naming the causal read to use.
 *     The HTTP API never calls it: it serves keys through `causal`.
 *   - `write`: one op, no condition, written blind (no context: concurrent
 *     with whatever is stored, so it becomes a sibling of it). Multi-key
 *     batches and conditions are refused (nothing here can make several keys
 *     change atomically; there are no revisions); a session is ignored (no
 *     deduplication).
 *   - `range`: merged from every member's replicas (range.ts); revision 0,
 *     and `siblings` with every value when a key has more than one. The
 *     consistency option does not apply (see range.ts for what a range sees).
 *   - `digest`: this replica's data (keys and sibling sets), see replica-store.ts.
 */
import type { Logger } from 'pino';
import { ImpulseError } from '../errors.js';
import { type KvCommand, type KvLimits, validateCommand } from '../kv/command.js';
import type { ContentDigest } from '../kv/digest.js';
import type { StoredValue } from '../kv/record.js';
import type { KvItem } from '../kv/state-machine.js';
import type { RangeOptions } from '../storage/engine.js';
import { type CausalKv, type CausalRead, type KvService, type ServiceHealth, type ServiceStatus, type WriteOutcome, engineServiceHealth, storageStatus } from '../service/kv-service.js';
import { decodeContext, encodeContext } from './codec.js';
import { parseQuorum } from './config.js';
import { EMPTY_CONTEXT, contextOf, liveValues } from './dvv.js';
import type { LeaderlessNode } from './node.js';

export interface LeaderlessKvServiceOptions {
  readonly node: LeaderlessNode;
  readonly limits: KvLimits;
  readonly engineName: string;
  readonly clusterId: string;
  readonly logger: Logger;
  /** Runs at `close()` after new requests are refused: stop the node's timers, the host, the engine. */
  readonly shutdown: () => Promise<void>;
}

export class LeaderlessKvService implements KvService, CausalKv {
  readonly limits: KvLimits;
  readonly causal: CausalKv = this;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: LeaderlessKvServiceOptions) {
    this.limits = options.limits;
  }

  async getCausal(key: Buffer, options: { readonly r?: string }): Promise<CausalRead> {
    this.checkKey(key);
    this.refuseWhenClosing();
    const { config } = this.options.node.options;
    const r = options.r === undefined ? config.readQuorum : parseQuorum(options.r, config.replicas, 'r');
    const set = await this.options.node.coordinator.get(key, r);
    return { values: liveValues(set), context: encodeContext(contextOf(set)) };
  }

  async putCausal(key: Buffer, value: Buffer | null, options: { readonly context?: string; readonly w?: string }): Promise<{ readonly context: string }> {
    this.checkKey(key);
    if (value !== null && value.length > this.limits.valueBytesMax) {
      throw new ImpulseError('IMPULSE_ERR_VALUE_TOO_LARGE', `value is ${value.length} bytes; the limit is ${this.limits.valueBytesMax}`);
    }
    const { config } = this.options.node.options;
    const w = options.w === undefined ? config.writeQuorum : parseQuorum(options.w, config.replicas, 'w');
    const context = options.context === undefined ? EMPTY_CONTEXT : decodeContext(options.context);
    this.refuseWhenClosing();
    const set = await this.options.node.coordinator.put(key, value, context, w);
    return { context: encodeContext(contextOf(set)) };
  }

  async get(key: Uint8Array): Promise<StoredValue | undefined> {
    const read = await this.getCausal(Buffer.from(key), {});
    if (read.values.length > 1) {
      throw new ImpulseError('IMPULSE_ERR_LEADERLESS_UNSUPPORTED', `the key has ${read.values.length} siblings; read it through the HTTP API (300 with every sibling) or the client's getVersions`);
    }
    return read.values.length === 0 ? undefined : { value: read.values[0]!, revision: 0 };
  }

  async range(query: RangeOptions): Promise<KvItem[]> {
    this.refuseWhenClosing();
    if (query.limit > this.limits.rangeLimitMax) throw new ImpulseError('IMPULSE_ERR_RANGE_INVALID', `limit ${query.limit} is above ${this.limits.rangeLimitMax}`);
    const items = await this.options.node.ranges.range(query);
    return items.map(({ key, values }) => ({ key, value: values[0]!, revision: 0, ...(values.length > 1 ? { siblings: values } : {}) }));
  }

  async write(command: KvCommand): Promise<WriteOutcome> {
    validateCommand(command, this.limits);
    const op = command.ops[0];
    // A session is ignored, as on PUT and DELETE: there is no deduplication here (a retry may add a sibling with the same value).
    if (command.ops.length !== 1 || op === undefined || op.condition !== undefined) {
      throw new ImpulseError('IMPULSE_ERR_LEADERLESS_UNSUPPORTED', 'leaderless mode writes one key at a time, without conditions (use PUT or DELETE /kv/{key} with Impulse-Context)');
    }
    await this.putCausal(Buffer.from(op.key), op.type === 'put' ? Buffer.from(op.value) : null, {});
    return { revision: 0 };
  }

  async status(): Promise<ServiceStatus> {
    const { node } = this.options;
    const stats = await node.store.stats();
    const { config } = node.options;
    return {
      mode: 'leaderless',
      engine: this.options.engineName,
      durable: true,
      sync: 'fsync',
      durability: `a write is acknowledged once ${config.writeQuorum} of its ${config.replicas} replicas (or, with a sloppy quorum, stand-ins holding hints) have it on stable storage (per request: ?w=)`,
      appliedIndex: 0,
      durableAppliedIndex: 0,
      keyCount: stats.keyCount ?? null,
      diskBytes: stats.diskBytes ?? null,
      sessions: 0,
      limits: this.limits,
      storage: storageStatus(node.store.storageEngine),
      figures: { ...stats.figures, ...node.figures() },
      replication: {
        mode: 'leaderless',
        clusterId: this.options.clusterId,
        nodeId: node.options.nodeId,
        members: node.membership.everyone().map(({ id }) => ({ id, liveness: node.detector.liveness(id) })),
        replicas: config.replicas,
        readQuorum: config.readQuorum,
        writeQuorum: config.writeQuorum,
        sloppyQuorum: config.sloppy,
        conflicts: config.conflicts,
      },
    };
  }

  health(): ServiceHealth {
    if (this.closing !== undefined) return { status: 'unavailable', reason: 'the node is shutting down' };
    // The replica's engine: after a failed fsync it is read-only (this member coordinates no writes and stores no replicas) until restarted.
    return engineServiceHealth(this.options.node.store.storageEngine);
  }

  /** This replica's data: equal on replicas that hold the same keys with the same sibling sets. */
  async digest(): Promise<ContentDigest> {
    const { digest, bytes } = await this.options.node.store.digest();
    return { appliedIndex: 0, appliedTerm: 0, digest, bytes };
  }

  close(): Promise<void> {
    this.closing ??= this.options.shutdown();
    return this.closing;
  }

  private checkKey(key: Buffer): void {
    if (key.length === 0) throw new ImpulseError('IMPULSE_ERR_KEY_EMPTY');
    if (key.length > this.limits.keyBytesMax) throw new ImpulseError('IMPULSE_ERR_KEY_TOO_LARGE', `key is ${key.length} bytes; the limit is ${this.limits.keyBytesMax}`);
  }

  private refuseWhenClosing(): void {
    if (this.closing !== undefined) throw new ImpulseError('IMPULSE_ERR_SHUTTING_DOWN', 'the service is closing');
  }
}
