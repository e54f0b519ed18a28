/**
 * What coalescing the heartbeats of ACTIVE Raft groups per node pair saves:
 * a three-member cluster in ONE process (real TCP on 127.0.0.1, real disks,
 * the real clock; testkit/cluster/in-process.ts) hosting `--groups` groups
 * beside group 1 on all three members, quiescence off (so every group
 * heartbeats), leaders spread over the members; then, with coalescing on and
 * off (`coalesceHeartbeats`, src/cluster/node-host.ts), `--rounds` times each:
 *   - at rest for `--seconds`: the peer messages a second (all members) and
 *     the process's CPU;
 *   - under write load for `--seconds`: `--writers` concurrent writers, each
 *     putting one key at a time into a random group at its leader: PUT/s,
 *     messages a second, CPU, and CPU per 1,000 PUTs.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/heartbeats.js [--groups 64] [--seconds 10] [--rounds 3] [--writers 16] [--engine btree]
 *
 * Prints the table and writes it to docs/benchmarks.md (section "heartbeats-coalesced").
 */
import { transferLeadership } from '../src/cluster/group-conf.js';
import { peerAddresses } from '../src/cluster/membership.js';
import { encodeCommand } from '../src/kv/command.js';
import { SystemClock } from '../src/util/clock.js';
import { InProcessCluster } from '../testkit/cluster/in-process.js';
import { flag, formatNumber, loadLine, machineLine, medianCell, table, writeSection } from './report.js';

const groupCount = Number(flag('groups', '64'));
const seconds = Number(flag('seconds', '10'));
const rounds = Number(flag('rounds', '3'));
const writers = Number(flag('writers', '16'));
const engine = flag('engine', 'btree');

interface Phase {
  readonly cpuPercent: number;
  readonly messagesPerSecond: number;
  readonly putsPerSecond: number;
  /** Coalesced messages sent a second (all members), and the group heartbeats and responses they carried. */
  readonly coalescedPerSecond: number;
  readonly carriedPerSecond: number;
}

interface Sample {
  readonly rest: Phase;
  readonly load: Phase;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function phase(cluster: InProcessCluster, work: (until: number) => Promise<number>): Promise<Phase> {
  const members = cluster.running();
  const sent = (): number => members.reduce((sum, id) => sum + cluster.member(id).host.transport.stats().sentMessages, 0);
  const coalesced = (): { messages: number; carried: number } =>
    members.reduce(
      (sum, id) => {
        const stats = cluster.member(id).host.heartbeats.stats;
        return { messages: sum.messages + stats.messagesSent, carried: sum.carried + stats.heartbeatsSent + stats.responsesSent };
      },
      { messages: 0, carried: 0 },
    );
  const messagesBefore = sent();
  const coalescedBefore = coalesced();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const puts = await work(started + seconds * 1000);
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const coalescedAfter = coalesced();
  const perSecond = (count: number): number => (count * 1000) / elapsedMs;
  return {
    cpuPercent: ((cpu.user + cpu.system) / 1000 / elapsedMs) * 100,
    messagesPerSecond: perSecond(sent() - messagesBefore),
    putsPerSecond: perSecond(puts),
    coalescedPerSecond: perSecond(coalescedAfter.messages - coalescedBefore.messages),
    carriedPerSecond: perSecond(coalescedAfter.carried - coalescedBefore.carried),
  };
}

async function measure(coalesce: boolean): Promise<Sample> {
  const cluster = await InProcessCluster.start(3, { engine, quiesceAfterTicks: 0, coalesceHeartbeats: coalesce });
  try {
    await cluster.waitForLeader(30_000);
    const voters = peerAddresses(cluster.member(1).group.membership);
    const ids = Array.from({ length: groupCount }, (_, index) => index + 2);
    for (const member of cluster.running()) for (const id of ids) await cluster.member(member).groups.open(id, voters);
    const leaderOf = (id: number): number => cluster.member(1).host.group(id)!.leader;
    for (const id of ids) {
      while (leaderOf(id) === 0) await sleep(20);
      const target = (id % 3) + 1;
      // Spread the leaders (every node pair then carries heartbeats both ways); a refused transfer only leaves the spread uneven.
      if (leaderOf(id) !== target) await transferLeadership(cluster.member(leaderOf(id)).host.group(id)!, target, new SystemClock(), 20, 5000).catch(() => undefined);
    }
    await sleep(2000);
    const rest = await phase(cluster, async (until) => {
      await sleep(until - performance.now());
      return 0;
    });
    let key = 0;
    const load = await phase(cluster, async (until) => {
      let puts = 0;
      await Promise.all(
        Array.from({ length: writers }, async () => {
          while (performance.now() < until) {
            const id = ids[Math.floor(Math.random() * ids.length)]!;
            const leader = leaderOf(id);
            if (leader === 0) {
              await sleep(10);
              continue;
            }
            const command = encodeCommand({ ops: [{ type: 'put', key: Buffer.from(`k${key++}`), value: Buffer.alloc(100, 118) }] });
            await cluster.member(leader).groups.get(id)!.requests.write(command, false).then(
              () => void puts++,
              () => undefined,
            );
          }
        }),
      );
      return puts;
    });
    return { rest, load };
  } finally {
    await cluster.close();
  }
}

async function main(): Promise<void> {
  console.log(`start: ${loadLine()}`);
  const results = new Map<boolean, Sample[]>([
    [true, []],
    [false, []],
  ]);
  for (let round = 0; round < rounds; round++) {
    for (const coalesce of [false, true]) {
      const sample = await measure(coalesce);
      results.get(coalesce)!.push(sample);
      console.log(`round ${round + 1} coalescing ${coalesce ? 'on' : 'off'}: ${JSON.stringify(sample)}`);
    }
  }
  const endLoad = loadLine();
  console.log(`end: ${endLoad}`);
  const cell = (samples: readonly Sample[], of: (sample: Sample) => number, digits = 0): string => medianCell(samples.map(of), (value) => formatNumber(value, digits));
  const rows = [false, true].map((coalesce) => {
    const samples = results.get(coalesce)!;
    return [
      coalesce ? 'on' : 'off',
      cell(samples, (s) => s.rest.messagesPerSecond),
      cell(samples, (s) => s.rest.cpuPercent, 1),
      cell(samples, (s) => s.load.putsPerSecond),
      cell(samples, (s) => s.load.messagesPerSecond),
      cell(samples, (s) => s.load.cpuPercent, 1),
      cell(samples, (s) => (s.load.cpuPercent * 10 * 1000) / Math.max(s.load.putsPerSecond, 1)),
      `${cell(samples, (s) => s.rest.coalescedPerSecond)} / ${cell(samples, (s) => s.rest.carriedPerSecond)}`,
    ];
  });
  const markdown = [
    `### Heartbeats of active groups coalesced per node pair: ${groupCount} groups (+ group 1) on a three-member cluster in one process`,
    '',
    machineLine(),
    `Engine ${engine}; every group on all three members, quiescence off (every group heartbeats, 100 ms), leaders spread over the members; ${seconds} s at rest, then ${seconds} s of ${writers} writers putting 100-byte values one at a time into random groups at their leaders; median of ${rounds} rounds (min–max), the two settings alternating. CPU is the whole process (three members), in % of one core. Messages are peer transport messages sent by all members. The machine was shared with other engineers' work (${endLoad} at the end).`,
    '',
    table(['coalescing', 'messages/s at rest', 'CPU % at rest', 'PUT/s', 'messages/s under load', 'CPU % under load', 'CPU ms per 1,000 PUTs', 'coalesced messages/s / heartbeats carried/s (rest)'], rows),
  ].join('\n');
  console.log(markdown);
  await writeSection('heartbeats-coalesced', markdown);
}

await main();
