/**
 * The node runtime with three real members in one process (real TCP, real
 * disks, the real clock): writes through every member, reads from every member
 * at both consistency levels, conditions and sessions through forwarding,
 * restarts from the data directory, and the identity checks.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import type { KvCommand } from '../kv/command.js';
import { NodeVfs } from '../vfs/node-vfs.js';
import { InProcessCluster } from '../../testkit/cluster/in-process.js';
import { parseClusterConfig } from './config.js';
import { claimIdentity } from './identity.js';

const put = (key: string, value: string, extra: Partial<KvCommand> = {}): KvCommand => ({ ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }], ...extra });
const text = (value: { value: Buffer } | undefined): string | undefined => value?.value.toString('utf8');

describe('a three-member cluster in one process', () => {
  let cluster: InProcessCluster;
  before(async () => {
    cluster = await InProcessCluster.start(3);
  });
  after(async () => {
    await cluster?.close();
  });

  it('elects one leader, and every member serves writes and reads of every key', async () => {
    const leader = await cluster.waitForLeader();
    assert.ok([1, 2, 3].includes(leader));
    const revisions: number[] = [];
    for (const id of [1, 2, 3]) revisions.push((await cluster.member(id).service.write(put(`k${id}`, `v${id}`))).revision);
    assert.ok(revisions[0]! < revisions[1]! && revisions[1]! < revisions[2]!, `revisions grow: ${revisions}`);
    for (const reader of [1, 2, 3]) {
      for (const key of [1, 2, 3]) {
        const service = cluster.member(reader).service;
        assert.equal(text(await service.get(Buffer.from(`k${key}`))), `v${key}`, `linearizable read of k${key} at ${reader}`);
      }
    }
    await cluster.waitForApplied(revisions[2]!);
    for (const reader of [1, 2, 3]) {
      const got = await cluster.member(reader).service.get(Buffer.from('k3'), { consistency: 'serializable' });
      assert.equal(text(got), 'v3');
      assert.equal(got?.revision, revisions[2]);
    }
  });

  it('a failed condition through a follower is a 412 with the current revision, and changes nothing', async () => {
    const leader = await cluster.waitForLeader();
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    const { revision } = await cluster.member(follower).service.write(put('cond', 'a'));
    await assert.rejects(cluster.member(follower).service.write(put('cond', 'b', { ops: [{ type: 'put', key: Buffer.from('cond'), value: Buffer.from('b'), condition: { ifRevision: revision + 1000 } }] })), (error) => {
      assert.ok(isImpulseError(error, 'IMPULSE_ERR_PRECONDITION_FAILED'), String(error));
      assert.equal(error.details['revision'], revision);
      return true;
    });
    assert.equal(text(await cluster.member(leader).service.get(Buffer.from('cond'))), 'a');
  });

  it('a retried write with the same session applies once, through any member', async () => {
    const leader = await cluster.waitForLeader();
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    const session = { clientId: 'test-client', seq: 1 };
    const batch: KvCommand = { ops: [{ type: 'put', key: Buffer.from('counter'), value: Buffer.from('1'), condition: { ifAbsent: true } }], session };
    const first = await cluster.member(follower).service.write(batch);
    const again = await cluster.member(leader).service.write(batch);
    assert.equal(again.revision, first.revision, 'the retry got the first answer');
  });

  it('/cluster shows the members with the leader, their peer and (published) client URLs', async () => {
    const leader = await cluster.waitForLeader();
    const deadline = Date.now() + 10_000;
    let view = cluster.member(leader).admin.view();
    while (view.members.some((member) => member.clientUrl === null) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      view = cluster.member(leader).admin.view();
    }
    assert.equal(view.leader, leader);
    assert.equal(view.state, 'running');
    assert.deepEqual(view.members.map((member) => member.id), [1, 2, 3]);
    assert.deepEqual(view.members.map((member) => member.role).sort(), ['follower', 'follower', 'leader']);
    for (const member of view.members) {
      assert.match(member.peerUrl!, /^127\.0\.0\.1:\d+$/);
      assert.equal(member.clientUrl, `http://127.0.0.1:${10_000 + member.id}`);
      assert.ok(member.matchIndex !== null && member.lag !== null && member.lastContactMs !== null, 'the leader knows everyone\'s progress');
    }
  });

  it('a member restarted on its data directory rejoins and has everything', async () => {
    const leader = await cluster.waitForLeader();
    const victim = [1, 2, 3].find((id) => id !== leader)!;
    await cluster.stop(victim);
    const { revision } = await cluster.member(leader).service.write(put('while-down', 'x'));
    await cluster.restart(victim);
    await cluster.waitForApplied(revision);
    assert.equal(text(await cluster.member(victim).service.get(Buffer.from('while-down'), { consistency: 'serializable' })), 'x');
    assert.equal(text(await cluster.member(victim).service.get(Buffer.from('k1'), { consistency: 'serializable' })), 'v1');
  });

  it('refuses a data directory of another node id or another cluster', async () => {
    const vfs = new NodeVfs();
    const dir = cluster.dataDir(1);
    const other = parseClusterConfig({ nodeId: '2', initialCluster: '1=127.0.0.1:1,2=127.0.0.1:2' }, '127.0.0.1', 1)!;
    await assert.rejects(claimIdentity(vfs, dir, other), (error) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID') && /belongs to node 1/.test(error.message));
    const otherCluster = parseClusterConfig({ nodeId: '1', initialCluster: '1=127.0.0.1:1,2=127.0.0.1:2' }, '127.0.0.1', 1)!;
    await assert.rejects(claimIdentity(vfs, dir, otherCluster), (error) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID') && /belongs to cluster/.test(error.message));
  });
});
