/**
 * Real `impulse serve --node-id` processes on 127.0.0.1 (each in its own
 * process group, free ports, temp data directories):
 *
 *   - three members: writes through every member, every key read from every
 *     member, linearizable and serializable; /cluster, /health, /status;
 *   - kill -9 of the leader while 16 writers run puts, overwrites, deletes,
 *     batches and conditional puts: a new leader acknowledges a write within
 *     2 s; after the old leader restarts, every acknowledged write is on every
 *     member, no batch is half there, and the replicas' digests are equal.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { ImpulseClient } from '../client/client.js';
import { isImpulseError } from '../errors.js';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';

describe('a three-member cluster of processes', () => {
  let cluster: ProcessCluster | undefined;
  after(async () => cluster?.close());

  it('serves writes through every member and reads of every key from every member', async () => {
    cluster = await ProcessCluster.start(3);
    const leader = await cluster.waitForLeader();
    for (const id of [1, 2, 3]) await cluster.client(id).put(`key-${id}`, `value-${id}`);
    await cluster.client(1).batch([
      { op: 'put', key: 'b1', value: 'x' },
      { op: 'put', key: 'b2', value: 'y' },
    ]);
    for (const reader of [1, 2, 3]) {
      for (const key of ['key-1', 'key-2', 'key-3', 'b1', 'b2']) {
        assert.notEqual(await cluster.client(reader).get(key), undefined, `linearizable read of ${key} at ${reader}`);
      }
    }
    const written = await cluster.client(2).put('fresh', 'now');
    for (const reader of [1, 2, 3]) {
      // Serializable reads may lag: wait until each member applied the write, then it must be there.
      const deadline = Date.now() + 5000;
      let got = await cluster.client(reader).getWithRevision('fresh', { consistency: 'serializable' });
      while (got === undefined && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        got = await cluster.client(reader).getWithRevision('fresh', { consistency: 'serializable' });
      }
      assert.equal(got?.revision, written.revision, `serializable read at ${reader}`);
    }
    const view = await cluster.client(3).cluster();
    assert.equal(view.leader, leader);
    assert.deepEqual(view.members.map((member) => member.id), [1, 2, 3]);
    assert.equal(await cluster.client(3).health(), true);
    const status = (await cluster.client(leader).status()) as { mode: string; figures: Record<string, number>; replication: { role: string } };
    assert.equal(status.mode, 'raft');
    assert.equal(status.replication.role, 'leader');
    assert.ok(status.figures['raft_commit_latency_ms_count']! > 0);
    const metrics = await fetch(`${cluster.url(leader)}/metrics`).then((response) => response.text());
    assert.match(metrics, /impulse_raft_commit_latency_seconds_bucket/);
    assert.match(metrics, /figure="raft_term"/);
  });

  it('survives kill -9 of the leader under 16 writers: a new leader within 2 s, nothing acknowledged lost, no half batch, equal replicas', async (t) => {
    cluster ??= await ProcessCluster.start(3);
    const oldLeader = await cluster.waitForLeader();
    const workload = new Workload(cluster, 16);
    const running = workload.run();
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const killedAt = Date.now();
    await cluster.kill(oldLeader);
    workload.dead.add(oldLeader);
    await workload.waitForAckAfter(killedAt, 10_000);
    const failoverMs = workload.firstAckAfter(killedAt)! - killedAt;
    await new Promise((resolve) => setTimeout(resolve, 2000));
    workload.stop();
    await running;
    t.diagnostic(`first write started after the kill of the leader acknowledged ${failoverMs} ms after it; ${workload.acknowledged} writes acknowledged in all`);
    assert.ok(failoverMs < 2000, `first acknowledged write ${failoverMs} ms after the kill`);
    await cluster.start(oldLeader);
    workload.dead.delete(oldLeader);
    // The killed member's saves were made durable by its node journal (one fsync for every group): its restart replayed them.
    const restarted = (await cluster.client(oldLeader).status()) as { figures: Record<string, number> };
    assert.ok(restarted.figures['raft_journal_replayed_records']! > 0, 'the restarted member replayed nothing from its log journal');
    const digests = await cluster.settledDigests(30_000);
    assert.equal(new Set([...digests.values()].map((digest) => digest.digest)).size, 1, `replicas differ: ${JSON.stringify([...digests])}`);
    for (const id of [1, 2, 3]) await workload.check(cluster.client(id), id);
    assert.ok(workload.acknowledged > 100, `only ${workload.acknowledged} writes acknowledged`);
  });
});

type Outcome = 'ok' | 'failed' | 'unknown';

interface Recorded {
  readonly kind: 'put' | 'del' | 'batch' | 'cas';
  readonly key: string;
  /** The value the op leaves (null: deleted or absent). */
  readonly value: string | null;
  /** Keys of a batch (all carry `value`). */
  readonly keys?: readonly string[];
  outcome: Outcome;
}

/**
 * 16 writers, each with keys of its own (so its final state is known from its
 * own history): puts and overwrites of 4 keys, deletes, 3-key batches on fresh
 * keys, and create-if-absent puts on fresh keys. Each writer talks to one
 * member, moving to the next when its member is dead.
 */
class Workload {
  readonly dead = new Set<number>();
  readonly history: Recorded[][] = [];
  /** When each acknowledged write started and when it was acknowledged (ms since the epoch). */
  private readonly acks: { startedAt: number; ackedAt: number }[] = [];
  private stopped = false;

  constructor(
    private readonly cluster: ProcessCluster,
    private readonly writers: number,
  ) {}

  get acknowledged(): number {
    return this.acks.length;
  }

  run(): Promise<void> {
    return Promise.all(Array.from({ length: this.writers }, (_, w) => this.writer(w))).then(() => undefined);
  }

  stop(): void {
    this.stopped = true;
  }

  /** The first acknowledgement of a write that STARTED after `time`. */
  firstAckAfter(time: number): number | undefined {
    const after = this.acks.filter((ack) => ack.startedAt > time).map((ack) => ack.ackedAt);
    return after.length === 0 ? undefined : Math.min(...after);
  }

  async waitForAckAfter(time: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.firstAckAfter(time) === undefined) {
      if (Date.now() > deadline) throw new Error(`no write acknowledged within ${timeoutMs} ms of the kill`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  private async writer(w: number): Promise<void> {
    const history: Recorded[] = [];
    this.history[w] = history;
    let member = (w % 3) + 1;
    for (let n = 0; !this.stopped; n++) {
      while (this.dead.has(member)) member = (member % 3) + 1;
      const client = this.cluster.client(member, 5000);
      const record = this.next(w, n);
      history.push(record);
      const startedAt = Date.now();
      try {
        if (record.kind === 'put') await client.put(record.key, record.value!);
        else if (record.kind === 'del') await client.del(record.key);
        else if (record.kind === 'cas') await client.put(record.key, record.value!, { ifAbsent: true });
        else await client.batch(record.keys!.map((key) => ({ op: 'put' as const, key, value: record.value! })));
        record.outcome = 'ok';
        this.acks.push({ startedAt, ackedAt: Date.now() });
      } catch (error) {
        // No effect: refused before anything was proposed. Anything else (no answer, unknown outcome) may have applied.
        record.outcome = isImpulseError(error) && ['IMPULSE_ERR_UNAVAILABLE', 'IMPULSE_ERR_RAFT_NOT_LEADER', 'IMPULSE_ERR_SHUTTING_DOWN'].includes(error.code) ? 'failed' : 'unknown';
        if (isImpulseError(error, 'IMPULSE_ERR_CLIENT_UNREACHABLE')) member = (member % 3) + 1;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }

  private next(w: number, n: number): Recorded {
    const value = `w${w}-n${n}`;
    switch (n % 5) {
      case 0:
      case 1:
        return { kind: 'put', key: `w${w}/k${n % 4}`, value, outcome: 'unknown' };
      case 2:
        return { kind: 'del', key: `w${w}/k${(n + 1) % 4}`, value: null, outcome: 'unknown' };
      case 3:
        return { kind: 'batch', key: `w${w}/batch${n}`, keys: ['a', 'b', 'c'].map((part) => `w${w}/batch${n}/${part}`), value, outcome: 'unknown' };
      default:
        return { kind: 'cas', key: `w${w}/cas${n}`, value, outcome: 'unknown' };
    }
  }

  /** Every writer's keys at member `id` (serializable reads: the replicas have settled) against its history. */
  async check(client: ImpulseClient, id: number): Promise<void> {
    const stored = new Map<string, string>();
    for await (const item of client.scanAll({ prefix: 'w', consistency: 'serializable' })) stored.set(item.key.toString(), item.value.toString());
    for (const [w, history] of this.history.entries()) {
      for (let k = 0; k < 4; k++) {
        const key = `w${w}/k${k}`;
        const ops = history.filter((record) => record.key === key);
        const lastAck = ops.map((record) => record.outcome).lastIndexOf('ok');
        const allowed = new Set<string | null>([lastAck === -1 ? null : ops[lastAck]!.value, ...ops.slice(lastAck + 1).filter((record) => record.outcome === 'unknown').map((record) => record.value)]);
        assert.ok(allowed.has(stored.get(key) ?? null), `member ${id}: ${key} is ${stored.get(key) ?? 'absent'}, expected one of ${[...allowed].join(', ')}`);
      }
      for (const record of history.filter((candidate) => candidate.kind === 'batch')) {
        const present = record.keys!.filter((key) => stored.get(key) === record.value).length;
        if (record.outcome === 'ok') assert.equal(present, 3, `member ${id}: acknowledged batch ${record.key} has ${present} of 3 keys`);
        else if (record.outcome === 'failed') assert.equal(present, 0, `member ${id}: failed batch ${record.key} has ${present} keys`);
        else assert.ok(present === 0 || present === 3, `member ${id}: batch ${record.key} of unknown outcome is half there (${present} of 3)`);
      }
      for (const record of history.filter((candidate) => candidate.kind === 'cas')) {
        if (record.outcome === 'ok') assert.equal(stored.get(record.key), record.value, `member ${id}: acknowledged create ${record.key} missing`);
        if (record.outcome === 'failed') assert.equal(stored.get(record.key), undefined, `member ${id}: failed create ${record.key} present`);
      }
    }
  }
}
