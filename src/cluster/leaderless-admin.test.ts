/**
 * `/cluster` of a leaderless member (LeaderlessClusterAdmin) on nodes of the
 * in-memory network: a membership call answers within its bound with the
 * change `running` (it goes on in the background, its step shown), and
 * `/cluster` reports it `done` once every member committed; a change that
 * fails early is answered with its 409; every member's client URL is shown.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { eventually, networksOfThisSuite } from '../../testkit/leaderless/network.js';
import { LeaderlessClusterAdmin } from './open-leaderless-member.js';

describe('the leaderless /cluster admin', () => {
  const open = networksOfThisSuite();

  it('answers a membership call within its bound while the change runs on; /cluster shows its step, then done', async () => {
    // The change takes at least one request time (its settle step: 1 s here); the call answers after 100 ms.
    const net = await open([1, 2, 3], { antiEntropyIntervalMs: 0, tombstoneIntervalMs: 0 });
    await net.addJoiner(4);
    const admin = new LeaderlessClusterAdmin(net.node(1), { clusterId: 'c', nodeId: 1, advertiseClient: 'http://node1.test:7070' }, 100);
    const answer = await admin.addMember({ id: 4, peerUrl: '' });
    // The 100 ms timer fires before the 1 s settle step ends, however slow the machine: the answer cannot be `done`.
    assert.equal(answer.membershipChange?.state, 'running');
    assert.equal(answer.membershipChange?.epoch, 1);
    assert.deepEqual(answer.membershipChange?.members, [1, 2, 3, 4]);
    assert.ok(['pending', 'settle'].includes(answer.membershipChange.step), answer.membershipChange.step);
    await eventually('the change is done', () => admin.view().membershipChange?.state === 'done');
    for (const id of [1, 2, 3, 4]) assert.deepEqual(net.node(id).ring.nodes, [1, 2, 3, 4], `node ${id} committed`);
    // Every member's client URL, the others' learned from their heartbeat answers.
    await eventually('every client URL known', () => admin.view().members.every((member) => member.clientUrl === `http://node${member.id}.test:7070`));

    // A change that fails within the bound (member 9 cannot take part: its pending step times out after 1 s) is answered with its 409, and /cluster says why.
    const patient = new LeaderlessClusterAdmin(net.node(1), { clusterId: 'c', nodeId: 1, advertiseClient: 'http://node1.test:7070' }, 5000);
    await assert.rejects(patient.addMember({ id: 9, peerUrl: '' }), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_LEADERLESS_MEMBERSHIP_REJECTED'));
    const failed = patient.view().membershipChange;
    assert.equal(failed?.state, 'failed');
    assert.equal(failed?.error?.member, 9);
  });
});
