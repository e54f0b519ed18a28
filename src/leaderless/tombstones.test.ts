import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LeaderlessTestNetwork, eventually, networksOfThisSuite } from '../../testkit/leaderless/network.js';
import { type SiblingSet, contextOf, liveValues, onlyTombstones } from './dvv.js';
import type { NodeId } from './dvv.js';

const key = (text: string): Buffer => Buffer.from(text);
const values = (set: SiblingSet): string[] => liveValues(set).map((value) => value.toString()).sort();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('tombstone collection', () => {
  const open = networksOfThisSuite();
  const storedOn = (net: LeaderlessTestNetwork, ids: readonly NodeId[], k: Buffer): Promise<SiblingSet[]> => Promise.all(ids.map((id) => net.node(id).replica.read(k)));

  it('removes a tombstone from every owner only after the grace period, and not while an owner is down', async () => {
    const graceMs = 700;
    const net = await open([1, 2, 3], { writeQuorum: 3, tombstoneGraceMs: graceMs, tombstoneIntervalMs: 50, antiEntropyIntervalMs: 0, requestTimeoutMs: 3000 });
    /** Writes and deletes `k`; answers when the delete was sent (its tombstones are written after that, so none may be collected before it plus the grace period). */
    const deleteKey = async (k: Buffer): Promise<number> => {
      await net.node(1).coordinator.put(k, Buffer.from('v'), [], 3);
      const context = contextOf(await net.node(1).coordinator.get(k, 3));
      const sentAt = Date.now();
      await net.node(1).coordinator.put(k, null, context, 3);
      return sentAt;
    };
    const k = key('gone');
    const deleteSentAt = await deleteKey(k);
    await sleep(graceMs / 2);
    const within = await storedOn(net, [1, 2, 3], k);
    // Judged only when the read ended within the grace period (a loaded machine can stretch the sleep and the read past it).
    if (Date.now() - deleteSentAt < graceMs) for (const set of within) assert.ok(onlyTombstones(set), 'kept within the grace period');
    await eventually('collected on every owner', async () => (await storedOn(net, [1, 2, 3], k)).every((set) => set.length === 0));
    assert.ok(Date.now() - deleteSentAt >= graceMs, 'not before the grace period');
    assert.deepEqual(values(await net.node(2).coordinator.get(k, 3)), []);

    // An owner that is not the collecting one (the first owner) is down: nothing is collected until it is back.
    const blocked = Array.from({ length: 50 }, (_, index) => key(`blocked-${index}`)).find((candidate) => net.node(1).ring.preferenceList(candidate, 3)[0] === 1)!;
    await deleteKey(blocked);
    net.stop(3);
    const blockedBefore = net.node(1).tombstones.figures.blocked;
    await eventually('a collection round found the owner down', () => net.node(1).tombstones.figures.blocked >= blockedBefore + 3);
    for (const set of await storedOn(net, [1, 2], blocked)) assert.ok(onlyTombstones(set), 'an owner is down: kept');
    await net.restart(3);
    await eventually('collected once the owner is back', async () => (await storedOn(net, [1, 2, 3], blocked)).every((set) => set.length === 0));
    const digests = await Promise.all([1, 2, 3].map(async (id) => (await net.node(id).store.digest()).digest));
    assert.equal(new Set(digests).size, 1);
  });

  /**
   * The hazard the grace period guards against: a stand-in holds a hint of
   * an older value for an owner and is down while the key is deleted.
   * Back within the grace period, its hint meets the tombstone and stays
   * deleted; back after the tombstone was collected, it brings the value back.
   */
  const staleHintScenario = async (graceMs: number): Promise<{ net: LeaderlessTestNetwork; k: Buffer; owners: NodeId[]; standIn: NodeId }> => {
    const net = await open([1, 2, 3, 4], { replicas: 3, writeQuorum: 3, readQuorum: 3, tombstoneGraceMs: graceMs, tombstoneIntervalMs: 50, antiEntropyIntervalMs: 0, requestTimeoutMs: 3000 });
    const k = Array.from({ length: 50 }, (_, index) => key(`stale-${index}`)).find((candidate) => net.node(1).ring.preferenceList(candidate, 3)[0] === 1)!;
    const owners = net.node(1).ring.preferenceList(k, 3);
    const [first, , last] = owners as [NodeId, NodeId, NodeId];
    const standIn = [1, 2, 3, 4].find((id) => !owners.includes(id))!;
    net.stop(last);
    await eventually('the owner is seen down', () => net.node(first).detector.liveness(last) === 'down');
    await net.node(first).coordinator.put(k, Buffer.from('old'), [], 3);
    assert.equal((await net.node(standIn).store.hints(10)).length, 1, 'the stand-in holds a hint of "old"');
    net.stop(standIn);
    await net.restart(last);
    await eventually('the owner is seen up', () => net.node(first).detector.liveness(last) === 'up');
    const read = await net.node(first).coordinator.get(k, 3);
    await eventually('read repair brought the owner up to date', async () => values(await net.node(last).replica.read(k)).join() === 'old');
    await net.node(first).coordinator.put(k, null, contextOf(read), 3);
    return { net, k, owners, standIn };
  };

  it('a member back within the grace period never resurrects a deleted key', async () => {
    // 8 s: the restart and the hint's delivery must fit in it even on a loaded machine (3 s was close to that under load).
    const { net, k, owners, standIn } = await staleHintScenario(8000);
    await net.restart(standIn);
    await eventually('the stale hint is delivered and retired', async () => (await net.node(standIn).store.hints(10)).length === 0);
    for (const set of await storedOn(net, owners, k)) assert.deepEqual(values(set), [], 'the tombstone superseded the stale hint');
    await eventually('collected on every owner', async () => (await storedOn(net, owners, k)).every((set) => set.length === 0), 30_000);
    assert.deepEqual(values(await net.node(standIn).coordinator.get(k, 3)), []);
  });

  it('a member down longer than the grace period resurrects the deleted value (the documented hazard)', async () => {
    const { net, k, owners, standIn } = await staleHintScenario(300);
    await eventually('collected on every owner while the stand-in is down', async () => (await storedOn(net, owners, k)).every((set) => set.length === 0));
    await net.restart(standIn);
    await eventually('the stale hint is delivered', async () => (await net.node(standIn).store.hints(10)).length === 0);
    assert.deepEqual(values(await net.node(owners[0]!).coordinator.get(k, 3)), ['old'], 'the deleted value is back');
  });

  it('a write after a tombstone was collected on one owner but not the others is kept (dots stay unique after collection)', async () => {
    const net = await open([1, 2, 3], { writeQuorum: 3, tombstoneIntervalMs: 0, antiEntropyIntervalMs: 0 });
    const k = Array.from({ length: 50 }, (_, index) => key(`partial-${index}`)).find((candidate) => net.node(1).ring.preferenceList(candidate, 3)[0] === 1)!;
    await net.node(1).coordinator.put(k, Buffer.from('v'), [], 3);
    await net.node(1).coordinator.put(k, null, contextOf(await net.node(1).coordinator.get(k, 3)), 3);
    const tombstone = await net.node(1).replica.read(k);
    assert.equal(await net.node(1).replica.reap(k, tombstone), true, 'collected on node 1 only (the other reaps were lost)');
    await net.node(1).coordinator.put(k, Buffer.from('new'), [], 3);
    for (const set of await storedOn(net, [1, 2, 3], k)) assert.deepEqual(values(set), ['new']);
  });

  it('a replica refuses to collect a set that is not exactly the expected tombstones', async () => {
    const net = await open([1, 2, 3], { writeQuorum: 3, tombstoneIntervalMs: 0, antiEntropyIntervalMs: 0 });
    const k = key('refused');
    await net.node(1).coordinator.put(k, Buffer.from('v'), [], 3);
    const live = await net.node(1).replica.read(k);
    assert.equal(await net.node(1).replica.reap(k, live), false, 'a live value is never collected');
    await net.node(1).coordinator.put(k, null, contextOf(live), 3);
    const tombstone = await net.node(1).replica.read(k);
    await net.node(2).coordinator.put(k, Buffer.from('again'), contextOf(tombstone), 3);
    assert.equal(await net.node(1).replica.reap(k, tombstone), false, 'a write since the check keeps the key');
    assert.deepEqual(values(await net.node(1).replica.read(k)), ['again']);
  });
});
