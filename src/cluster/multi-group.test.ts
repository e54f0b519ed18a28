/**
 * Many Raft groups per node (three real members in one process, real TCP,
 * disks and clock): groups opened at runtime beside group 1, each electing
 * and serving writes from any member; idle groups quiesce (no heartbeats:
 * only the node-level ping crosses the wire) and wake for a write; a node
 * that dies while its groups are quiesced is replaced as their leader; a
 * destroyed group leaves no files and is refused as unavailable.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { encodeCommand } from '../kv/command.js';
import type { NodeId } from '../raft/types.js';
import { InProcessCluster, until } from '../../testkit/cluster/in-process.js';
import { peerAddresses } from './membership.js';

const GROUPS = Array.from({ length: 20 }, (_, index) => index + 2);
const put = (key: string, value: string): Uint8Array => encodeCommand({ ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }] });

describe('many raft groups on one node', () => {
  let cluster: InProcessCluster;
  before(async () => {
    cluster = await InProcessCluster.start(3);
    await cluster.waitForLeader();
    const voters = peerAddresses(cluster.member(1).group.membership);
    for (const id of cluster.running()) for (const group of GROUPS) await cluster.member(id).groups.open(group, voters);
  });
  after(async () => {
    await cluster?.close();
  });

  const sent = (id: NodeId): number => cluster.member(id).host.transport.stats().sentMessages;

  it('every group elects and takes writes at any member; idle groups quiesce and send no heartbeats; a write wakes one', async () => {
    for (const group of GROUPS) {
      const at = cluster.member((group % 3) + 1).groups.get(group)!;
      const { revision } = await at.requests.write(put(`k${group}`, `v${group}`), false);
      assert.ok(revision > 1);
      const reader = cluster.member(((group + 1) % 3) + 1).groups.get(group)!;
      await reader.requests.readBarrier();
      assert.equal((await reader.group.machine.machine.get(Buffer.from(`k${group}`)))?.value.toString(), `v${group}`);
    }
    const all = GROUPS.length + 1;
    await until('every group quiesced on every member', () => cluster.running().every((id) => cluster.member(id).host.quiescedGroups() === all));
    const before = cluster.running().map(sent);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const perSecond = cluster.running().map((id, index) => sent(id) - before[index]!);
    // Awake, the leaders of 21 groups would send 2 followers 10 heartbeats a second each (~420 a
    // second across the members); quiesced, only the node-level ping: 2 peers x 10 a second.
    for (const count of perSecond) assert.ok(count <= 40, `messages sent in a quiesced second: ${perSecond.join(', ')}`);
    const target = cluster.member(1).groups.get(7)!;
    await target.requests.write(put('wake', 'up'), false);
    await target.requests.readBarrier();
    assert.equal((await target.group.machine.machine.get(Buffer.from('wake')))?.value.toString(), 'up');
    await until('the woken group quiesced again', () => cluster.running().every((id) => cluster.member(id).host.quiescedGroups() === all));
  });

  it('a node that dies while its groups are quiesced is replaced as their leader', async () => {
    await until('every group quiesced', () => cluster.running().every((id) => cluster.member(id).host.quiescedGroups() === GROUPS.length + 1));
    const victim = cluster.member(1).groups.get(GROUPS[0]!)!.group.leader;
    const led = GROUPS.filter((group) => cluster.member(victim).groups.get(group)!.group.leader === victim);
    assert.ok(led.length > 0);
    await cluster.crash(victim);
    const survivor = cluster.running()[0]!;
    const leaderOf = (group: number): NodeId => cluster.member(survivor).groups.get(group)!.group.leader;
    await until('the survivors elected new leaders for the groups the dead node led', () => led.every((group) => leaderOf(group) !== victim && leaderOf(group) !== 0));
    for (const group of led) {
      const { revision } = await cluster.member(survivor).groups.get(group)!.requests.write(put('after', String(group)), false);
      assert.ok(revision > 0);
      assert.notEqual(cluster.member(survivor).groups.get(group)!.group.leader, victim);
    }
    // Woken by the silence of the leader's node, or sooner: its port refused the survivors' dials.
    assert.ok(cluster.running().some((id) => cluster.member(id).host.quiesceCounters.wokenBySilence + cluster.member(id).host.leaderGoneHints > 0));
  });

  it('a destroyed group leaves no files, and requests for it are refused as unavailable', async () => {
    const [a, b] = cluster.running() as [NodeId, NodeId];
    const group = GROUPS[GROUPS.length - 1]!;
    for (const id of [a, b]) await cluster.member(id).groups.destroy(group);
    for (const id of [a, b]) {
      assert.equal(cluster.member(id).host.group(group), undefined);
      assert.equal(existsSync(join(cluster.dataDir(id), 'raft', String(group))), false);
      assert.equal(existsSync(join(cluster.dataDir(id), 'kv', String(group))), false);
    }
    await assert.rejects(cluster.member(a).host.rpc.callAsync(b, 'kv-forward', { g: group, c: put('x', 'y'), t: 1000 }, 2000), (error) => isImpulseError(error, 'IMPULSE_ERR_UNAVAILABLE'));
  });
});
