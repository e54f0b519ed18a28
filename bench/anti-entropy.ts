/**
 * Anti-entropy cost at 100,000 keys, in one process (three leaderless nodes
 * on the in-memory network of testkit/leaderless, memory engines), so the
 * exchange itself is measured without HTTP or disks:
 *
 *   in sync   an exchange between two members that hold the same keys: what
 *             a periodic anti-entropy round costs when there is nothing to do;
 *   repair    member 1 repairing member 3, which missed 10% of the keys
 *             (`repairAll`: one pass per peer over every differing leaf,
 *             then one exchange that finds nothing; the passes it took are
 *             printed).
 *
 * For each: wall time, CPU time of the process (both sides of the exchange
 * run in it), and the bytes the initiator received and sent (its
 * `bytesExchanged` figure). Setup (writing the keys, and the first build of
 * the in-memory key hashes by a scan) is outside the timings; the build is
 * timed on its own (`build`: member 1's first exchange with member 2, both
 * members building). Each round prints the machine's load: it is shared.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/anti-entropy.js [--keys 100000] [--rounds 3]
 */
import { LeaderlessTestNetwork } from '../testkit/leaderless/network.js';
import { update } from '../src/leaderless/dvv.js';
import { flag, formatNumber, loadLine } from './report.js';

const keys = Number(flag('keys', '100000'));
const rounds = Number(flag('rounds', '3'));

interface Measured {
  wallMs: number;
  cpuMs: number;
  bytes: number;
}

async function measure(net: LeaderlessTestNetwork, work: () => Promise<unknown>): Promise<Measured> {
  const bytesBefore = net.node(1).antiEntropy.figures.bytesExchanged;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await work();
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return { wallMs, cpuMs: (used.user + used.system) / 1000, bytes: net.node(1).antiEntropy.figures.bytesExchanged - bytesBefore };
}

async function fill(net: LeaderlessTestNetwork): Promise<void> {
  const batch = 500;
  for (let start = 0; start < keys; start += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, keys - start) }, async (_, offset) => {
        const index = start + offset;
        const key = Buffer.from(`key-${String(index).padStart(8, '0')}`);
        const set = update([], [], 1, Buffer.from(`value-${index}`), index + 1);
        const holders = index % 10 === 0 ? [1, 2] : [1, 2, 3];
        await Promise.all(holders.map((id) => net.node(id).replica.apply(key, set)));
      }),
    );
  }
}

async function main(): Promise<void> {
  const results: { build: Measured; inSync: Measured; repair: Measured }[] = [];
  for (let round = 0; round < rounds; round++) {
    const net = await LeaderlessTestNetwork.open([1, 2, 3], { antiEntropyIntervalMs: 0, tombstoneIntervalMs: 0, requestTimeoutMs: 60_000, heartbeatMs: 1000, suspectAfterMs: 30_000, downAfterMs: 60_000 });
    try {
      await fill(net);
      // The first exchange builds the key hashes of both sides by a scan (timed on its own).
      const build = await measure(net, () => net.node(1).antiEntropy.exchange(2));
      const inSync = await measure(net, () => net.node(1).antiEntropy.exchange(2));
      let passes = '';
      const repair = await measure(net, async () => {
        const outcomes = await net.node(1).antiEntropy.repairAll();
        passes = outcomes.map((outcome) => ('error' in outcome ? `peer ${outcome.peer}: ${outcome.error}` : `peer ${outcome.peer}: ${outcome.leavesRepaired}/${outcome.leavesDiffering} leaves, ${outcome.keysPushed} pushed, ${outcome.complete ? 'complete' : 'INCOMPLETE'}`)).join('; ');
      });
      const digests = await Promise.all([1, 2, 3].map(async (id) => (await net.node(id).store.digest()).digest));
      if (new Set(digests).size !== 1) throw new Error('the replicas differ after the repair');
      results.push({ build, inSync, repair });
      console.log(`round ${round + 1}: build ${build.wallMs.toFixed(0)} ms wall / ${build.cpuMs.toFixed(0)} ms CPU; in sync ${inSync.wallMs.toFixed(0)} ms wall / ${inSync.cpuMs.toFixed(0)} ms CPU / ${inSync.bytes} B; repair ${repair.wallMs.toFixed(0)} ms wall / ${repair.cpuMs.toFixed(0)} ms CPU / ${repair.bytes} B (${passes}); ${loadLine()}`);
    } finally {
      await net.close();
    }
  }
  const median = (values: number[]): string => {
    const sorted = [...values].sort((a, b) => a - b);
    return `${formatNumber(sorted[Math.floor(sorted.length / 2)]!)} (${formatNumber(sorted[0]!)}–${formatNumber(sorted[sorted.length - 1]!)})`;
  };
  for (const kind of ['build', 'inSync', 'repair'] as const) {
    console.log(`${kind}: wall ms ${median(results.map((result) => result[kind].wallMs))}, CPU ms ${median(results.map((result) => result[kind].cpuMs))}, bytes ${median(results.map((result) => result[kind].bytes))}`);
  }
}

await main();
