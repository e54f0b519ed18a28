/**
 * What the running byte count (src/cluster/shard-size.ts) saves a shard's
 * leader: the size check of `--shard-split-bytes` on a parent shard after a
 * split. Before the running count, each round (every 5 s) whose disk
 * filter passed scanned the shard (and after a split the frozen half keeps
 * the disk bytes up); now a check scans once after the split, then adds the
 * bytes of the writes applied since.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/shard-size.js [--keys 200000] [--engine lsm] [--runs 3]
 *
 * Per run: a fresh shard of `keys` keys (16-byte keys, 100-byte values) on a
 * real disk (a temporary directory), split in the middle; the threshold is
 * 80% of its bytes, so the left half stays under it. Measured: a scan as
 * every such round made it (a fresh ShardSizes has no base: it counts the
 * left half), and checks with
 * the running count (the first one scans, the next 20 with 100 writes
 * between them do not, on a shard large enough that 2,000 writes stay
 * below the threshold). Prints the median of the runs with the spread.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { RaftKvMachine } from '../src/cluster/raft-kv-machine.js';
import { ShardSizes } from '../src/cluster/shard-size.js';
import { encodeClusterCommand } from '../src/cluster/log-entries.js';
import { MEMBERSHIP_META_NAME, encodeMembership, initialMembership } from '../src/cluster/membership.js';
import { type KvLimits, encodeCommand } from '../src/kv/command.js';
import { DirectoryEngineHome } from '../src/kv/engine-home.js';
import { KvStateMachine, engineLimitsFor } from '../src/kv/state-machine.js';
import type { Entry } from '../src/raft/types.js';
import { SHARD_BOUNDS_META_NAME, encodeShardBounds } from '../src/shard/shard-map.js';
import { DEFAULT_LIMITS } from '../src/storage/engine.js';
import { createEngine } from '../src/storage/registry.js';
import { NodeVfs } from '../src/vfs/node-vfs.js';
import { formatNumber, table } from './report.js';

const { values } = parseArgs({ options: { keys: { type: 'string', default: '200000' }, engine: { type: 'string', default: 'lsm' }, runs: { type: 'string', default: '3' } } });
const KEYS = Number(values.keys);
const KV_LIMITS: KvLimits = { keyBytesMax: 1024, valueBytesMax: 1 << 20, batchOpsMax: 1000, batchBytesMax: 8 << 20, rangeLimitMax: DEFAULT_LIMITS.rangeLimitMax };
const RUNS = Number(values.runs);
const VALUE = Buffer.alloc(100, 0x61);
const keyOf = (index: number): Buffer => Buffer.from(`key${String(index).padStart(13, '0')}`);

interface RunFigures {
  readonly oldCheckMs: number;
  readonly firstCheckMs: number;
  readonly laterCheckMs: number;
  readonly diskBytes: number;
  /** Scans of the running count over its 21 checks (1 unless the writes between them brought it within threshold/16 of the threshold). */
  readonly scans: number;
}

async function applyOne(raft: RaftKvMachine, entry: Entry): Promise<void> {
  await new Promise<void>((resolve, reject) => raft.apply([entry], (error) => (error === null ? resolve() : reject(error))));
}

async function run(): Promise<RunFigures> {
  const dir = await mkdtemp(join(tmpdir(), 'impulse-shard-size-'));
  try {
    const vfs = new NodeVfs();
    const limits = engineLimitsFor(KV_LIMITS);
    const machine = await KvStateMachine.open({ home: new DirectoryEngineHome(vfs, dir, (engineDir) => createEngine(values.engine, { dataDir: engineDir, limits }, { vfs })), limits: KV_LIMITS });
    const bounds = { start: Buffer.alloc(0), end: null };
    await machine.applyBatch([{ index: 1, term: 1, type: 'meta', name: MEMBERSHIP_META_NAME, value: encodeMembership(initialMembership(new Map([[1, '127.0.0.1:1']]))), more: [{ name: SHARD_BOUNDS_META_NAME, value: encodeShardBounds(bounds) }] }]);
    const raft = await RaftKvMachine.open({ machine, limits: KV_LIMITS, logger: pino({ level: 'silent' }), guard: (work) => work(), flushEntries: 1_000_000 });
    let index = 2;
    const write = (from: number, count: number): Promise<void> => {
      const ops = Array.from({ length: count }, (_, i) => ({ type: 'put' as const, key: keyOf(from + i), value: VALUE }));
      return applyOne(raft, { kind: 'normal', index: index++, term: 1, data: encodeCommand({ ops }) });
    };
    for (let from = 0; from < KEYS; from += 500) await write(from, Math.min(500, KEYS - from));
    await machine.flush();
    const middle = keyOf(Math.floor(KEYS / 2));
    await applyOne(raft, { kind: 'normal', index: index++, term: 1, data: encodeClusterCommand({ type: 'split', key: middle, rightId: 3 }) });
    await machine.flush();
    const left = { start: Buffer.alloc(0), end: middle };
    const threshold = Math.floor(KEYS * (keyOf(0).length + VALUE.length) * 0.8);
    const diskBytes = (await machine.stats()).diskBytes ?? 0;
    const timed = async (sizes: ShardSizes): Promise<number> => {
      const started = performance.now();
      const key = await sizes.check(raft, left);
      if (key !== undefined) throw new Error('the left half should stay under the threshold');
      return performance.now() - started;
    };
    const oldCheckMs = await timed(new ShardSizes(threshold)); // no base: scans, as every round did before
    const sizes = new ShardSizes(threshold);
    const firstCheckMs = await timed(sizes);
    const later: number[] = [];
    for (let round = 0; round < 20; round++) {
      await write(round * 100, 100); // overwrites in the left half between checks
      later.push(await timed(sizes));
    }
    await machine.close();
    return { oldCheckMs, firstCheckMs, laterCheckMs: median(later), diskBytes, scans: sizes.scans };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const runs: RunFigures[] = [];
for (let i = 0; i < RUNS; i++) runs.push(await run());
const cell = (pick: (figures: RunFigures) => number, digits: number): string => {
  const all = runs.map(pick);
  return `${formatNumber(median(all), digits)} (${formatNumber(Math.min(...all), digits)}–${formatNumber(Math.max(...all), digits)})`;
};
console.log(`shard size check after a split: ${formatNumber(KEYS)} keys of ${keyOf(0).length + VALUE.length} bytes, ${values.engine} engine on disk (${formatNumber(runs[0]!.diskBytes / 1048576, 1)} MiB), threshold 80% of the bytes; median of ${RUNS} runs (min–max)`);
console.log(
  table(
    ['check', 'ms'],
    [
      ['before: every round (a scan of the left half)', cell((f) => f.oldCheckMs, 1)],
      ['running count: first check after the split (one scan)', cell((f) => f.firstCheckMs, 1)],
      ['running count: each later round (100 writes between)', cell((f) => f.laterCheckMs, 3)],
      ['running count: scans over its 21 checks', cell((f) => f.scans, 0)],
    ],
  ),
);
