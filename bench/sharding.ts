/**
 * What idle Raft groups cost: a three-member cluster in ONE process (real
 * TCP on 127.0.0.1, real disks, the real clock; testkit/cluster/in-process.ts)
 * hosting `--groups` groups beside group 1, each replicated on all three
 * members, every group elected and holding one write; then the process's CPU
 * time and the messages the members send are measured over `--seconds` of
 * idleness, with quiescence on and off, `--rounds` times each.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/sharding.js [--groups 1000] [--seconds 10] [--rounds 3] [--engine btree] [--one-dead]
 *
 * With `--one-dead`, member 3 is killed once the groups settled and every
 * group takes one more write (so the dead member's replicas are behind in
 * all of them): the two survivors are measured, and with quiescence on their
 * groups must quiesce past the dead member (raft-group.ts).
 *
 * Prints the table and writes it to docs/benchmarks.md (section
 * "sharding-idle", or "sharding-idle-dead" with `--one-dead`).
 */
import { encodeCommand } from '../src/kv/command.js';
import { peerAddresses } from '../src/cluster/membership.js';
import { InProcessCluster } from '../testkit/cluster/in-process.js';
import { flag, formatNumber, machineLine, median, medianCell, table, writeSection } from './report.js';

const groupCount = Number(flag('groups', '1000'));
const seconds = Number(flag('seconds', '10'));
const rounds = Number(flag('rounds', '3'));
const engine = flag('engine', 'btree');
const oneDead = process.argv.includes('--one-dead');
const OPEN_CONCURRENCY = 32;

interface Sample {
  readonly cpuPercent: number;
  readonly messagesPerSecond: number;
  readonly openSeconds: number;
  readonly rssMiB: number;
  readonly quiesced: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function inBatches<T>(items: readonly T[], size: number, work: (item: T) => Promise<void>): Promise<void> {
  for (let index = 0; index < items.length; index += size) await Promise.all(items.slice(index, index + size).map(work));
}

async function measure(quiesce: boolean): Promise<Sample> {
  const cluster = await InProcessCluster.start(3, { engine, ...(quiesce ? {} : { quiesceAfterTicks: 0 }) });
  try {
    await cluster.waitForLeader(30_000);
    const voters = peerAddresses(cluster.member(1).group.membership);
    const ids = Array.from({ length: groupCount }, (_, index) => index + 2);
    const opening = performance.now();
    for (const member of cluster.running()) await inBatches(ids, OPEN_CONCURRENCY, async (id) => void (await cluster.member(member).groups.open(id, voters)));
    const openSeconds = (performance.now() - opening) / 1000;
    await inBatches(ids, OPEN_CONCURRENCY, async (id) => {
      const at = cluster.member((id % 3) + 1).groups.get(id)!;
      await at.requests.write(encodeCommand({ ops: [{ type: 'put', key: Buffer.from(`k${id}`), value: Buffer.from('v') }] }), false);
    });
    let members = cluster.running();
    const all = groupCount + 1;
    const settle = async (): Promise<void> => {
      const settleDeadline = Date.now() + 120_000;
      // Settled: every group quiesced everywhere (quiescence on), or a few election timeouts (off).
      if (quiesce) while (members.some((id) => cluster.member(id).host.quiescedGroups() < all) && Date.now() < settleDeadline) await sleep(100);
      else await sleep(3000);
    };
    await settle();
    if (oneDead) {
      await cluster.crash(3);
      members = cluster.running();
      await inBatches([1, ...ids], OPEN_CONCURRENCY, async (id) => {
        const command = encodeCommand({ ops: [{ type: 'put', key: Buffer.from(`dead-${id}`), value: Buffer.from('v') }] });
        for (let tries = 1; ; tries++) {
          try {
            return void (await cluster.member(1).groups.get(id)!.requests.write(command, false));
          } catch (error) {
            if (tries >= 20) throw error; // a put of the same value: safe to repeat after a dead leader's unknown outcome
            await sleep(100 * tries);
          }
        }
      });
      await settle();
    }
    const sent = (): number => members.reduce((sum, id) => sum + cluster.member(id).host.transport.stats().sentMessages, 0);
    const messagesBefore = sent();
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    await sleep(seconds * 1000);
    const elapsedMs = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    const quiesced = members.reduce((sum, id) => sum + cluster.member(id).host.quiescedGroups(), 0);
    return {
      cpuPercent: ((cpu.user + cpu.system) / 1000 / elapsedMs) * 100,
      messagesPerSecond: ((sent() - messagesBefore) * 1000) / elapsedMs,
      openSeconds,
      rssMiB: process.memoryUsage().rss / (1 << 20),
      quiesced,
    };
  } finally {
    await cluster.close();
  }
}

async function main(): Promise<void> {
  const results = new Map<boolean, Sample[]>([
    [true, []],
    [false, []],
  ]);
  for (let round = 0; round < rounds; round++) {
    for (const quiesce of [true, false]) {
      const sample = await measure(quiesce);
      results.get(quiesce)!.push(sample);
      console.log(`round ${round + 1} quiescence ${quiesce ? 'on' : 'off'}: ${JSON.stringify(sample)}`);
    }
  }
  const rows = [true, false].map((quiesce) => {
    const samples = results.get(quiesce)!;
    return [
      quiesce ? 'on' : 'off',
      medianCell(samples.map((s) => s.cpuPercent), (value) => formatNumber(value, 1)),
      medianCell(samples.map((s) => s.messagesPerSecond)),
      `${median(samples.map((s) => s.quiesced))} / ${(oneDead ? 2 : 3) * (groupCount + 1)}`,
      formatNumber(median(samples.map((s) => s.openSeconds)), 1),
      formatNumber(median(samples.map((s) => s.rssMiB)), 0),
    ];
  });
  const markdown = [
    `### Idle Raft groups: ${groupCount} groups (+ group 1) on a three-member cluster in one process${oneDead ? ', one member dead' : ''}`,
    '',
    machineLine(),
    oneDead
      ? `Engine ${engine}; every group replicated on all three members, elected, one write each; then member 3 killed and one more write to every group (its replicas behind everywhere), then ${seconds} s idle; median of ${rounds} rounds (min–max). CPU is the whole process (the two survivors), in % of one core; messages are the survivors'. The machine was shared with other engineers' work.`
      : `Engine ${engine}; every group replicated on all three members, elected, one write each, then ${seconds} s idle; median of ${rounds} rounds (min–max). CPU is the whole process (three members), in % of one core. The machine was shared with other engineers' work.`,
    '',
    table(['quiescence', 'CPU % (idle)', 'messages/s (all members)', 'replicas quiesced', `open ${3 * groupCount} replicas, s`, 'RSS MiB'], rows),
  ].join('\n');
  console.log(markdown);
  await writeSection(oneDead ? 'sharding-idle-dead' : 'sharding-idle', markdown);
}

await main();
