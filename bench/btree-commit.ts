/**
 * The cost of one lone btree commit, in-process: `engine.batch([put])` and
 * `engine.batch([del])` one at a time on a tree of `--keys` keys (100k by
 * default), plus the state machine's shape (the key and the applied index in
 * one batch). No HTTP: this is the engine's share of a sequential request.
 *
 *   npx tsc -p . && flock /tmp/impulse-bench.lock node dist/bench/btree-commit.js [--keys 100000] [--n 2000] [--runs 5] [--sync none]
 *       [--out bench/results/btree-commit.md]
 *   node --cpu-prof --cpu-prof-dir /tmp/prof dist/bench/btree-commit.js --runs 1   (a profile of the same loop)
 *
 * Every figure is µs per operation, wall and CPU (process.cpuUsage, user +
 * system: far less sensitive to other load on a shared machine), the median
 * of `--runs` runs with the spread (min–max). Keys `key-<i>` (100k preloaded
 * in batches of 1000), value "bar", as bench/sequential.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BTreeEngine } from '../src/storage/btree/btree-engine.js';
import type { SyncMode, WriteOp } from '../src/storage/engine.js';
import { flag, formatNumber, loadLine, machineLine, medianCell, printAndSave, table } from './report.js';

const keys = Number(flag('keys', '100000'));
const n = Number(flag('n', '2000'));
const runs = Number(flag('runs', '5'));
const sync = flag('sync', 'none') as SyncMode;
const out = flag('out', 'bench/results/btree-commit.md');
const VALUE = Buffer.from('bar');
const APPLIED_KEY = Buffer.from('\u0000applied');

interface Cost {
  readonly wallUs: number;
  readonly cpuUs: number;
}

async function measure(count: number, op: (index: number) => Promise<unknown>): Promise<Cost> {
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  for (let index = 0; index < count; index++) await op(index);
  const wallUs = ((performance.now() - started) * 1000) / count;
  const cpu = process.cpuUsage(cpuBefore);
  return { wallUs, cpuUs: (cpu.user + cpu.system) / count };
}

const SHAPES = ['put (new key)', 'put (overwrite)', 'del', 'put + applied index'] as const;
type Shape = (typeof SHAPES)[number];

/** One run: a fresh tree of `keys` keys, then each shape `n` times, one lone batch at a time. */
async function run(round: number): Promise<Record<Shape, Cost>> {
  const dir = await mkdtemp(join(tmpdir(), 'impulse-btree-commit-'));
  const engine = new BTreeEngine({ dataDir: dir, sync });
  await engine.open();
  try {
    for (let first = 0; first < keys; first += 1000) {
      const ops: WriteOp[] = [];
      for (let index = first; index < Math.min(keys, first + 1000); index++) ops.push({ type: 'put', key: Buffer.from(`key-${index}`), value: VALUE });
      await engine.batch(ops, { sync: false });
    }
    // Warm-up: let V8 optimize the commit path before timing it.
    for (let index = 0; index < 500; index++) await engine.batch([{ type: 'put', key: Buffer.from(`warm-${index}`), value: VALUE }]);
    const lone = (op: WriteOp): Promise<void> => engine.batch([op]);
    // New keys spread over the tree (`key-<i>x` sorts right after `key-<i>`), as the HTTP benchmark's keys do.
    const spread = (index: number): number => (index * 7919 + round) % keys;
    const result: Record<Shape, Cost> = {
      'put (new key)': await measure(n, (index) => lone({ type: 'put', key: Buffer.from(`key-${spread(index)}x`), value: VALUE })),
      'put (overwrite)': await measure(n, (index) => lone({ type: 'put', key: Buffer.from(`key-${spread(index)}`), value: VALUE })),
      del: await measure(n, (index) => lone({ type: 'del', key: Buffer.from(`key-${spread(index)}x`) })),
      'put + applied index': await measure(n, (index) =>
        engine.batch([
          { type: 'put', key: Buffer.from(`key-${spread(index)}`), value: VALUE },
          { type: 'put', key: APPLIED_KEY, value: Buffer.from(String(index)) },
        ]),
      ),
    };
    return result;
  } finally {
    await engine.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(machineLine());
  console.log(loadLine());
  const wall = new Map<Shape, number[]>();
  const cpu = new Map<Shape, number[]>();
  for (let round = 1; round <= runs; round++) {
    const result = await run(round);
    for (const shape of SHAPES) {
      wall.set(shape, [...(wall.get(shape) ?? []), result[shape].wallUs]);
      cpu.set(shape, [...(cpu.get(shape) ?? []), result[shape].cpuUs]);
    }
    console.log(`run ${round}/${runs} (wall/CPU µs): ${SHAPES.map((shape) => `${shape} ${result[shape].wallUs.toFixed(1)}/${result[shape].cpuUs.toFixed(1)}`).join(', ')}`);
  }
  const show = (value: number): string => formatNumber(value, 1);
  const markdown = [
    '# btree: one lone commit, in-process',
    '',
    machineLine(),
    loadLine(),
    '',
    `\`node dist/bench/btree-commit.js --keys ${keys} --n ${n} --runs ${runs} --sync ${sync}\`: µs per lone \`engine.batch\`, median (min–max) of ${runs} runs of ${n}; tree of ${keys} keys, value "bar". Shared machine.`,
    '',
    table(
      ['batch', 'wall µs', 'CPU µs'],
      SHAPES.map((shape) => [shape, medianCell(wall.get(shape)!, show), medianCell(cpu.get(shape)!, show)]),
    ),
    '',
  ].join('\n');
  printAndSave(out, markdown);
}

await main();
