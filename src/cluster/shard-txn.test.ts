/**
 * Transactions across shards in a real (in-process) sharded cluster: three
 * members, split keys "g,p" (shards 2 [..g), 3 [g..p), 4 [p..)), a short
 * lock TTL.
 *
 *   - a batch across three shards commits atomically from any member, leaves
 *     no lock and no record; a failed condition in one shard applies nothing
 *     and names the op's index in the batch;
 *   - one writer committing a = b = k (k rising) across two shards while
 *     readers on every member read a then b and b then a: a reader never sees
 *     the second key older than the first it read (no batch half visible),
 *     and conflicting concurrent batches on another pair end equal;
 *   - a coordinator that "crashes" (its steps proposed by hand, the rest
 *     never sent) after the prepares, after the commit, after some resolves:
 *     readers see the old values while undecided and the new ones once
 *     committed; a write meets the pending lock as IMPULSE_ERR_TXN_LOCKED;
 *     abandoned locks are rolled back after the TTL, committed ones rolled
 *     forward, and every lock is gone in the end (the background sweep);
 *   - a split carries an undecided transaction's locks and record into the
 *     new shard (the split's GC deletes the parent's frozen copies), and a merge of that shard back carries them into the
 *     survivor, where a lock whose primary key lived in the merged shard
 *     finds its record.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import type { KvCommand } from '../kv/command.js';
import { type TxnCommand, encodeTxnCommand } from '../kv/txn.js';
import { InProcessCluster, until } from '../../testkit/cluster/in-process.js';
import type { Member } from './open-member.js';

const SHARD_IDS = [2, 3, 4];
const LOCK_TTL_MS = 2000;
/** Answers that applied nothing and ask for a retry. */
const RETRYABLE = ['IMPULSE_ERR_TXN_ABORTED', 'IMPULSE_ERR_TXN_LOCKED', 'IMPULSE_ERR_UNAVAILABLE'] as const;
const b = (text: string): Buffer => Buffer.from(text);
const put = (...pairs: Array<[string, string]>): KvCommand => ({ ops: pairs.map(([key, value]) => ({ type: 'put' as const, key: b(key), value: b(value) })) });

const ready = (member: Member): boolean => member.shards.map !== undefined && SHARD_IDS.every((id) => (member.groups.get(id)?.group.leader ?? 0) !== 0);

describe('transactions across shards (split keys g, p)', () => {
  let cluster: InProcessCluster;
  before(async () => {
    cluster = await InProcessCluster.start(3, { flags: { splitKeys: 'g,p', txnLockTtlMs: String(LOCK_TTL_MS) } }); // the TTL through the flag, --txn-lock-ttl-ms
    await cluster.waitForLeader();
    await until('every member applied the map and knows a leader of every shard', () => cluster.running().every((id) => ready(cluster.member(id))));
  });
  after(async () => {
    await cluster?.close();
  });

  /** Locks and records held by any replica of any shard. */
  const txnStateLeft = (): number => {
    let held = 0;
    for (const id of cluster.running()) for (const shard of SHARD_IDS) held += cluster.member(id).groups.get(shard)?.group.machine.machine.lockCount ?? 0;
    return held;
  };
  /** Transaction records held by any replica of any shard. */
  const recordsLeft = (): number => {
    let held = 0;
    for (const id of cluster.running()) for (const shard of SHARD_IDS) held += cluster.member(id).groups.get(shard)?.group.machine.machine.txnRecordIds().length ?? 0;
    return held;
  };
  const value = async (member: Member, key: string): Promise<string | undefined> => (await member.service.get(b(key)))?.value.toString();

  it('commits a batch across three shards atomically, from any member, and leaves no lock behind', async () => {
    const outcome = await cluster.member(2).service.write(put(['apple', '1'], ['mango', '2'], ['zebra', '3']));
    assert.ok(outcome.revision > 0);
    for (const id of cluster.running()) {
      const member = cluster.member(id);
      assert.deepEqual([await value(member, 'apple'), await value(member, 'mango'), await value(member, 'zebra')], ['1', '2', '3']);
    }
    await until('no replica holds a lock', () => txnStateLeft() === 0);
    await until('the record is forgotten on every replica', () => recordsLeft() === 0);
    // A caller that groups unrelated writes (the RESP coalescer) may ask for a refusal instead.
    await assert.rejects(cluster.member(1).service.write(put(['apple', 'no'], ['zebra', 'no']), { refuseCrossShard: true }), (error) => isImpulseError(error, 'IMPULSE_ERR_BATCH_CROSS_SHARD'));
    assert.equal(await value(cluster.member(1), 'apple'), '1');
  });

  it('applies nothing when a condition in one shard fails, naming the op in the batch', async () => {
    const current = (await cluster.member(1).service.get(b('zebra')))!.revision;
    const batch: KvCommand = { ops: [{ type: 'put', key: b('apple'), value: b('x') }, { type: 'put', key: b('zebra'), value: b('x'), condition: { ifRevision: current + 1000 } }, { type: 'del', key: b('mango'), condition: { ifRevision: 999_999 } }] };
    await assert.rejects(cluster.member(3).service.write(batch), (error) => isImpulseError(error, 'IMPULSE_ERR_PRECONDITION_FAILED') && [1, 2].includes(error.details?.['op'] as number));
    assert.deepEqual([await value(cluster.member(1), 'apple'), await value(cluster.member(1), 'mango'), await value(cluster.member(1), 'zebra')], ['1', '2', '3']);
    await until('no replica holds a lock', () => txnStateLeft() === 0);
    const ok: KvCommand = { ops: [{ type: 'put', key: b('apple'), value: b('y'), condition: { ifRevision: (await cluster.member(1).service.get(b('apple')))!.revision } }, { type: 'del', key: b('zebra'), condition: { ifRevision: current } }] };
    await cluster.member(1).service.write(ok);
    assert.deepEqual([await value(cluster.member(2), 'apple'), await value(cluster.member(2), 'zebra')], ['y', undefined]);
  });

  it('never shows a batch half applied to concurrent readers, and conflicting batches end consistent', async () => {
    let writing = true;
    let violations = 0;
    let reads = 0;
    const writer = (async () => {
      for (let k = 1; k <= 25; k++) {
        const batch = put(['a-pair', String(k).padStart(3, '0')], ['z-pair', String(k).padStart(3, '0')]);
        // Refusals that applied nothing (a loaded machine can pass the commit deadline) are tried again.
        for (let attempt = 0; ; attempt++) {
          try {
            await cluster.member((k % 3) + 1).service.write(batch);
            break;
          } catch (error) {
            if (attempt >= 20 || !RETRYABLE.some((code) => isImpulseError(error, code))) throw error;
          }
        }
      }
      writing = false;
    })();
    const reader = async (id: number, first: string, second: string): Promise<void> => {
      while (writing) {
        const member = cluster.member(id);
        try {
          const one = (await value(member, first)) ?? '000';
          const two = (await value(member, second)) ?? '000';
          reads++;
          if (two < one) violations++; // the later read saw an older batch than the earlier one
        } catch (error) {
          if (!isImpulseError(error, 'IMPULSE_ERR_UNAVAILABLE')) throw error; // locks still being resolved: a retryable answer
        }
      }
    };
    // Conflicting writers on another pair: each batch either applies whole or is refused.
    const conflicting = async (id: number): Promise<void> => {
      for (let i = 0; i < 8; i++) {
        try {
          await cluster.member(id).service.write(put(['b-conflict', `${id}-${i}`], ['q-conflict', `${id}-${i}`]));
        } catch (error) {
          if (!RETRYABLE.some((code) => isImpulseError(error, code))) throw error;
        }
      }
    };
    await Promise.all([writer, reader(1, 'a-pair', 'z-pair'), reader(2, 'z-pair', 'a-pair'), reader(3, 'a-pair', 'z-pair'), conflicting(1), conflicting(2)]);
    assert.ok(reads > 10, `only ${reads} reads`);
    assert.equal(violations, 0, `${violations} of ${reads} reads saw a batch half applied`);
    assert.equal(await value(cluster.member(3), 'a-pair'), '025');
    assert.equal(await value(cluster.member(3), 'z-pair'), '025');
    const [left, right] = [await value(cluster.member(1), 'b-conflict'), await value(cluster.member(1), 'q-conflict')];
    assert.equal(left, right, 'the conflicting pair ended half from one batch and half from another');
    await until('no replica holds a lock', () => txnStateLeft() === 0);
  });

  /** Proposes one transaction step to `shard` through `member` (a coordinator's step, sent by hand). */
  const step = (member: Member, shard: number, command: TxnCommand): Promise<unknown> => member.groups.get(shard)!.requests.write(encodeTxnCommand(command), false);

  it('rolls an abandoned prepare back after the TTL: old values meanwhile, writes meet the lock', async () => {
    const member = cluster.member(1);
    await member.service.write(put(['crash-a', 'old']));
    await member.service.write(put(['z-crash', 'old']));
    const primaryKey = b('crash-a');
    await step(member, 2, { kind: 'prepare', txnId: 'dead-1', primaryKey, createdAtMs: 0, ops: [{ type: 'put', key: primaryKey, value: b('new') }] });
    await step(member, 4, { kind: 'prepare', txnId: 'dead-1', primaryKey, createdAtMs: 0, ops: [{ type: 'put', key: b('z-crash'), value: b('new') }] });
    assert.equal(await value(cluster.member(2), 'z-crash'), 'old', 'an undecided transaction reads as before it');
    await assert.rejects(cluster.member(3).service.write(put(['z-crash', 'other'])), (error) => isImpulseError(error, 'IMPULSE_ERR_TXN_LOCKED') && error.details?.['txn'] === 'dead-1');
    await until('the abandoned transaction is rolled back', () => txnStateLeft() === 0, 6 * LOCK_TTL_MS);
    assert.deepEqual([await value(cluster.member(3), 'crash-a'), await value(cluster.member(3), 'z-crash')], ['old', 'old']);
    await cluster.member(3).service.write(put(['z-crash', 'other']));
    // A late commit of the rolled-back transaction finds no primary lock: aborted.
    await assert.rejects(step(member, 2, { kind: 'commit', txnId: 'dead-1', primaryKey, keys: [primaryKey], otherKeys: [b('z-crash')] }), (error) => isImpulseError(error, 'IMPULSE_ERR_TXN_ABORTED'));
  });

  it('rolls a committed transaction forward when its coordinator died after the commit or after some resolves', async () => {
    const member = cluster.member(2);
    const primaryKey = b('fwd-a');
    const prepare = (shard: number, key: string): Promise<unknown> => step(member, shard, { kind: 'prepare', txnId: 'dead-2', primaryKey, createdAtMs: 0, ops: [{ type: 'put', key: b(key), value: b('v2') }] });
    await prepare(2, 'fwd-a');
    await prepare(3, 'm-fwd');
    await prepare(4, 'z-fwd');
    await step(member, 2, { kind: 'commit', txnId: 'dead-2', primaryKey, keys: [primaryKey], otherKeys: [b('m-fwd'), b('z-fwd')] });
    await step(member, 3, { kind: 'resolve', txnId: 'dead-2', commit: true, keys: [b('m-fwd')] });
    // z-fwd is still locked; its transaction committed: every reader sees it, a range across the shards too.
    const items = (await cluster.member(3).service.range({ limit: 1000 })).filter((item) => item.key.toString().includes('fwd'));
    assert.deepEqual(items.map((item) => `${item.key.toString()}=${item.value.toString()}`), ['fwd-a=v2', 'm-fwd=v2', 'z-fwd=v2']);
    await until('every lock is resolved and the record forgotten (the sweep)', () => txnStateLeft() === 0 && recordsLeft() === 0, 6 * LOCK_TTL_MS);
    assert.equal(await value(cluster.member(1), 'z-fwd'), 'v2');
    // A transaction that committed on the primary and resolved nowhere: the sweep rolls it forward without any reader.
    const key3 = b('b-sweep');
    await step(member, 2, { kind: 'prepare', txnId: 'dead-3', primaryKey: key3, createdAtMs: 0, ops: [{ type: 'put', key: key3, value: b('s') }] });
    await step(member, 4, { kind: 'prepare', txnId: 'dead-3', primaryKey: key3, createdAtMs: 0, ops: [{ type: 'del', key: b('zebra-gone') }] });
    await step(member, 2, { kind: 'commit', txnId: 'dead-3', primaryKey: key3, keys: [key3], otherKeys: [b('zebra-gone')] });
    await until('the sweep resolves the secondary lock and forgets the record', () => txnStateLeft() === 0 && recordsLeft() === 0, 6 * LOCK_TTL_MS);
    assert.equal(await value(cluster.member(3), 'b-sweep'), 's');
  });
});

describe('transactions across shards through a split (split key p, a long lock TTL)', () => {
  let cluster: InProcessCluster;
  before(async () => {
    cluster = await InProcessCluster.start(3, { flags: { splitKeys: 'p' }, txnLockTtlMs: 120_000 });
    await cluster.waitForLeader();
    await until('every member applied the map and knows a leader of every shard', () => cluster.running().every((id) => { const member = cluster.member(id); return member.shards.map !== undefined && [2, 3].every((shard) => (member.groups.get(shard)?.group.leader ?? 0) !== 0); }));
  });
  after(async () => {
    await cluster?.close();
  });

  it('carries an undecided transaction\'s locks and record into the shard a split makes, where it then commits', async () => {
    const member = cluster.member(1);
    const write = (shard: number, command: TxnCommand): Promise<unknown> => member.groups.get(shard)!.requests.write(encodeTxnCommand(command), false);
    await member.service.write(put(['x-split', 'old']));
    const primaryKey = b('w-split');
    await write(3, { kind: 'prepare', txnId: 'split-1', primaryKey, createdAtMs: 0, ops: [{ type: 'put', key: primaryKey, value: b('new') }, { type: 'put', key: b('x-split'), value: b('new') }] });
    await write(2, { kind: 'prepare', txnId: 'split-1', primaryKey, createdAtMs: 0, ops: [{ type: 'put', key: b('b-split'), value: b('new') }] });
    await member.admin.splitShard(b('v'));
    const right = (): number | undefined => cluster.member(1).shards.map?.shards.find((shard) => shard.start.equals(b('v')))?.id;
    await until('every replica made the new shard and holds the carried lock', () => {
      const id = right();
      return id !== undefined && cluster.running().every((each) => cluster.member(each).groups.get(id)?.group.machine.machine.lockOf(b('x-split'))?.txnId === 'split-1');
    });
    assert.equal(await value(cluster.member(2), 'x-split'), 'old', 'undecided: the value before the transaction');
    // The coordinator commits at the primary key's shard as the map has it now: the new shard, which took the locks.
    await write(right()!, { kind: 'commit', txnId: 'split-1', primaryKey, keys: [primaryKey, b('x-split')], otherKeys: [b('b-split')] });
    assert.deepEqual([await value(cluster.member(3), 'w-split'), await value(cluster.member(3), 'x-split'), await value(cluster.member(2), 'b-split')], ['new', 'new', 'new']);
    // The parent's frozen copies (the locks on w-split and x-split, the record of split-1) go with the split's GC.
    await until('the split GC deleted the parent\'s frozen copies of the locks and the record on every member', () =>
      cluster.running().every((id) => {
        const parent = cluster.member(id).groups.get(3)?.group.machine.machine;
        return parent !== undefined && parent.lockCount === 0 && !parent.txnRecordIds().includes('split-1');
      }),
    );
  });

  it('merges a shard holding locks and records: they come into the survivor, where they resolve and commit', async () => {
    const member = cluster.member(1);
    const write = (shard: number, command: TxnCommand): Promise<unknown> => member.groups.get(shard)!.requests.write(encodeTxnCommand(command), false);
    const right = cluster.member(1).shards.map!.shards.find((shard) => shard.start.equals(b('v')))!.id; // the shard the split above made: [v, ..)
    // merge-1: primary y-merge in the right shard, committed there; its locks in shards 3 and 2 left unresolved (a coordinator that died).
    const primaryKey = b('y-merge');
    await write(right, { kind: 'prepare', txnId: 'merge-1', primaryKey, createdAtMs: 0, ops: [{ type: 'put', key: primaryKey, value: b('new') }] });
    await write(3, { kind: 'prepare', txnId: 'merge-1', primaryKey, createdAtMs: 0, ops: [{ type: 'put', key: b('q-merge'), value: b('new') }] });
    await write(2, { kind: 'prepare', txnId: 'merge-1', primaryKey, createdAtMs: 0, ops: [{ type: 'put', key: b('c-merge'), value: b('new') }] });
    await write(right, { kind: 'commit', txnId: 'merge-1', primaryKey, keys: [primaryKey], otherKeys: [b('q-merge'), b('c-merge')] });
    // merge-2: undecided, a lock in the right shard (its primary) and one in shard 2.
    const primary2 = b('x-two');
    await write(right, { kind: 'prepare', txnId: 'merge-2', primaryKey: primary2, createdAtMs: 0, ops: [{ type: 'put', key: primary2, value: b('two') }] });
    await write(2, { kind: 'prepare', txnId: 'merge-2', primaryKey: primary2, createdAtMs: 0, ops: [{ type: 'put', key: b('d-two'), value: b('two') }] });
    // The merge no longer waits for them (it used to: a freeze was a no-op while the right shard held a lock or a record).
    await member.shards.merge(3);
    await until('the merge finished on every member and the survivor holds the carried lock', () =>
      cluster.running().every((id) => {
        const each = cluster.member(id);
        const survivor = each.groups.get(3)?.group.machine;
        return each.shards.map?.shards.some((shard) => shard.id === right) === false && survivor?.bounds?.end === null && survivor.machine.lockOf(primary2)?.txnId === 'merge-2';
      }),
    );
    for (const id of cluster.running()) assert.equal((await cluster.member(id).groups.get(3)!.group.machine.machine.txnRecord('merge-1'))?.status, 'committed', `member ${id}: the record came with the merge`);
    // A lock whose primary lived in the merged shard finds its record in the survivor: readers resolve it forward.
    assert.deepEqual([await value(cluster.member(2), 'q-merge'), await value(cluster.member(3), 'c-merge'), await value(cluster.member(1), 'y-merge')], ['new', 'new', 'new']);
    assert.equal(await value(cluster.member(2), 'x-two'), undefined, 'undecided: the value before the transaction');
    await write(3, { kind: 'commit', txnId: 'merge-2', primaryKey: primary2, keys: [primary2], otherKeys: [b('d-two')] });
    assert.deepEqual([await value(cluster.member(3), 'x-two'), await value(cluster.member(1), 'd-two')], ['two', 'two']);
  });

  const value = async (member: Member, key: string): Promise<string | undefined> => (await member.service.get(b(key)))?.value.toString();
});
