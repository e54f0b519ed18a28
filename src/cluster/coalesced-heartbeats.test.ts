/**
 * Coalesced heartbeats on real members (three in one process, real TCP, disks
 * and clock), sixteen ACTIVE groups beside group 1 (quiescence off, so every
 * group heartbeats): counted at the Transport, each node sends each peer one
 * message per heartbeat interval carrying the heartbeats of every group it
 * leads there, and one message back carries the responses; no group's
 * heartbeat travels alone. Writes commit and apply everywhere, linearizable
 * reads at followers are confirmed (ReadIndex rounds ride the coalesced
 * messages), and a node killed loses its leaderships to the others.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { encodeCommand } from '../kv/command.js';
import { HEARTBEATS_CHANNEL, decodeCoalescedHeartbeats } from '../raft/coalesced-heartbeats.js';
import { RAFT_CHANNEL } from '../raft/driver-seams.js';
import type { NodeId } from '../raft/types.js';
import type { PeerMessage } from '../transport/transport.js';
import { SystemClock } from '../util/clock.js';
import { InProcessCluster, until } from '../../testkit/cluster/in-process.js';
import { transferLeadership } from './group-conf.js';
import { peerAddresses } from './membership.js';

const GROUPS = Array.from({ length: 16 }, (_, index) => index + 2);
const ALL_GROUPS = [1, ...GROUPS];
/** The cluster's heartbeat interval (tick 50 ms × 2 ticks, src/cluster/config.ts). */
const HEARTBEAT_MS = 100;
const put = (key: string, value: string): Uint8Array => encodeCommand({ ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }] });
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Sent {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly message: PeerMessage;
}

describe('coalesced heartbeats of active groups', () => {
  let cluster: InProcessCluster;
  /** Every message the members' transports were asked to send while `recording`. */
  const sent: Sent[] = [];
  let recording = false;

  before(async () => {
    cluster = await InProcessCluster.start(3, { quiesceAfterTicks: 0 });
    await cluster.waitForLeader();
    const voters = peerAddresses(cluster.member(1).group.membership);
    for (const id of cluster.running()) await Promise.all(GROUPS.map((group) => cluster.member(id).groups.open(group, voters)));
    // Leaders spread over the members, so every node pair carries heartbeats both ways (and responses both ways).
    await Promise.all(
      GROUPS.map(async (group) => {
        await until(`group ${group} led`, () => leaderOf(group) !== 0, 30_000);
        const target = (group % 3) + 1;
        const leader = leaderOf(group);
        if (leader !== target) await transferLeadership(cluster.member(leader).host.group(group)!, target, new SystemClock(), 20, 10_000);
      }),
    );
    for (const id of cluster.running()) {
      const transport = cluster.member(id).host.transport;
      const send = transport.send.bind(transport);
      // Observes the real transport's sends (it still sends every message).
      transport.send = (to: NodeId, message: PeerMessage): void => {
        if (recording) sent.push({ from: id, to, message });
        send(to, message);
      };
    }
  });
  after(async () => {
    await cluster?.close();
  });

  const leaderOf = (group: number, at: NodeId = cluster.running()[0]!): NodeId => cluster.member(at).host.group(group)!.leader;
  const leaders = (): string => ALL_GROUPS.map((group) => cluster.running().map((id) => leaderOf(group, id)).join('')).join(',');
  const everyGroupLed = (): boolean => ALL_GROUPS.every((group) => cluster.running().every((id) => leaderOf(group, id) !== 0 && leaderOf(group, id) === leaderOf(group)));

  /** The messages of one window at rest, with the leaders unchanged through it. */
  async function restWindow(ms: number): Promise<{ window: Sent[]; led: Map<NodeId, number[]> }> {
    for (let attempt = 1; ; attempt++) {
      await until('every group led, every member agreeing', everyGroupLed, 30_000);
      // Settled: a new leader's first entries applied, no Ready in flight (a tick that waits for one runs late, off the heartbeat boundary).
      await sleep(1000);
      const before = leaders();
      sent.length = 0;
      recording = true;
      await sleep(ms);
      recording = false;
      if (leaders() === before) {
        const led = new Map(cluster.running().map((id) => [id, ALL_GROUPS.filter((group) => leaderOf(group) === id)]));
        return { window: [...sent], led };
      }
      // A leader changed inside the window (a very loaded machine can starve a timer past an election timeout): measure again.
      assert.ok(attempt < 4, `leaders kept changing: ${before} → ${leaders()}`);
    }
  }

  it('at rest, one message a heartbeat interval from each node to each peer carries every heartbeat of the groups it leads; one carries the responses back', async () => {
    const windowMs = 1500;
    const { window, led } = await restWindow(windowMs);
    const raftHeartbeats = window.filter(({ message }) => message.channel === RAFT_CHANNEL && /^heartbeat/.test(String((message.body as { type?: unknown }).type)));
    assert.equal(raftHeartbeats.length, 0, 'no group heartbeat travels on its own');
    const intervalsMax = Math.ceil(windowMs / HEARTBEAT_MS) + 1;
    const members = cluster.running();
    const lines: string[] = [];
    for (const from of members) {
      for (const to of members) {
        if (from === to) continue;
        const coalesced = window.filter((s) => s.from === from && s.to === to && s.message.channel === HEARTBEATS_CHANNEL).map((s) => decodeCoalescedHeartbeats(s.message.body));
        const withHeartbeats = coalesced.filter((list) => list.some((h) => h.message.type === 'heartbeat'));
        const withResponses = coalesced.filter((list) => list.some((h) => h.message.type === 'heartbeat-response'));
        const ledHere = led.get(from)!;
        const ledThere = led.get(to)!;
        lines.push(`n${from}→n${to}: ${withHeartbeats.length} messages carrying heartbeats of ${ledHere.length} groups, ${withResponses.length} carrying responses for ${ledThere.length}`);
        // One message per interval, each carrying the heartbeat of every group `from` leads (all have a replica on `to`).
        assert.ok(withHeartbeats.length <= intervalsMax, lines.at(-1));
        assert.equal(withHeartbeats.length > 0, ledHere.length > 0, lines.at(-1));
        for (const list of withHeartbeats) {
          const groups = list.filter((h) => h.message.type === 'heartbeat').map((h) => h.group);
          assert.deepEqual(groups.sort((a, b) => a - b), ledHere, `n${from}→n${to} carried the heartbeats of ${groups.join(',')}; it leads ${ledHere.join(',')}`);
        }
        // The responses to each of `to`'s heartbeat messages: one message back per interval.
        assert.ok(withResponses.length <= intervalsMax, lines.at(-1));
        const responded = new Set(withResponses.flatMap((list) => list.filter((h) => h.message.type === 'heartbeat-response').map((h) => h.group)));
        assert.deepEqual([...responded].sort((a, b) => a - b), ledThere, `n${from}→n${to} answered the heartbeats of ${[...responded].join(',')}; n${to} leads ${ledThere.join(',')}`);
      }
    }
    // And the host's counters (/metrics) saw them.
    for (const id of members) {
      const stats = cluster.member(id).host.heartbeats.stats;
      assert.ok(stats.messagesSent > 0 && stats.messagesReceived > 0 && stats.messagesInvalid === 0, JSON.stringify(stats));
    }
    console.log(`at rest, ${windowMs} ms (heartbeat every ${HEARTBEAT_MS} ms):\n  ${lines.join('\n  ')}`);
  });

  it('writes commit and apply on every member, and linearizable reads at followers are confirmed through the coalesced heartbeats', async () => {
    await until('every group led, every member agreeing', everyGroupLed, 30_000);
    const members = cluster.running();
    const heartbeatsSent = (): number => members.reduce((sum, id) => sum + cluster.member(id).host.heartbeats.stats.heartbeatsSent, 0);
    sent.length = 0;
    recording = true;
    for (const group of GROUPS) {
      const leader = leaderOf(group);
      const [writer, reader] = members.filter((id) => id !== leader) as [NodeId, NodeId];
      const { revision } = await cluster.member(writer).groups.get(group)!.requests.write(put(`k${group}`, `v${group}`), false);
      assert.ok(revision > 1);
      // A follower's read: the leader confirms its leadership with a round of heartbeats (coalesced) before naming the read index.
      const before = heartbeatsSent();
      const at = cluster.member(reader).groups.get(group)!;
      await at.requests.readBarrier();
      assert.equal((await at.group.machine.machine.get(Buffer.from(`k${group}`)))?.value.toString(), `v${group}`);
      assert.ok(heartbeatsSent() > before, 'the read-index round went as coalesced heartbeats');
    }
    recording = false;
    assert.equal(sent.filter(({ message }) => message.channel === RAFT_CHANNEL && /^heartbeat/.test(String((message.body as { type?: unknown }).type))).length, 0);
    // Every member's copy of every group applies the leader's commit (followers learn it from appends and from the coalesced heartbeats' commit indexes).
    for (const group of GROUPS) {
      const commit = cluster.member(leaderOf(group)).host.group(group)!.driver.status().commit;
      await until(`group ${group} applied to ${commit} everywhere`, () => members.every((id) => cluster.member(id).host.group(group)!.driver.status().applied >= commit), 10_000);
    }
  });

  it('a node killed: the groups it led elect leaders among the others, which take writes', async () => {
    await until('every group led, every member agreeing', everyGroupLed, 30_000);
    const victim = leaderOf(GROUPS[0]!);
    const lost = ALL_GROUPS.filter((group) => leaderOf(group) === victim);
    await cluster.crash(victim);
    const survivor = cluster.running()[0]!;
    await until('new leaders for the groups the dead node led', () => lost.every((group) => ![0, victim].includes(leaderOf(group, survivor))), 20_000);
    for (const group of lost.filter((id) => id !== 1)) {
      const { revision } = await cluster.member(survivor).groups.get(group)!.requests.write(put('after', String(group)), false);
      assert.ok(revision > 1);
    }
  });
});
