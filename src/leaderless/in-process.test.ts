import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { eventually, networksOfThisSuite } from '../../testkit/leaderless/network.js';
import { contextOf, liveValues } from './dvv.js';

const key = (text: string): Buffer => Buffer.from(text);
const values = (set: Parameters<typeof liveValues>[0]): string[] => liveValues(set).map((value) => value.toString()).sort();

describe('leaderless nodes on an in-memory network', () => {
  const open = networksOfThisSuite();

  it('any node coordinates; every replica holds an acknowledged write; a read through another node sees it', async () => {
    const net = await open([1, 2, 3]);
    await net.node(1).coordinator.put(key('a'), Buffer.from('one'), [], 3);
    for (const id of [1, 2, 3]) assert.deepEqual(values(await net.node(id).replica.read(key('a'))), ['one']);
    assert.deepEqual(values(await net.node(2).coordinator.get(key('a'), 2)), ['one']);
  });

  it('strict quorum, one node stopped: W=2 writes succeed, W=3 ones fail with the count that answered, and read repair brings the returned node up to date', async () => {
    const net = await open([1, 2, 3], { sloppy: false });
    net.stop(3);
    await net.node(1).coordinator.put(key('k'), Buffer.from('v'), [], 2);
    await assert.rejects(net.node(1).coordinator.put(key('k2'), Buffer.from('v'), [], 3), (error: unknown) => {
      assert.ok(isImpulseError(error, 'IMPULSE_ERR_QUORUM_UNAVAILABLE'));
      assert.deepEqual(error.details, { needed: 3, answered: 2 });
      return true;
    });
    await net.restart(3);
    // Strict quorum: no hints; node 3 catches up through read repair.
    assert.deepEqual(values(await net.node(3).replica.read(key('k'))), []);
    await net.node(1).coordinator.get(key('k'), 3);
    await eventually('read repair of node 3', async () => values(await net.node(3).replica.read(key('k'))).length === 1);
    assert.ok(net.node(1).coordinator.figures.readRepairs >= 1);
  });

  it('a write that cannot reach W replicas fails after the configured request time (--request-timeout-ms), not a fixed one', async () => {
    const net = await open([1, 2, 3], { sloppy: false, requestTimeoutMs: 300 });
    net.partition([[1, 2], [3]]);
    const started = Date.now();
    await assert.rejects(net.node(1).coordinator.put(key('timed'), Buffer.from('v'), [], 3), (error: unknown) => {
      assert.ok(isImpulseError(error, 'IMPULSE_ERR_QUORUM_UNAVAILABLE'));
      assert.match(error.message, /within 300 ms/);
      return true;
    });
    const elapsedMs = Date.now() - started;
    assert.ok(elapsedMs >= 250 && elapsedMs < 1900, `failed after ${elapsedMs} ms`);
  });

  it('sloppy quorum on 4 nodes: an owner that is down is replaced by a fallback holding a hint, delivered when the owner returns', async () => {
    // 5 s for the write, not the network's 1 s: it once failed on a loaded machine with the fallback's answer still on its way.
    const net = await open([1, 2, 3, 4], { replicas: 3, writeQuorum: 3, requestTimeoutMs: 5000 });
    const k = key('hinted');
    const owners = net.node(1).ring.preferenceList(k, 3);
    const down = owners[2]!;
    const coordinator = owners[0]!;
    net.stop(down);
    await eventually('the detector marks the owner down', () => net.node(coordinator).detector.liveness(down) === 'down');
    await net.node(coordinator).coordinator.put(k, Buffer.from('held'), [], 3);
    assert.equal(net.node(coordinator).coordinator.figures.hintedWrites, 1);
    await net.restart(down);
    await eventually('the hint is delivered', async () => values(await net.node(down).replica.read(k)).length === 1);
    const fallback = [1, 2, 3, 4].find((id) => !owners.includes(id))!;
    await eventually('the hint is retired', async () => (await net.node(fallback).store.hints(10)).length === 0);
    assert.equal(net.node(fallback).handoff.hintsDelivered, 1);
  });

  it('a partition with writes on both sides gives siblings; a write with the merged context resolves them; all replicas converge', async () => {
    const net = await open([1, 2, 3], { writeQuorum: 1, readQuorum: 1 });
    const k = key('split');
    await net.node(1).coordinator.put(k, Buffer.from('before'), [], 3);
    const read = await net.node(1).coordinator.get(k, 3);
    net.partition([[1, 2], [3]]);
    await net.node(1).coordinator.put(k, Buffer.from('left'), contextOf(read), 1);
    await net.node(3).coordinator.put(k, Buffer.from('right'), contextOf(read), 1);
    net.heal();
    await eventually('siblings on every replica', async () => {
      const seen = await net.node(2).coordinator.get(k, 3);
      return values(seen).join() === 'left,right';
    });
    const both = await net.node(2).coordinator.get(k, 3);
    await net.node(2).coordinator.put(k, Buffer.from('merged'), contextOf(both), 3);
    for (const id of [1, 2, 3]) assert.deepEqual(values(await net.node(id).replica.read(k)), ['merged']);
    const digests = await Promise.all([1, 2, 3].map(async (id) => (await net.node(id).store.digest()).digest));
    assert.equal(new Set(digests).size, 1);
  });

  it('two blind writes to one key through the same coordinator both survive as siblings; a delete with the context leaves a tombstone', async () => {
    const net = await open([1, 2, 3]);
    const k = key('blind');
    await net.node(1).coordinator.put(k, Buffer.from('x'), [], 2);
    await net.node(1).coordinator.put(k, Buffer.from('y'), [], 2);
    const both = await net.node(2).coordinator.get(k, 2);
    assert.deepEqual(values(both), ['x', 'y']);
    await net.node(3).coordinator.put(k, null, contextOf(both), 2);
    const after = await net.node(1).coordinator.get(k, 2);
    assert.deepEqual(values(after), []);
    assert.equal(after.length, 1, 'one tombstone');
  });

  it('anti-entropy repairs a replica that missed writes, moving only the keys that differ, and the replicas end equal', async () => {
    const net = await open([1, 2, 3], { sloppy: false, antiEntropyIntervalMs: 0 });
    for (let index = 0; index < 180; index++) await net.node(1).coordinator.put(key(`before-${index}`), Buffer.from('x'), [], 3);
    net.stop(3);
    for (let index = 0; index < 20; index++) await net.node(1).coordinator.put(key(`missed-${index}`), Buffer.from('y'), [], 2);
    await net.restart(3);
    await eventually('node 1 sees node 3 up', () => net.node(1).detector.liveness(3) === 'up');
    const results = await net.node(1).antiEntropy.repairAll();
    const toThree = results.filter((result) => result.peer === 3 && 'keysPushed' in result);
    const pushed = toThree.reduce((sum, result) => sum + ('keysPushed' in result ? result.keysPushed : 0), 0);
    assert.equal(pushed, 20, 'exactly the 20 missed keys went to node 3');
    const digests = await Promise.all([1, 2, 3].map(async (id) => (await net.node(id).store.digest()).digest));
    assert.equal(new Set(digests).size, 1);
    const again = await net.node(1).antiEntropy.exchange(3);
    assert.equal(again.leavesDiffering, 0, 'a second exchange finds nothing');
    assert.ok(net.node(1).antiEntropy.figures.bytesExchanged > 0);
  });

  it('repair retries an exchange that failed (a peer that did not answer in time) instead of giving up on that peer', async () => {
    const net = await open([1, 2, 3], { sloppy: false, antiEntropyIntervalMs: 0 });
    for (let index = 0; index < 20; index++) await net.node(1).coordinator.put(key(`k-${index}`), Buffer.from('x'), [], 3);
    net.partition([[1, 2], [3]]);
    for (let index = 0; index < 20; index++) await net.node(1).coordinator.put(key(`missed-${index}`), Buffer.from('y'), [], 2);
    // The first exchange's request to node 3 is sent while it is cut off and is lost (timeout: 1 s); the network heals meanwhile.
    const repair = net.node(1).antiEntropy.repairAll();
    setTimeout(() => net.heal(), 300);
    const results = await repair;
    assert.ok(net.node(1).antiEntropy.figures.exchangesFailed >= 1, 'an exchange failed');
    assert.deepEqual(results.filter((result) => 'error' in result), [], 'and was retried');
    const digests = await Promise.all([1, 2, 3].map(async (id) => (await net.node(id).store.digest()).digest));
    assert.equal(new Set(digests).size, 1);
  });

  it('the maintained anti-entropy trees stay equal to a fresh scan through writes, deletes, hints, read repair, anti-entropy and a collection', async () => {
    const net = await open([1, 2, 3, 4], { replicas: 3, writeQuorum: 2, antiEntropyIntervalMs: 0, tombstoneGraceMs: 0, tombstoneIntervalMs: 0 });
    const ids = [1, 2, 3, 4];
    for (const id of ids) await net.node(id).antiEntropy.exchange(id === 1 ? 2 : 1); // builds the trees
    for (let index = 0; index < 150; index++) await net.node(1 + (index % 4)).coordinator.put(key(`t${index % 60}`), Buffer.from(`v${index}`), [], 2);
    net.stop(3);
    await eventually('node 1 sees node 3 down', () => net.node(1).detector.liveness(3) === 'down');
    for (let index = 0; index < 40; index++) {
      const k = key(`t${index}`);
      const read = await net.node(1).coordinator.get(k, 2);
      await net.node(1).coordinator.put(k, index % 3 === 0 ? null : Buffer.from(`w${index}`), contextOf(read), 2);
    }
    await net.restart(3);
    await eventually('hints delivered', async () => (await Promise.all([1, 2, 4].map(async (id) => (await net.node(id).store.hints(10)).length))).every((count) => count === 0));
    for (let index = 0; index < 60; index += 7) await net.node(2).coordinator.get(key(`t${index}`), 3);
    await net.node(1).antiEntropy.repairAll();
    await net.node(1).tombstones.round();
    for (const id of ids) {
      const node = net.node(id);
      for (const peer of ids.filter((other) => other !== id)) {
        const maintained = await node.antiEntropy.leafHashes(peer, node.antiEntropy.leafCount);
        assert.ok(maintained.equals(await node.antiEntropy.scanLeafHashes(peer, node.antiEntropy.leafCount)), `node ${id}'s tree for peer ${peer}`);
      }
    }
  });

  it('range reads merge every member\'s replicas in key order, page without holes, skip deleted keys, show siblings, and need members − N + 1 answers', async () => {
    const net = await open([1, 2, 3, 4], { replicas: 2, readQuorum: 1, writeQuorum: 2, antiEntropyIntervalMs: 0 });
    const expected: string[] = [];
    for (let index = 0; index < 120; index++) {
      const name = `r${String(index).padStart(3, '0')}`;
      await net.node(1 + (index % 4)).coordinator.put(key(name), Buffer.from(name), [], 2);
      if (index % 10 === 3) {
        const read = await net.node(1).coordinator.get(key(name), 2);
        await net.node(2).coordinator.put(key(name), null, contextOf(read), 2);
      } else {
        expected.push(name);
      }
    }
    await net.node(3).coordinator.put(key('r005'), Buffer.from('other'), [], 2);
    for (const reverse of [false, true]) {
      const seen: string[] = [];
      let after: Buffer | undefined;
      for (let page = 0; page < 100; page++) {
        const bounds = after === undefined ? { limit: 7, reverse } : reverse ? { lt: after, limit: 7, reverse } : { gt: after, limit: 7 };
        const items = await net.node(1).ranges.range(bounds);
        if (items.length === 0) break;
        for (const item of items) seen.push(item.key.toString());
        const sibling = items.find((item) => item.key.toString() === 'r005');
        if (sibling !== undefined) assert.deepEqual(sibling.values.map(String).sort(), ['other', 'r005']);
        after = items[items.length - 1]!.key;
      }
      assert.deepEqual(seen, reverse ? [...expected].reverse() : expected);
    }
    net.stop(4);
    assert.equal((await net.node(1).ranges.range({ limit: 500 })).length, expected.length, 'one member down: every key still has a replica among the answers');
    net.stop(3);
    await assert.rejects(net.node(1).ranges.range({ limit: 10 }), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_QUORUM_UNAVAILABLE'));
  });
});
