import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { eventually, networksOfThisSuite } from '../../testkit/leaderless/network.js';
import { type NodeId, liveValues } from './dvv.js';
import { decodeMembership, encodeMembership } from './membership.js';

const key = (text: string): Buffer => Buffer.from(text);
const members = (...ids: NodeId[]): { id: NodeId; peerUrl: string }[] => ids.map((id) => ({ id, peerUrl: '' }));

describe('leaderless membership changes (in process)', () => {
  const open = networksOfThisSuite();

  it('a member joins and another leaves under writes: nothing acknowledged is lost, the ranges move, the leaver ends empty', async () => {
    const net = await open([1, 2, 3], { antiEntropyIntervalMs: 0, tombstoneIntervalMs: 0 });
    const acknowledged = new Map<string, string>();
    let stop = false;
    let failures = 0;
    const writer = async (index: number): Promise<void> => {
      for (let seq = 0; !stop; seq++) {
        const name = `w${index}-${seq}`;
        const via: NodeId = [1, 3][seq % 2]!;
        try {
          await net.node(via).coordinator.put(key(name), Buffer.from(`v${seq}`), [], 2);
          acknowledged.set(name, `v${seq}`);
        } catch {
          failures++;
        }
      }
    };
    const writers = Array.from({ length: 4 }, (_, index) => writer(index));
    try {
      await eventually('some writes', () => acknowledged.size > 100);

      await net.addJoiner(4);
      assert.equal(net.node(4).ring.nodes.includes(4), false, 'a joiner owns nothing before it is added');
      await net.node(1).changeMembership(members(1, 2, 3, 4));
      for (const id of [1, 2, 3, 4]) assert.deepEqual(net.node(id).ring.nodes, [1, 2, 3, 4], `node ${id} switched`);
      assert.ok(net.node(4).ownership.figures.keysTransferred === 0 && (await net.node(4).store.digest()).keys > 0, 'the joiner received its ranges');
      await eventually('some writes with four members', () => acknowledged.size > 300);

      await net.node(3).changeMembership(members(1, 3, 4));
      for (const id of [1, 3, 4]) assert.deepEqual(net.node(id).ring.nodes, [1, 3, 4]);
      await eventually('the leaver handed everything off', async () => (await net.node(2).store.digest()).keys === 0, 60_000);
      net.stop(2);
      await eventually('some writes after the leave', () => acknowledged.size > 500);
    } finally {
      stop = true;
      await Promise.all(writers);
    }
    assert.equal(failures, 0, 'writes kept succeeding throughout');

    for (const [name, value] of acknowledged) {
      assert.deepEqual(liveValues(await net.node(4).coordinator.get(key(name), 2)).map(String), [value], `acknowledged ${name}`);
    }
    for (const id of [1, 3, 4]) await net.node(id).antiEntropy.repairAll();
    const digests = await Promise.all([1, 3, 4].map(async (id) => (await net.node(id).store.digest()).digest));
    assert.equal(new Set(digests).size, 1, 'N = 3 on three members: every replica equal');
  });

  it('refuses a change while another is under way, one that would leave fewer members than N, and one a member cannot take part in', async () => {
    const net = await open([1, 2, 3], { antiEntropyIntervalMs: 0, requestTimeoutMs: 1000 });
    const rejected = (error: unknown): boolean => isImpulseError(error, 'IMPULSE_ERR_LEADERLESS_MEMBERSHIP_REJECTED');
    await assert.rejects(net.node(1).changeMembership(members(1, 2)), rejected);
    await assert.rejects(net.node(1).changeMembership([{ id: 0, peerUrl: '' }, ...members(1, 2, 3)]), rejected);
    // Member 5 does not exist: the pending step cannot reach it, and the change is aborted everywhere.
    await assert.rejects(net.node(1).changeMembership(members(1, 2, 3, 5)), (error: unknown) => rejected(error) && (error as { details?: { member?: number } }).details?.member === 5);
    for (const id of [1, 2, 3]) assert.equal(net.node(id).membership.view.pending, undefined, `node ${id} aborted`);
    await net.addJoiner(4);
    const first = net.node(1).changeMembership(members(1, 2, 3, 4));
    await eventually('node 2 knows the change is pending', () => net.node(2).membership.view.pending !== undefined);
    await assert.rejects(net.node(2).changeMembership(members(1, 2, 3, 4)), rejected, 'a second claimant is refused');
    await first;
    // Epoch 1 went to the aborted change (an aborted change uses up its epoch): this one is epoch 2.
    for (const id of [1, 2, 3, 4]) assert.equal(net.node(id).membership.view.epoch, 2);
  });

  it('a change while a current member is down fails at once with a coded error naming it, and nothing is left pending; once it is back the change goes through', async () => {
    const net = await open([1, 2, 3], { antiEntropyIntervalMs: 0, requestTimeoutMs: 1000 });
    await net.addJoiner(4);
    net.stop(3);
    await eventually('node 1 holds node 3 down', () => net.node(1).detector.liveness(3) === 'down');
    const started = Date.now();
    await assert.rejects(net.node(1).changeMembership(members(1, 2, 3, 4)), (error: unknown) => {
      assert.ok(isImpulseError(error, 'IMPULSE_ERR_LEADERLESS_MEMBERSHIP_REJECTED'));
      assert.equal(error.details?.['member'], 3);
      assert.match(error.message, /member 3 is down/);
      return true;
    });
    assert.ok(Date.now() - started < 1000, 'refused before any step spent a request time');
    for (const id of [1, 2, 4]) assert.equal(net.node(id).membership.view.pending, undefined, `nothing pending on node ${id}`);
    await net.restart(3);
    await eventually('node 1 hears node 3 again', () => net.node(1).detector.liveness(3) === 'up');
    await net.node(1).changeMembership(members(1, 2, 3, 4));
    for (const id of [1, 2, 3, 4]) assert.equal(net.node(id).membership.view.epoch, 1, `node ${id} committed`);
  });

  it('remove --force: a member down for good is removed without its steps; every key written before is readable with R = 2 and held by all three new owners after the repair; if it comes back it finds itself removed', async () => {
    const net = await open([1, 2, 3, 4], { antiEntropyIntervalMs: 0, tombstoneIntervalMs: 0 });
    const written = new Map<string, string>();
    for (let i = 0; i < 200; i++) {
      await net.node(1 + (i % 4)).coordinator.put(key(`k${i}`), Buffer.from(`v${i}`), [], 2);
      written.set(`k${i}`, `v${i}`);
    }
    // Keys held by exactly two replicas, node 4 one of them (a W = 2 write whose third replica missed it): after node 4 is
    // gone only one copy survives, so the new owners can get them only from that survivor.
    let scarce = 0;
    for (let i = 0; scarce < 50; i++) {
      const name = `scarce${i}`;
      const owners = net.node(1).ring.preferenceList(key(name), 3);
      if (!owners.includes(4)) continue;
      const set = await net.node(4).replica.coordinate(key(name), [], Buffer.from(`s${i}`));
      await net.node(owners.find((id) => id !== 4)!).replica.apply(key(name), set);
      written.set(name, `s${i}`);
      scarce++;
    }
    net.stop(4);
    await eventually('every member holds node 4 down', () => [1, 2, 3].every((id) => net.node(id).detector.liveness(4) === 'down'));
    await assert.rejects(net.node(1).changeMembership(members(1, 2, 3)), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_LEADERLESS_MEMBERSHIP_REJECTED') && error.details?.['member'] === 4, 'a normal remove of a down member is refused');

    await net.node(2).changeMembership(members(1, 2, 3), { force: true });
    for (const id of [1, 2, 3]) {
      assert.deepEqual({ epoch: net.node(id).membership.view.epoch, pending: net.node(id).membership.view.pending }, { epoch: 1, pending: undefined }, `node ${id} committed`);
      assert.deepEqual(net.node(id).ring.nodes, [1, 2, 3], `node ${id}'s ring no longer names node 4`);
    }
    // The repair started on every remaining member after the commit fills every new owner (N = 3 of 3 members: all of them).
    await eventually('all three members hold every key', async () => {
      for (const name of written.keys()) for (const id of [1, 2, 3]) if (liveValues(await net.node(id).store.read(key(name))).length === 0) return false;
      return true;
    }, 30_000);
    for (const id of [1, 2, 3]) assert.ok(net.node(id).antiEntropy.figures.exchanges > 0, `node ${id} ran the repair`);
    for (const [name, value] of written) assert.deepEqual(liveValues(await net.node(1 + (name.length % 3)).coordinator.get(key(name), 2)).map(String), [value], `${name} read with R = 2`);

    // Node 4 comes back with its old ring (epoch 0, itself a member): a peer's heartbeat answer names epoch 1, whose members
    // do not include it — it takes that membership (no longer a member) and hands its keys to the owners, ending empty.
    await net.restart(4);
    assert.deepEqual(net.node(4).ring.nodes, [1, 2, 3, 4], 'restarted on its stored, old membership');
    await eventually('node 4 learned it was removed', () => net.node(4).membership.view.epoch === 1 && !net.node(4).ring.nodes.includes(4));
    assert.equal(net.node(4).gossip.figures.removalsPulled, 1);
    await eventually('node 4 handed off its keys', async () => (await net.node(4).store.digest()).keys === 0, 30_000);
    for (const id of [1, 2, 3]) assert.deepEqual(net.node(id).ring.nodes, [1, 2, 3], `node ${id} did not take node 4 back`);
  });

  it('remove --force of a member that is up, or one that adds a member, is refused with a coded error and changes nothing; fewer than N members is refused as for a normal remove', async () => {
    const net = await open([1, 2, 3, 4], { antiEntropyIntervalMs: 0, tombstoneIntervalMs: 0 });
    const refused = (member: number, pattern: RegExp) => (error: unknown): boolean => isImpulseError(error, 'IMPULSE_ERR_LEADERLESS_MEMBERSHIP_REJECTED') && error.details?.['member'] === member && pattern.test(error.message);
    await eventually('node 1 hears every member', () => [2, 3, 4].every((id) => net.node(1).detector.liveness(id) === 'up'));
    await assert.rejects(net.node(1).changeMembership(members(1, 2, 3), { force: true }), refused(4, /member 4 is up, not down.*without --force/));
    await assert.rejects(net.node(1).changeMembership(members(2, 3, 4), { force: true }), refused(1, /member 1 is up/), 'the claimant itself is never down');
    await net.addJoiner(5);
    await assert.rejects(net.node(1).changeMembership(members(1, 2, 3, 4, 5), { force: true }), refused(5, /only removes members/));
    net.stop(4);
    net.stop(3);
    await eventually('node 1 holds nodes 3 and 4 down', () => net.node(1).detector.liveness(3) === 'down' && net.node(1).detector.liveness(4) === 'down');
    await assert.rejects(net.node(1).changeMembership(members(1, 2), { force: true }), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_LEADERLESS_MEMBERSHIP_REJECTED') && error.details?.['replicas'] === 3);
    for (const id of [1, 2]) assert.deepEqual({ epoch: net.node(id).membership.view.epoch, pending: net.node(id).membership.view.pending, ring: net.node(id).ring.nodes }, { epoch: 0, pending: undefined, ring: [1, 2, 3, 4] }, `nothing changed on node ${id}`);
  });

  it('a member that missed the commit step pulls it from a peer\'s heartbeat answer; one whose pending change differs from the committed one does not', async () => {
    const net = await open([1, 2, 3], { antiEntropyIntervalMs: 0, tombstoneIntervalMs: 0 });
    for (let i = 0; i < 50; i++) await net.node(1).coordinator.put(key(`k${i}`), Buffer.from('v'), [], 3);
    await net.addJoiner(4);
    const next = members(1, 2, 3, 4);
    // The claimant's steps by hand, the commit sent to every member but 3 (lost, as if 3 were cut off then).
    for (const phase of ['pending', 'transfer'] as const) await Promise.all([1, 2, 3, 4].map((id) => net.node(id).membershipStep(phase, 1, next)));
    await Promise.all([1, 2, 4].map((id) => net.node(id).membershipStep('commit', 1, next)));
    await eventually('node 3 commits from gossip', () => net.node(3).membership.view.epoch === 1 && net.node(3).membership.view.pending === undefined);
    assert.deepEqual(net.node(3).ring.nodes, [1, 2, 3, 4]);
    assert.equal(net.node(3).gossip.figures.commitsPulled, 1);
    for (let i = 0; i < 50; i++) assert.deepEqual(liveValues(await net.node(3).coordinator.get(key(`k${i}`), 3)).map(String), ['v'], `k${i} read through node 3 on the new ring`);

    // Node 3 alone holds a change of epoch 2 to other members than the one the others commit at epoch 2: it must not commit theirs.
    await net.addJoiner(5);
    await net.addJoiner(6);
    await net.node(3).membershipStep('pending', 2, members(1, 2, 3, 4, 6));
    const others = members(1, 2, 3, 4, 5);
    for (const phase of ['pending', 'transfer', 'commit'] as const) await Promise.all([1, 2, 4, 5].map((id) => net.node(id).membershipStep(phase, 2, others)));
    await eventually('node 3 refused to commit a different change', () => net.node(3).gossip.figures.commitsRefused > 0);
    assert.equal(net.node(3).membership.view.epoch, 1);
    assert.equal(net.node(3).membership.view.pending?.epoch, 2);
  });

  it('a member that missed an abort aborts from a peer\'s heartbeat answer (the epoch it holds pending, with the old members), one that missed the whole aborted change takes its epoch, and the next change goes through', async () => {
    const net = await open([1, 2, 3], { antiEntropyIntervalMs: 0, tombstoneIntervalMs: 0 });
    await net.addJoiner(4);
    const next = members(1, 2, 3, 4);
    // A claimant's change of epoch 1 aborted by hand, the abort lost on its way to node 3.
    await Promise.all([1, 2, 3, 4].map((id) => net.node(id).membershipStep('pending', 1, next)));
    await Promise.all([1, 2, 4].map((id) => net.node(id).membershipStep('abort', 1, next)));
    for (const id of [1, 2]) assert.deepEqual({ epoch: net.node(id).membership.view.epoch, pending: net.node(id).membership.view.pending }, { epoch: 1, pending: undefined });
    await eventually('node 3 aborts from gossip', () => net.node(3).membership.view.pending === undefined);
    assert.equal(net.node(3).membership.view.epoch, 1);
    assert.deepEqual(net.node(3).ring.nodes, [1, 2, 3]);
    assert.equal(net.node(3).gossip.figures.abortsPulled, 1);
    // Epoch 2: node 3 missed both its pending step and the abort; it takes the epoch from a peer.
    await Promise.all([1, 2, 4].map((id) => net.node(id).membershipStep('pending', 2, next)));
    await Promise.all([1, 2, 4].map((id) => net.node(id).membershipStep('abort', 2, next)));
    await eventually('node 3 takes epoch 2', () => net.node(3).membership.view.epoch === 2);
    assert.deepEqual(net.node(3).ring.nodes, [1, 2, 3]);
    // An abort for a change other than the pending one leaves that one alone.
    await net.node(1).membershipStep('pending', 3, next);
    await net.node(1).membershipStep('abort', 3, members(1, 2, 3, 5));
    assert.equal(net.node(1).membership.view.pending?.epoch, 3, 'another change\'s abort does not drop this one');
    await net.node(1).membershipStep('abort', 3, next);
    // Nodes 2-4 never saw epoch 3: they take it from node 1's heartbeat answers. Then the next change goes through (epoch 4).
    await eventually('every member at epoch 3', () => [1, 2, 3, 4].every((id) => net.node(id).membership.view.epoch === 3));
    await net.node(2).changeMembership(next);
    for (const id of [1, 2, 3, 4]) assert.equal(net.node(id).membership.view.epoch, 4, `node ${id}`);
    await assert.rejects(net.node(2).changeMembership(next), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_LEADERLESS_MEMBERSHIP_REJECTED') && /nothing to change/.test(error.message));
  });

  it('heartbeat answers carry each member\'s client URL', async () => {
    const net = await open([1, 2, 3], { antiEntropyIntervalMs: 0, tombstoneIntervalMs: 0 });
    await eventually('every member learned the others\' client URLs', () => [1, 2, 3].every((id) => [1, 2, 3].every((other) => other === id || net.node(id).gossip.clientUrl(other) === `http://node${other}.test:7070`)));
  });

  it('the stored membership survives a restart; damaged bytes are refused', async () => {
    const net = await open([1, 2, 3], { antiEntropyIntervalMs: 0 });
    await net.addJoiner(4);
    await net.node(2).changeMembership(members(1, 2, 3, 4));
    await net.restart(4);
    assert.deepEqual(net.node(4).ring.nodes, [1, 2, 3, 4]);
    // A member joining a cluster that changed before (epoch 1 → 2) starts at epoch 0 and is taken in.
    await net.addJoiner(5);
    await net.node(3).changeMembership(members(1, 2, 3, 4, 5));
    for (const id of [1, 2, 3, 4, 5]) assert.equal(net.node(id).membership.view.epoch, 2, `node ${id}`);
    const state = { epoch: 3, members: members(1, 2), pending: { epoch: 4, members: members(1, 2, 3) } };
    assert.deepEqual(decodeMembership(encodeMembership(state), 'here'), state);
    for (const bad of ['{', '{"epoch":-1,"members":[]}', '{"epoch":5,"members":[{"id":1,"peerUrl":""}],"pending":{"epoch":5,"members":[{"id":1,"peerUrl":""}]}}']) {
      assert.throws(() => decodeMembership(Buffer.from(bad), 'here'), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'));
    }
  });
});
