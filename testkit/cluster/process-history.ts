/**
 * A recorded history of key-value operations against a real process cluster,
 * for the linearizability checks of src/cluster (testkit/check); writers of
 * batches of fresh keys across shards checked whole (`FreshBatches`); each
 * shard's replicas on one digest (`settledShardDigests`).
 */
import { ImpulseClient } from '../../src/client/client.js';
import { isImpulseError } from '../../src/errors.js';
import assert from 'node:assert/strict';
import { type KvInput, type KvOutput, type Operation, checkKvLinearizability, formatOperations } from '../check/linearizability.js';
import type { ProcessCluster } from '../process/cluster-process.js';

/** Refusals that say the request had no effect. */
export const NO_EFFECT = new Set([
  'IMPULSE_ERR_UNAVAILABLE',
  'IMPULSE_ERR_RAFT_NOT_LEADER',
  'IMPULSE_ERR_SHUTTING_DOWN',
  'IMPULSE_ERR_RAFT_READ_ABORTED',
  'IMPULSE_ERR_OVERLOADED',
  'IMPULSE_ERR_RAFT_OVERLOADED',
  // A sharded cluster's transactions across shards: a key locked by one not resolved yet, or this one aborted.
  'IMPULSE_ERR_TXN_LOCKED',
  'IMPULSE_ERR_TXN_ABORTED',
]);

export interface HistoryOptions {
  /** The keys the clients work on, in turn. */
  readonly keys: readonly string[];
  readonly clients: number;
  /** How many members the clients spread over (ids 1..members). */
  readonly members: number;
  /** Clients 0..n-1 route by a cached shard map (ImpulseClient's `shardRouting`; their member is only where they load it). Default 0. */
  readonly shardRoutingClients?: number;
}

/**
 * Clients recording a history of gets, puts and conditional puts (unique
 * values) against a process cluster, each moving to the next member when its
 * member does not answer. Writes whose outcome is unknown are recorded with
 * no return; refusals that say nothing happened are left out.
 */
export class History {
  readonly operations: Operation[] = [];
  private stopped = false;
  private readonly start = performance.now();

  constructor(
    private readonly cluster: ProcessCluster,
    private readonly options: HistoryOptions,
  ) {}

  stop(): void {
    this.stopped = true;
  }

  run(): Promise<void> {
    return Promise.all(Array.from({ length: this.options.clients }, (_, c) => this.client(c))).then(() => undefined);
  }

  /**
   * After the writers stopped: every key's final value, read through every
   * member, joins the history (clients 100 + member id); then the whole
   * history must be linearizable, with more than `completedMin` operations
   * of the writers completed. Resolves with the writers' completed count.
   */
  async finishLinearizable(completedMin: number): Promise<number> {
    for (let id = 1; id <= this.options.members; id++) {
      for (const key of this.options.keys) {
        const call = this.operations.reduce((latest, operation) => Math.max(latest, operation.return ?? operation.call), 0) + 1;
        const found = await this.cluster.client(id).getWithRevision(key);
        this.operations.push({ clientId: 100 + id, input: { kind: 'get', key }, call, return: call + 1, output: { kind: 'get', value: found?.value.toString() ?? null } });
      }
    }
    const result = checkKvLinearizability(this.operations);
    if (result.verdict === 'not-linearizable') assert.fail(`not linearizable on key ${result.key}: ${result.explanation}\n${formatOperations(result.operations)}`);
    assert.equal(result.verdict, 'linearizable', JSON.stringify(result));
    const completed = this.operations.filter((operation) => operation.return !== undefined && operation.clientId < 100).length;
    assert.ok(completed > completedMin, `only ${completed} operations completed`);
    return completed;
  }

  private now(): number {
    return performance.now() - this.start;
  }

  private async client(clientId: number): Promise<void> {
    const { keys, members } = this.options;
    let member = (clientId % members) + 1;
    const clients = new Map<number, ImpulseClient>();
    const clientOf = (id: number): ImpulseClient => {
      let client = clients.get(id);
      if (client === undefined) {
        // No retries inside the client: every attempt is one recorded operation.
        client = new ImpulseClient({ endpoint: this.cluster.url(id), timeoutMs: 3000, writeRetriesMax: 0, shardRouting: clientId < (this.options.shardRoutingClients ?? 0) });
        clients.set(id, client);
      }
      return client;
    };
    try {
      for (let n = 0; !this.stopped; n++) {
        const key = keys[(clientId + n) % keys.length]!;
        const client = clientOf(member);
        const moved = await this.operation(client, clientId, key, `c${clientId}-${n}`, n % 3);
        if (moved) member = (member % members) + 1;
      }
    } finally {
      for (const client of clients.values()) client.close();
    }
  }

  /** One operation (0: get, 1: put, 2: get then a conditional put on what it read); true when the member did not answer. */
  private async operation(client: ImpulseClient, clientId: number, key: string, value: string, kind: number): Promise<boolean> {
    const read = await this.record(clientId, { kind: 'get', key }, async () => {
      const found = await client.getWithRevision(key);
      return { output: { kind: 'get', value: found?.value.toString() ?? null }, revision: found?.revision };
    });
    if (read === 'unreachable') return true;
    if (kind === 0 || read === 'skipped') return false;
    if (kind === 1) return (await this.record(clientId, { kind: 'put', key, value }, async () => (await client.put(key, value), { output: { kind: 'put' } }))) === 'unreachable';
    const expected = read.output.kind === 'get' ? read.output.value : null;
    const condition = read.revision === undefined ? { ifAbsent: true } : { ifRevision: read.revision };
    const outcome = await this.record(clientId, { kind: 'cas', key, expected, value }, async () => {
      try {
        await client.put(key, value, condition);
        return { output: { kind: 'cas', ok: true } };
      } catch (error) {
        if (isImpulseError(error, 'IMPULSE_ERR_PRECONDITION_FAILED')) return { output: { kind: 'cas', ok: false } };
        throw error;
      }
    });
    return outcome === 'unreachable';
  }

  /**
   * A client (`clientId`, first through member `member`) writing batches
   * across shards until stopped, each on a pair of `pairs` (keys of two
   * shards): every other one a get of the first key then a batch of a put
   * conditioned on what it read and a put of the second key, else a batch of
   * two puts. Recorded per key: the conditional put as a cas, the second put
   * as a put (none when the condition failed: the batch wrote nothing) — so
   * the per-key check sees every write a batch made.
   */
  async runBatches(clientId: number, member: number, pairs: ReadonlyArray<readonly [string, string]>): Promise<void> {
    const { members } = this.options;
    for (let n = 0; !this.stopped; n++) {
      const client = new ImpulseClient({ endpoint: this.cluster.url(member), timeoutMs: 3000, writeRetriesMax: 0 });
      try {
        const [first, second] = pairs[n % pairs.length]!;
        const value = `b${clientId}-${n}`;
        let moved: boolean;
        if (n % 2 === 0) moved = await this.recordBatch(clientId, [{ kind: 'put', key: first, value }, { kind: 'put', key: second, value }], () => client.batch([{ op: 'put', key: first, value }, { op: 'put', key: second, value }]));
        else {
          const read = await this.record(clientId, { kind: 'get', key: first }, async () => {
            const found = await client.getWithRevision(first);
            return { output: { kind: 'get', value: found?.value.toString() ?? null }, revision: found?.revision };
          });
          if (read === 'skipped') continue;
          moved = read === 'unreachable';
          if (!moved && typeof read === 'object' && read.output.kind === 'get') {
            const condition = read.revision === undefined ? { ifAbsent: true } : { ifRevision: read.revision };
            moved = await this.recordBatch(clientId, [{ kind: 'cas', key: first, expected: read.output.value, value }, { kind: 'put', key: second, value }], () => client.batch([{ op: 'put', key: first, value, ...condition }, { op: 'put', key: second, value }]));
          }
        }
        if (moved) member = (member % members) + 1;
      } finally {
        client.close();
      }
    }
  }

  /** Runs one batch and records it per key (see `runBatches`); true when the member did not answer. */
  private async recordBatch(clientId: number, inputs: readonly KvInput[], work: () => Promise<unknown>): Promise<boolean> {
    const call = this.now();
    try {
      await work();
      const ret = this.now();
      for (const input of inputs) this.operations.push({ clientId, input, call, return: ret, output: input.kind === 'cas' ? { kind: 'cas', ok: true } : { kind: 'put' } });
      return false;
    } catch (error) {
      const ret = this.now();
      if (isImpulseError(error, 'IMPULSE_ERR_PRECONDITION_FAILED')) {
        const cas = inputs.find((input) => input.kind === 'cas');
        if (cas !== undefined) this.operations.push({ clientId, input: cas, call, return: ret, output: { kind: 'cas', ok: false } });
        return false;
      }
      const noEffect = isImpulseError(error) && NO_EFFECT.has(error.code);
      if (!noEffect) for (const input of inputs) this.operations.push({ clientId, input, call, return: undefined, output: undefined });
      await new Promise((resolve) => setTimeout(resolve, 20));
      return isImpulseError(error, 'IMPULSE_ERR_CLIENT_UNREACHABLE') || isImpulseError(error, 'IMPULSE_ERR_CLIENT_TIMEOUT');
    }
  }

  /** Runs `work` and records it; refusals with no effect are left out, other failures recorded with an unknown outcome. */
  private async record(
    clientId: number,
    input: KvInput,
    work: () => Promise<{ output: KvOutput; revision?: number | undefined }>,
  ): Promise<{ output: KvOutput; revision?: number | undefined } | 'skipped' | 'unreachable'> {
    const call = this.now();
    try {
      const result = await work();
      this.operations.push({ clientId, input, call, return: this.now(), output: result.output });
      return result;
    } catch (error) {
      const noEffect = isImpulseError(error) && NO_EFFECT.has(error.code);
      if (input.kind !== 'get' && !noEffect) this.operations.push({ clientId, input, call, return: undefined, output: undefined });
      const unreachable = isImpulseError(error, 'IMPULSE_ERR_CLIENT_UNREACHABLE') || isImpulseError(error, 'IMPULSE_ERR_CLIENT_TIMEOUT');
      await new Promise((resolve) => setTimeout(resolve, 20));
      return unreachable ? 'unreachable' : 'skipped';
    }
  }
}


/**
 * Waits until every shard of the map (as member `viewFrom` has it) stands at
 * one applied index on every member that hosts it, then asserts their
 * digests equal and that exactly the map's replicas host it (the members
 * `ids`, all running). For clusters whose members host different shards
 * (after moves), where the members' whole digests cannot agree.
 */
export async function settledShardDigests(cluster: ProcessCluster, ids: readonly number[], viewFrom: number, timeoutMs = 20_000): Promise<Map<number, string>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = await cluster.client(viewFrom).shards();
    const digests = await Promise.all(ids.map(async (id) => ({ id, shards: (await cluster.client(id).digest()).shards ?? [] })));
    const byShard = new Map<number, Array<{ member: number; appliedIndex: number; digest: string }>>();
    for (const { id, shards } of digests) for (const shard of shards) byShard.set(shard.id, [...(byShard.get(shard.id) ?? []), { member: id, ...shard }]);
    const unsettled = view.shards.filter((shard) => {
      const hosts = byShard.get(shard.id) ?? [];
      return hosts.map((host) => host.member).sort().join() !== [...shard.replicas].sort().join() || new Set(hosts.map((host) => host.appliedIndex)).size !== 1;
    });
    if (unsettled.length === 0) {
      for (const shard of view.shards) {
        const hosts = byShard.get(shard.id)!;
        assert.equal(new Set(hosts.map((host) => host.digest)).size, 1, `shard ${shard.id} differs between its replicas at index ${hosts[0]!.appliedIndex}: ${JSON.stringify(hosts)}`);
      }
      return new Map(view.shards.map((shard) => [shard.id, byShard.get(shard.id)![0]!.digest]));
    }
    if (Date.now() > deadline) throw new Error(`shards did not settle: ${unsettled.map((shard) => `${shard.id} on ${shard.replicas.join(',')}: ${JSON.stringify(byShard.get(shard.id) ?? [])}`).join('; ')}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * Writers of batches of fresh keys, one under each of `prefixes`
 * (`<prefix><writer>-<n>`; in different shards, a batch is a transaction
 * across them), until stopped; then `checkWhole` reads them back: every batch
 * present whole or not at all, and whole when it was acknowledged. `answers`
 * counts the answers by code ('applied' for an acknowledged batch).
 */
export class FreshBatches {
  readonly answers = new Map<string, number>();
  private readonly acknowledged = new Set<string>();
  private readonly sent: string[] = [];
  private stopped = false;

  /** `members`: how many members the writers spread over (ids 1..members): a writer whose member does not answer moves to the next. */
  constructor(
    private readonly cluster: ProcessCluster,
    private readonly prefixes: readonly string[],
    private readonly members: number,
  ) {}

  stop(): void {
    this.stopped = true;
  }

  get applied(): number {
    return this.answers.get('applied') ?? 0;
  }

  /** One writer starting at each of `first` (a member may be named more than once), each with its own clients (no retries inside them: every attempt is answered here), 20 ms between batches. */
  run(first: readonly number[], timeoutMs: number): Promise<void> {
    return Promise.all(
      first.map(async (start, writer) => {
        const clients = new Map<number, ImpulseClient>();
        let member = start;
        try {
          for (let n = 0; !this.stopped; n++) {
            const name = `${writer}-${n}`;
            this.sent.push(name);
            let client = clients.get(member);
            if (client === undefined) clients.set(member, (client = new ImpulseClient({ endpoint: this.cluster.url(member), timeoutMs, writeRetriesMax: 0 })));
            try {
              await client.batch(this.prefixes.map((prefix) => ({ op: 'put' as const, key: `${prefix}${name}`, value: 'x' })));
              this.count('applied');
              this.acknowledged.add(name);
            } catch (error) {
              this.count(isImpulseError(error) ? error.code : String(error));
              if (isImpulseError(error, 'IMPULSE_ERR_CLIENT_UNREACHABLE') || isImpulseError(error, 'IMPULSE_ERR_CLIENT_TIMEOUT')) member = (member % this.members) + 1;
            }
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        } finally {
          for (const client of clients.values()) client.close();
        }
      }),
    ).then(() => undefined);
  }

  /** Every batch sent is whole or absent through `reader`, and whole when acknowledged. */
  async checkWhole(reader: ImpulseClient): Promise<void> {
    assert.ok(this.sent.length < 1000, `${this.sent.length} batches: more than one page`);
    const present = await Promise.all(this.prefixes.map(async (prefix) => new Set((await reader.scan({ prefix, limit: 1000 })).items.map((item) => item.key.toString().slice(prefix.length)))));
    for (const name of this.sent) {
      const held = present.map((keys) => keys.has(name));
      assert.ok(held.every((one) => one === held[0]), `batch ${name} applied in part: ${this.prefixes.map((prefix, i) => `${prefix}${name} ${held[i] ? 'present' : 'absent'}`).join(', ')}`);
      if (this.acknowledged.has(name)) assert.ok(held[0], `acknowledged batch ${name} is missing`);
    }
  }

  private count(code: string): void {
    this.answers.set(code, (this.answers.get(code) ?? 0) + 1);
  }
}
