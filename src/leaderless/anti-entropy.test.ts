import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { networksOfThisSuite } from '../../testkit/leaderless/network.js';
import type { LeaderlessTestNetwork } from '../../testkit/leaderless/network.js';
import { update } from './dvv.js';
import type { ExchangeResult } from './anti-entropy.js';

const NO_TIMERS = { antiEntropyIntervalMs: 0, tombstoneIntervalMs: 0, heartbeatMs: 1000, suspectAfterMs: 30_000, downAfterMs: 60_000, requestTimeoutMs: 10_000 };

/** Stores `count` keys on members 1 and 2, and on member 3 all but every `missEvery`-th. */
async function fill(net: LeaderlessTestNetwork, count: number, missEvery: number): Promise<number> {
  let missed = 0;
  for (let index = 0; index < count; index++) {
    const key = Buffer.from(`key-${String(index).padStart(6, '0')}`);
    const set = update([], [], 1, Buffer.from(`value-${index}`), index + 1);
    const holders = index % missEvery === 0 ? [1, 2] : [1, 2, 3];
    if (holders.length === 2) missed++;
    await Promise.all(holders.map((id) => net.node(id).replica.apply(key, set)));
  }
  return missed;
}

async function digestsEqual(net: LeaderlessTestNetwork): Promise<boolean> {
  const digests = await Promise.all([1, 2, 3].map(async (id) => (await net.node(id).store.digest()).digest));
  return new Set(digests).size === 1;
}

describe('anti-entropy passes', () => {
  const open = networksOfThisSuite();

  it('one exchange repairs every differing leaf (far more than one batch), looking up each leaf\'s keys without a scan, and a second finds nothing', async () => {
    const net = await open([1, 2, 3], NO_TIMERS);
    const missed = await fill(net, 3000, 10);
    const first = await net.node(1).antiEntropy.exchange(3);
    assert.ok(first.leavesDiffering > 64, `the missed keys fall into many leaves (${first.leavesDiffering})`);
    assert.equal(first.complete, true);
    assert.equal(first.leavesRepaired, first.leavesDiffering);
    assert.equal(first.keysPushed, missed, 'exactly the missed keys went to member 3');
    assert.ok(first.bytes > 1024 * 32, 'the bytes of the pass are reported');
    const second = await net.node(1).antiEntropy.exchange(3);
    assert.equal(second.leavesDiffering, 0);
    assert.equal(second.complete, true);
    for (const id of [2, 3]) await net.node(1).antiEntropy.exchange(id);
    assert.ok(await digestsEqual(net), 'the replicas are equal');
  });

  it('a pass stops at its byte bound before its next batch, says it is incomplete, and the next passes carry on until nothing differs', async () => {
    const net = await open([1, 2, 3], { ...NO_TIMERS, antiEntropyPassBytesMax: 40_000 });
    const missed = await fill(net, 3000, 10);
    const passes: ExchangeResult[] = [];
    for (let pass = 0; pass < 50; pass++) {
      const result = await net.node(1).antiEntropy.exchange(3);
      passes.push(result);
      if (result.leavesDiffering === 0) break;
    }
    assert.equal(passes[0]!.complete, false, 'the first pass hit the bound');
    assert.ok(passes[0]!.leavesRepaired > 0 && passes[0]!.leavesRepaired < passes[0]!.leavesDiffering);
    // A batch starts only below the bound; one batch is at most the leaf hashes (32 KiB) plus its key lists and sets.
    assert.ok(passes[0]!.bytes < 40_000 + 400_000, `a pass stays near its bound (${passes[0]!.bytes} bytes)`);
    assert.equal(passes.at(-1)!.leavesDiffering, 0, 'the passes converged');
    assert.equal(passes.reduce((sum, result) => sum + result.keysPushed, 0), missed);
  });

  it('the maintained hashes equal a fresh scan after being built while writes ran (a write racing the building scan is not lost)', async () => {
    const net = await open([1, 2, 3, 4], { ...NO_TIMERS, replicas: 3 });
    for (let index = 0; index < 4000; index++) {
      await net.node(1 + (index % 4)).replica.apply(Buffer.from(`k${index}`), update([], [], 1, Buffer.from('a'), index + 1));
    }
    const node = net.node(1);
    // The first leafHashes call builds the index by a scan of 4000 keys (four pages); the writes below run during it.
    const building = node.antiEntropy.leafHashes(2, node.antiEntropy.leafCount);
    const writes = Array.from({ length: 400 }, (_, index) => node.coordinator.put(Buffer.from(`k${index * 10}`), Buffer.from(`b${index}`), [], 3)); // W = N: every owner stored it when the put resolves
    await Promise.all([building, ...writes]);
    for (const peer of [2, 3, 4]) {
      const maintained = await node.antiEntropy.leafHashes(peer, node.antiEntropy.leafCount);
      assert.ok(maintained.equals(await node.antiEntropy.scanLeafHashes(peer, node.antiEntropy.leafCount)), `the tree for peer ${peer}`);
    }
    const allLeaves = Array.from({ length: node.antiEntropy.leafCount }, (_, leaf) => leaf);
    const sorted = (entries: [Buffer, Buffer][]): string[] => entries.map(([key, hash]) => `${key.toString('hex')}:${hash.toString('hex')}`).sort();
    // A leaf count other than the node's is answered by a scan: the same keys and hashes as the index holds.
    const scanned = await node.antiEntropy.leafEntries(2, node.antiEntropy.leafCount * 2, Array.from({ length: node.antiEntropy.leafCount * 2 }, (_, leaf) => leaf));
    assert.deepEqual(sorted(await node.antiEntropy.leafEntries(2, node.antiEntropy.leafCount, allLeaves)), sorted(scanned));
  });

  it('refuses, with a coded error, an exchange asked by a node that is not a member here (it used to rebuild its trees in an endless loop that blocked the event loop)', async () => {
    const net = await open([1, 2, 3], NO_TIMERS);
    await fill(net, 200, 10);
    await net.addJoiner(4); // knows members 1-3, is not one of them until a change adds it
    await assert.rejects(net.node(4).antiEntropy.exchange(1), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID') && /not a member/.test(error.message));
    await assert.rejects(net.node(1).antiEntropy.leafHashes(4, net.node(1).antiEntropy.leafCount), /not a member/);
    // The members still exchange normally meanwhile.
    assert.equal((await net.node(1).antiEntropy.exchange(3)).complete, true);
  });
});
