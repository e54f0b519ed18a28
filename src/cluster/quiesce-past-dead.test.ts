/**
 * Quiescence past a dead member (three real members in one process, real
 * TCP, disks and clock; 40 Raft groups beside group 1): with one member
 * killed and every group written to after its death (so its replicas are
 * behind everywhere), the survivors' groups still quiesce — the leaders stop
 * heartbeating, only the node-level liveness ping crosses the wire; the
 * member comes back, the groups that quiesced past it wake, it catches up
 * in every group, and everything quiesces again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { encodeCommand } from '../kv/command.js';
import type { NodeId } from '../raft/types.js';
import { InProcessCluster, until as untilInProcess } from '../../testkit/cluster/in-process.js';
import { retriedLikeClient as retried } from '../../testkit/cluster/shard-checks.js';
import { peerAddresses } from './membership.js';

const GROUPS = Array.from({ length: 40 }, (_, index) => index + 2);
const ALL = [1, ...GROUPS];
const put = (key: string, value: string): Uint8Array => encodeCommand({ ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }] });
const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> => untilInProcess(what, check, timeoutMs);

describe('quiescence past a dead member', () => {
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
  const writeEverywhere = async (through: NodeId, key: string): Promise<void> => {
    // A put of the same value: safe to repeat when a dead leader leaves its outcome unknown.
    for (const group of ALL) await retried(() => cluster.member(through).groups.get(group)!.requests.write(put(key, String(group)), false), 20);
  };

  it('with one of three members dead the groups stop heartbeating; the member returns, catches up and they quiesce again', async () => {
    await writeEverywhere(1, 'before');
    await until('every group quiesced on every member', () => cluster.running().every((id) => cluster.member(id).host.quiescedGroups() === ALL.length));
    const victim: NodeId = 3;
    const survivors: NodeId[] = [1, 2];
    await cluster.crash(victim);
    // New leaders where the victim led, and an entry in every group the victim does not have.
    await writeEverywhere(1, 'after');
    await until('every group quiesced on the survivors, past the dead member', () => survivors.every((id) => cluster.member(id).host.quiescedGroups() === ALL.length));
    const quiescedPast = ALL.filter((group) => survivors.some((id) => cluster.member(id).groups.get(group)!.group.quiescedPast.includes(victim)));
    assert.equal(quiescedPast.length, ALL.length, 'every group\'s leader quiesced past the dead member');
    const before = survivors.map(sent);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const perSecond = survivors.map((id, index) => (sent(id) - before[index]!) / 2);
    // Awake, the leaders of 41 groups would send their live follower ~10 heartbeats a second each,
    // and the follower answer each (~800 a second across the survivors); quiesced, only the
    // node-level ping (2 peers x 10 a second) and, on a loaded machine, the odd group woken by a
    // late ping and quiesced again.
    for (const count of perSecond) assert.ok(count <= 150, `messages sent a second, quiesced with a member dead: ${perSecond.join(', ')}`);

    const back = await cluster.restart(victim);
    for (const group of GROUPS) await back.groups.open(group, undefined); // from its files (this cluster is not sharded: nothing else opens them)
    const leaderIndex = (group: number): number => {
      const leader = survivors.map((id) => cluster.member(id).groups.get(group)!.group).find((each) => each.leads);
      return leader?.machine.appliedIndex ?? Number.MAX_SAFE_INTEGER;
    };
    await until('the returned member caught up in every group', () => ALL.every((group) => (cluster.member(victim).groups.get(group)?.group.machine.appliedIndex ?? 0) >= leaderIndex(group)));
    for (const group of ALL) {
      const machine = cluster.member(victim).groups.get(group)!.group.machine.machine;
      assert.equal((await machine.get(Buffer.from('after')))?.value.toString(), String(group), `group ${group}: the write made while it was dead`);
    }
    const woken = survivors.reduce((sum, id) => sum + cluster.member(id).host.quiesceCounters.wokenByReturn, 0);
    assert.ok(woken >= 1, `groups woken by the member's return: ${woken}`);
    await until('every group quiesced again on every member, none past anyone', () =>
      cluster.running().every((id) => cluster.member(id).host.quiescedGroups() === ALL.length && ALL.every((group) => cluster.member(id).groups.get(group)!.group.quiescedPast.length === 0)),
    );
  });
});
