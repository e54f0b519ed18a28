/**
 * What a batch across shards costs against one within a shard: a cluster of
 * three `impulse serve` processes split at "g" and "p" (three shards), one
 * client sending batches one after another through member 1 — 2 keys of one
 * shard, 2 keys of two shards, 3 keys of three shards — and for each kind
 * the latency (median, p99) and the members' CPU (all three processes, from
 * /proc) per batch. CPU per batch is the figure to compare on a loaded
 * machine; latency depends on the other load.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/txn.js [--batches 300] [--engine lsm]
 *
 * A diagnostic: prints its findings, writes nothing into docs/.
 */
import { ImpulseClient } from '../src/client/client.js';
import { ProcessCluster } from '../testkit/process/cluster-process.js';
import { eventually } from '../testkit/process/eventually.js';
import { flag, formatNumber, loadLine, machineLine, processCpuSeconds, table } from './report.js';

const batches = Number(flag('batches', '300'));
const engine = flag('engine', 'lsm');

const KINDS: ReadonlyArray<{ readonly name: string; readonly keys: (n: number) => string[] }> = [
  { name: 'one shard, 2 keys', keys: (n) => [`a/${n}`, `b/${n}`] },
  { name: 'two shards, 2 keys', keys: (n) => [`a/${n}`, `x/${n}`] },
  { name: 'three shards, 3 keys', keys: (n) => [`a/${n}`, `m/${n}`, `x/${n}`] },
];

async function main(): Promise<void> {
  const cluster = await ProcessCluster.start(3, { serveArgs: ['--split-keys', 'g,p', '--engine', engine] });
  const client = new ImpulseClient({ endpoint: cluster.url(1), timeoutMs: 10_000 });
  try {
    await cluster.waitForLeader();
    await eventually('every member serves every shard', async () => {
      const view = await cluster.client(1).shards();
      return view.sharded && view.shards.length === 3 && view.shards.every((shard) => shard.leader !== null);
    });
    const cpu = async (): Promise<number> => {
      let total = 0;
      for (const id of [1, 2, 3]) total += await processCpuSeconds(cluster.pid(id) ?? -1);
      return total;
    };
    const rows: string[][] = [];
    for (const [k, kind] of KINDS.entries()) {
      for (let n = 0; n < 20; n++) await client.batch(kind.keys(1_000_000 + k * 100 + n).map((key) => ({ op: 'put' as const, key, value: 'warm' })));
      const latenciesMs: number[] = [];
      const cpuBefore = await cpu();
      for (let n = 0; n < batches; n++) {
        const started = performance.now();
        await client.batch(kind.keys(k * 100_000 + n).map((key) => ({ op: 'put' as const, key, value: 'v'.repeat(100) })));
        latenciesMs.push(performance.now() - started);
      }
      const cpuMs = ((await cpu()) - cpuBefore) * 1000;
      latenciesMs.sort((x, y) => x - y);
      const at = (q: number): number => latenciesMs[Math.min(latenciesMs.length - 1, Math.floor(q * latenciesMs.length))]!;
      rows.push([kind.name, formatNumber(at(0.5), 2), formatNumber(at(0.99), 2), formatNumber(cpuMs / batches, 2)]);
    }
    console.log(machineLine());
    console.log(loadLine());
    console.log(`${batches} sequential batches of each kind through member 1, engine ${engine}, three members, split keys g,p`);
    console.log(table(['batch', 'median ms', 'p99 ms', 'CPU ms / batch (3 members)'], rows));
  } finally {
    client.close();
    await cluster.close();
  }
}

await main();
