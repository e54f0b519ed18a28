/**
 * Snapshots and membership with real members in one process: a follower that
 * was down while the log was compacted catches up through a streamed
 * snapshot; a new member joins (learner, then voter), a member is removed and
 * told so, leadership moves on request; refused operations are coded.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import type { KvCommand } from '../kv/command.js';
import { InProcessCluster } from '../../testkit/cluster/in-process.js';

const put = (key: string, value: string): KvCommand => ({ ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }] });

async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('snapshots between real members', () => {
  let cluster: InProcessCluster | undefined;
  after(async () => cluster?.close());

  it('a member down while the others compact past it catches up from a streamed snapshot', async () => {
    cluster = await InProcessCluster.start(3, { flags: { snapshotEntries: '40', snapshotCatchUpEntries: '5' } });
    const leader = await cluster.waitForLeader();
    const victim = [1, 2, 3].find((id) => id !== leader)!;
    await cluster.stop(victim);
    const service = cluster.member(leader).service;
    let last = 0;
    // Enough entries, with values big enough that the image spans several chunks of the transport; 20 writers at a time.
    for (let i = 0; i < 300; i += 20) {
      const outcomes = await Promise.all(Array.from({ length: 20 }, (_, j) => service.write(put(`key-${i + j}`, `value-${i + j}-`.padEnd(2000, 'x')))));
      last = Math.max(last, ...outcomes.map((outcome) => outcome.revision));
    }
    await eventually('the leader to compact its log', () => cluster!.member(leader).group.driver.status().snapshotIndex > 100);
    await cluster.restart(victim);
    await cluster.waitForApplied(last, 20_000);
    const restarted = cluster.member(victim);
    assert.ok(restarted.group.driver.metrics().snapshotsReceived >= 1, 'the follower installed a snapshot');
    assert.ok(cluster.member(leader).group.driver.metrics().snapshotsSent >= 1);
    const got = await restarted.service.get(Buffer.from('key-7'), { consistency: 'serializable' });
    assert.equal(got?.value.toString('utf8').slice(0, 8), 'value-7-');
    // Compare at one applied index (a member may publish its client URL meanwhile).
    let digests = await Promise.all([restarted.service.digest(), cluster.member(leader).service.digest()]);
    while (digests[0].appliedIndex !== digests[1].appliedIndex) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      digests = await Promise.all([restarted.service.digest(), cluster.member(leader).service.digest()]);
    }
    assert.equal(digests[0].digest, digests[1].digest, 'the replica installed from the snapshot equals the leader');
  });
});

describe('membership changes between real members', () => {
  let cluster: InProcessCluster | undefined;
  after(async () => cluster?.close());

  it('adds a learner that joins, promotes it, moves leadership, removes a member that is told so', async () => {
    cluster = await InProcessCluster.start(3);
    let leader = await cluster.waitForLeader();
    await cluster.member(leader).service.write(put('before-4', 'x'));
    const addresses = await cluster.prepareJoiner(4);
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    // Through a follower: forwarded to the leader.
    const added = await cluster.member(follower).admin.addMember({ id: 4, peerUrl: addresses.peerUrl });
    assert.equal(added.members.find((member) => member.id === 4)?.role, 'learner');
    await assert.rejects(cluster.member(leader).admin.addMember({ id: 4, peerUrl: addresses.peerUrl }), (error) => isImpulseError(error, 'IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED'));
    await cluster.restart(4);
    const { revision } = await cluster.member(leader).service.write(put('after-4', 'y'));
    await cluster.waitForApplied(revision);
    assert.equal((await cluster.member(4).service.get(Buffer.from('before-4'), { consistency: 'serializable' }))?.value.toString(), 'x');
    await eventually('the learner to be promoted', async () => {
      try {
        await cluster!.member(leader).admin.promoteMember(4);
        return true;
      } catch (error) {
        if (isImpulseError(error, 'IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED')) return false;
        throw error;
      }
    });
    assert.deepEqual(cluster.member(leader).group.membership.confState.voters, [1, 2, 3, 4]);
    // The new member serves linearizable reads and writes itself.
    await cluster.member(4).service.write(put('from-4', 'z'));
    assert.equal((await cluster.member(4).service.get(Buffer.from('from-4')))?.value.toString(), 'z');

    const view = await cluster.member(follower).admin.transferLeader(4);
    assert.equal(view.leader, 4);
    leader = await cluster.waitForLeader();
    assert.equal(leader, 4);
    await assert.rejects(cluster.member(4).admin.removeMember(4), (error) => isImpulseError(error, 'IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED') && /transfer leadership first/.test(error.message));

    const removed = [1, 2, 3].find((id) => id !== follower)!;
    await cluster.member(follower).admin.removeMember(removed);
    await eventually('the removed member to learn it', () => cluster!.member(removed).group.state === 'removed');
    assert.equal(cluster.member(removed).service.health().status, 'removed');
    await assert.rejects(cluster.member(removed).service.write(put('x', 'y')), (error) => isImpulseError(error, 'IMPULSE_ERR_RAFT_STOPPED'));
    await assert.rejects(cluster.member(leader).admin.addMember({ id: removed, peerUrl: '127.0.0.1:1' }), (error) => isImpulseError(error, 'IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED') && /never reused/.test(error.message));
    await cluster.member(follower).service.write(put('after-remove', 'ok'));
    assert.deepEqual(cluster.member(4).admin.view().members.map((member) => member.id), [1, 2, 3, 4].filter((id) => id !== removed));
  });

  it('refuses malformed operations with coded errors', async () => {
    const admin = cluster!.member(cluster!.running().find((id) => cluster!.member(id).group.state === 'running')!).admin;
    await assert.rejects(admin.addMember({ id: 0, peerUrl: '127.0.0.1:1' }), (error) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID'));
    await assert.rejects(admin.addMember({ id: 9, peerUrl: 'nowhere' }), (error) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID'));
    await assert.rejects(admin.addMember({ id: 9, peerUrl: '127.0.0.1:1', clientUrl: 'ftp://x' }), (error) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID'));
    await assert.rejects(admin.promoteMember(77), (error) => isImpulseError(error, 'IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED'));
    await assert.rejects(admin.transferLeader(77), (error) => isImpulseError(error, 'IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED'));
  });
});

describe('a leadership transfer the target cannot complete', () => {
  let cluster: InProcessCluster | undefined;
  after(async () => cluster?.close());

  it('is answered IMPULSE_ERR_UNAVAILABLE once the core aborts it (an election timeout), not at the request deadline, and the leader keeps serving', async () => {
    cluster = await InProcessCluster.start(3);
    const leader = await cluster.waitForLeader();
    const target = [1, 2, 3].find((id) => id !== leader)!;
    await cluster.member(leader).service.write(put('before', 'ok'));
    await cluster.stop(target);
    const started = Date.now();
    await assert.rejects(cluster.member(leader).admin.transferLeader(target), (error) => isImpulseError(error, 'IMPULSE_ERR_UNAVAILABLE') && /aborted/.test(error.message));
    const elapsed = Date.now() - started;
    // The election timeout is 500 ms; the request deadline 5 s. Generous for a loaded machine, well short of the deadline.
    assert.ok(elapsed < 3_000, `answered after ${elapsed} ms`);
    assert.equal(cluster.member(leader).group.leader, leader);
    await cluster.member(leader).service.write(put('after-aborted-transfer', 'ok'));
  });
});
