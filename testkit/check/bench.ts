/**
 * Benchmark of the key-value linearizability checker on histories recorded
 * from a truly atomic store (so every verdict should be 'linearizable').
 *
 *     npx tsc -p . && flock /tmp/impulse-bench.lock node dist/testkit/check/bench.js
 *
 * Prints one row per workload: history size, keys, clients, timeout rate,
 * verdicts, search steps, and wall and CPU time of the check (history
 * recording excluded) over five seeds, and CPU time per search step. CPU time
 * is the steadier figure on a shared machine.
 */
import os from 'node:os';
import { recordAtomicHistory } from './atomic-history.js';
import { checkKvLinearizability } from './linearizability.js';

interface Workload {
  clients: number;
  operationsPerClient: number;
  keys: number;
  unknownProbability: number;
}

const WORKLOADS: Workload[] = [
  { clients: 10, operationsPerClient: 1000, keys: 20, unknownProbability: 0 },
  { clients: 10, operationsPerClient: 1000, keys: 20, unknownProbability: 0.05 },
  { clients: 10, operationsPerClient: 1000, keys: 20, unknownProbability: 0.2 },
  { clients: 10, operationsPerClient: 300, keys: 30, unknownProbability: 0.1 },
  { clients: 20, operationsPerClient: 500, keys: 50, unknownProbability: 0.1 },
  { clients: 8, operationsPerClient: 250, keys: 4, unknownProbability: 0.05 },
  { clients: 8, operationsPerClient: 35, keys: 1, unknownProbability: 0.15 },
  // Search-heavy: one hot key with timeouts takes ~100 steps per operation, so
  // this row measures the search loop itself rather than partitioning.
  { clients: 10, operationsPerClient: 400, keys: 1, unknownProbability: 0.05 },
];
const SEEDS = [1, 2, 3, 4, 5];

async function main(): Promise<void> {
  console.log(`# check: KV linearizability checker — ${new Date().toISOString()}`);
  console.log(`# ${os.cpus()[0]?.model ?? 'unknown cpu'} x${os.cpus().length}, node ${process.version}`);
  // Warm up the JIT so the first row is not charged for compilation.
  for (let seed = 100; seed < 103; seed++) checkKvLinearizability(await recordAtomicHistory({ seed, ...WORKLOADS[1]! }));
  console.log('| operations | keys | clients | timeouts | verdicts | steps (max) | wall ms (median) | wall ms (max) | cpu ms (median) | cpu µs/step (median) |');
  console.log('|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|');
  for (const workload of WORKLOADS) {
    const timesMs: number[] = [];
    const cpuMs: number[] = [];
    const cpuUsPerStep: number[] = [];
    const verdicts = new Map<string, number>();
    let stepsMax = 0;
    let operations = 0;
    for (const seed of SEEDS) {
      const history = await recordAtomicHistory({ seed, ...workload });
      operations = history.length;
      const started = process.hrtime.bigint();
      const cpuStarted = process.cpuUsage();
      const result = checkKvLinearizability(history);
      timesMs.push(Number(process.hrtime.bigint() - started) / 1e6);
      const cpu = process.cpuUsage(cpuStarted);
      cpuMs.push((cpu.user + cpu.system) / 1000);
      cpuUsPerStep.push((cpu.user + cpu.system) / Math.max(1, result.steps));
      verdicts.set(result.verdict, (verdicts.get(result.verdict) ?? 0) + 1);
      stepsMax = Math.max(stepsMax, result.steps);
    }
    timesMs.sort((a, b) => a - b);
    cpuMs.sort((a, b) => a - b);
    cpuUsPerStep.sort((a, b) => a - b);
    const verdictText = [...verdicts].map(([verdict, count]) => `${count} ${verdict}`).join(', ');
    console.log(
      `| ${operations} | ${workload.keys} | ${workload.clients} | ${(workload.unknownProbability * 100).toFixed(0)}% | ${verdictText} | ` +
        `${stepsMax} | ${timesMs[Math.floor(timesMs.length / 2)]!.toFixed(1)} | ${timesMs[timesMs.length - 1]!.toFixed(1)} | ` +
        `${cpuMs[Math.floor(cpuMs.length / 2)]!.toFixed(1)} | ${cpuUsPerStep[Math.floor(cpuUsPerStep.length / 2)]!.toFixed(2)} |`,
    );
  }
}

await main();
