/**
 * db_bench-style comparison of impulse's `lsm` engine with LevelDB
 * (classic-level), both driven through their public Node APIs in the same
 * process, one after the other, each in a fresh temporary directory.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/lsm.js [--entries N] [--concurrency C] [--runs R] [--engines lsm,leveldb] [--out bench/results/lsm.md]
 *
 * `--engines lsm` runs lsm alone (no ratio column), e.g. under
 * `node --cpu-prof --cpu-prof-dir=DIR` to profile the JavaScript thread and
 * both background workers (one profile file per thread).
 *
 * Workloads (16-byte keys, 100-byte incompressible values, the same seeded
 * key sequence for both engines):
 *   fillseq     N puts, ascending keys, into an empty store
 *   fillrandom  N puts, uniformly random keys (with repeats), into an empty store
 *   overwrite   N more random puts into the fillrandom store
 *   readrandom  N gets of random keys in [0, N) (most present)
 *   readseq     the whole store in key order, pages of 1,000 entries
 *   seekrandom  N/10 seeks: the first entry >= a random key
 *   scan100     N/100 range scans of 100 entries from a random key
 *
 * Both engines: sync off (the OS decides when bytes reach the disk), block
 * cache 64 MiB, write buffer (memtable) 8 MiB. `concurrency` callers each
 * await their own operation (default 16): the shape of a server with several
 * clients in flight. Write phases end when the engine's own background work
 * is drained for lsm (so its compaction time is counted); LevelDB compacts on
 * its own threads and is not waited for (db_bench does not wait either).
 *
 * Runs: the whole sequence runs `runs` times (default 3) for each engine,
 * alternating which engine goes first, so a slow minute on a shared machine
 * does not land on one engine only. The table gives, per workload, each
 * engine's median ops/s with the range over the runs, and the median of the
 * per-run ratios with their range: one lucky run cannot carry a row.
 */
import { ClassicLevel } from 'classic-level';
import { mkdtemp, readdir, rm, stat, mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, platform, release } from 'node:os';
import { join } from 'node:path';
import { SeededRandom } from '../src/util/random.js';
import { LsmEngine } from '../src/storage/lsm/lsm-engine.js';
import { medianCell } from './report.js';

interface Args {
  entries: number;
  concurrency: number;
  cacheBytes: number;
  runs: number;
  engines: readonly string[];
  out: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { entries: 1_000_000, concurrency: 16, cacheBytes: 64 * 1024 * 1024, runs: 3, engines: ['leveldb', 'lsm'], out: 'bench/results/lsm.md' };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === '--entries' && value !== undefined) args.entries = Number(value);
    else if (flag === '--concurrency' && value !== undefined) args.concurrency = Number(value);
    else if (flag === '--out' && value !== undefined) args.out = value;
    else if (flag === '--cache-mib' && value !== undefined) args.cacheBytes = Number(value) * 1024 * 1024;
    else if (flag === '--runs' && value !== undefined) args.runs = Number(value);
    else if (flag === '--engines' && value !== undefined) args.engines = value.split(',');
    else continue;
    i++;
  }
  if (!Number.isSafeInteger(args.entries) || args.entries < 1000) throw new Error('--entries must be an integer >= 1000');
  if (!Number.isSafeInteger(args.concurrency) || args.concurrency < 1) throw new Error('--concurrency must be a positive integer');
  if (!Number.isSafeInteger(args.cacheBytes) || args.cacheBytes < 1) throw new Error('--cache-mib must be a positive integer');
  if (!Number.isSafeInteger(args.runs) || args.runs < 1) throw new Error('--runs must be a positive integer');
  if (args.engines.length === 0 || args.engines.some((engine) => engine !== 'lsm' && engine !== 'leveldb')) throw new Error('--engines must list lsm and/or leveldb');
  return args;
}

const KEY_BYTES = 16;
const VALUE_BYTES = 100;
const WRITE_BUFFER_BYTES = 8 * 1024 * 1024;

/** Key `index` as 16 ASCII digits (so byte order = numeric order). */
function makeKey(index: number): Buffer {
  return Buffer.from(String(index).padStart(KEY_BYTES, '0'), 'latin1');
}

/** The store under test, reduced to what the workloads need. */
interface Subject {
  readonly name: string;
  put(key: Buffer, value: Buffer): Promise<void>;
  get(key: Buffer): Promise<Buffer | undefined>;
  /** Up to `limit` entries with key > `after` (or from the start). */
  page(after: Buffer | undefined, limit: number): Promise<Array<[Buffer, Buffer]>>;
  /** Up to `limit` entries with key >= `from`. */
  scan(from: Buffer, limit: number): Promise<number>;
  drain(): Promise<void>;
  writeAmplification(userBytes: number): Promise<string>;
  close(): Promise<void>;
}

async function openLsm(dir: string, cacheBytes: number): Promise<Subject> {
  const engine = new LsmEngine({ dataDir: dir, sync: 'none', blockCacheBytes: cacheBytes, memtableBytes: WRITE_BUFFER_BYTES });
  await engine.open();
  return {
    name: 'lsm',
    put: (key, value) => engine.put(key, value),
    get: (key) => engine.get(key),
    page: async (after, limit) => (await engine.range(after === undefined ? { limit } : { gt: after, limit })).map((entry) => [entry.key, entry.value]),
    scan: async (from, limit) => (await engine.range({ gte: from, limit })).length,
    drain: () => engine.waitForBackgroundIdle(),
    writeAmplification: async () => {
      const figures = (await engine.stats()).figures;
      const user = figures['user_bytes_written']!;
      const tables = (figures['flush_bytes_written']! + figures['compaction_bytes_written']!) / user;
      const perFlushMs = Math.round(figures['flush_ms']! / Math.max(1, figures['flushes']!));
      return `${tables.toFixed(2)} (${figures['write_amplification']!.toFixed(2)} with WAL; ${figures['write_stalls']} stalls (${figures['write_stalls_level0']} on level 0), ${figures['write_stall_ms']} ms; ${figures['flushes']} flushes, ${perFlushMs} ms each; ${figures['compactions']} compactions, ${figures['compaction_ms']} ms)`;
    },
    close: () => engine.close(),
  };
}

async function openLevelDb(dir: string, cacheBytes: number): Promise<Subject> {
  const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer', cacheSize: cacheBytes, writeBufferSize: WRITE_BUFFER_BYTES });
  await db.open();
  return {
    name: 'leveldb',
    put: (key, value) => db.put(key, value),
    get: (key) => db.get(key),
    page: async (after, limit) => {
      // nextv may return fewer than asked before the end: keep asking until the page is full or the store ends.
      const iterator = db.iterator(after === undefined ? { limit } : { gt: after, limit });
      try {
        const page: Array<[Buffer, Buffer]> = [];
        while (page.length < limit) {
          const batch = (await iterator.nextv(limit - page.length)) as Array<[Buffer, Buffer]>;
          if (batch.length === 0) break;
          page.push(...batch);
        }
        return page;
      } finally {
        await iterator.close();
      }
    },
    scan: async (from, limit) => {
      const iterator = db.iterator({ gte: from, limit });
      try {
        let count = 0;
        while (count < limit) {
          const batch = await iterator.nextv(limit - count);
          if (batch.length === 0) break;
          count += batch.length;
        }
        return count;
      } finally {
        await iterator.close();
      }
    },
    drain: async () => undefined,
    writeAmplification: async (userBytes) => {
      // "Compactions" table of leveldb.stats: the Write(MB) column covers flushes and compactions (not the WAL).
      const stats = await db.getProperty('leveldb.stats');
      let writtenMb = 0;
      for (const line of stats.split('\n')) {
        const columns = line.trim().split(/\s+/);
        if (columns.length === 6 && /^\d+$/.test(columns[0]!)) writtenMb += Number(columns[5]);
      }
      return `${((writtenMb * 1024 * 1024) / userBytes).toFixed(2)}`;
    },
    close: () => db.close(),
  };
}

/** Milliseconds spent in `after()` (draining background work) by the last `timed` call. */
let lastDrainMs = 0;

/** Runs `operation(i)` for i in [0, count) with `concurrency` callers in flight, then `after`; returns ops/s over both. */
async function timed(count: number, concurrency: number, operation: (index: number) => Promise<unknown>, after?: () => Promise<void>): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      await operation(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  const drainStarted = performance.now();
  if (after) await after();
  lastDrainMs = performance.now() - drainStarted;
  return count / ((performance.now() - started) / 1000);
}

async function diskBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}

/** One workload's ops/s per engine, one number per run (runs in order). */
interface Row {
  workload: string;
  opsPerSecond: Record<string, number[]>;
}

/** The 1-, 5- and 15-minute load averages, for the notes: on a shared machine they say how much a run can be trusted. */
function loadLine(): string {
  return loadavg().map((load) => load.toFixed(1)).join(' / ');
}

async function runOne(open: (dir: string, cacheBytes: number) => Promise<Subject>, args: Args, rows: Row[], notes: Record<string, string[][]>): Promise<void> {
  const { entries, concurrency } = args;
  const loadAtStart = loadLine();
  const random = new SeededRandom(2024);
  const randomKeys = Uint32Array.from({ length: entries }, () => random.int(entries));
  const readKeys = Uint32Array.from({ length: entries }, () => random.int(entries));
  const values = Array.from({ length: 1024 }, () => Buffer.from(Array.from({ length: VALUE_BYTES }, () => random.int(256))));
  const value = (i: number): Buffer => values[i % values.length]!;
  const record = (name: string, workload: string, opsPerSecond: number): void => {
    let row = rows.find((candidate) => candidate.workload === workload);
    if (row === undefined) rows.push((row = { workload, opsPerSecond: {} }));
    (row.opsPerSecond[name] ??= []).push(opsPerSecond);
    console.log(`${name.padEnd(8)} ${workload.padEnd(11)} ${Math.round(opsPerSecond).toLocaleString('en-US').padStart(12)} ops/s`);
  };
  const userBytes = (count: number): number => count * (KEY_BYTES + VALUE_BYTES);

  // fillseq in its own store.
  const seqDir = await mkdtemp(join(tmpdir(), 'impulse-bench-lsm-'));
  try {
    const subject = await open(seqDir, args.cacheBytes);
    record(subject.name, 'fillseq', await timed(entries, concurrency, (i) => subject.put(makeKey(i), value(i)), () => subject.drain()));
    await subject.close();
  } finally {
    await rm(seqDir, { recursive: true, force: true });
  }

  const dir = await mkdtemp(join(tmpdir(), 'impulse-bench-lsm-'));
  try {
    const subject = await open(dir, args.cacheBytes);
    const name = subject.name;
    record(name, 'fillrandom', await timed(entries, concurrency, (i) => subject.put(makeKey(randomKeys[i]!), value(i)), () => subject.drain()));
    const fillDrainMs = lastDrainMs;
    record(name, 'overwrite', await timed(entries, concurrency, (i) => subject.put(makeKey(randomKeys[entries - 1 - i]!), value(i + 7)), () => subject.drain()));
    const overwriteDrainMs = lastDrainMs;
    const amplification = await subject.writeAmplification(userBytes(2 * entries));
    let found = 0;
    record(name, 'readrandom', await timed(entries, concurrency, async (i) => {
      if ((await subject.get(makeKey(readKeys[i]!))) !== undefined) found++;
    }));
    let scanned = 0;
    const readSeqStarted = performance.now();
    let after: Buffer | undefined;
    for (;;) {
      const page = await subject.page(after, 1000);
      scanned += page.length;
      if (page.length < 1000) break;
      after = page[page.length - 1]![0];
    }
    record(name, 'readseq', scanned / ((performance.now() - readSeqStarted) / 1000));
    const seeks = Math.max(1, Math.floor(entries / 10));
    record(name, 'seekrandom', await timed(seeks, concurrency, (i) => subject.scan(makeKey(readKeys[i]!), 1)));
    const scans = Math.max(1, Math.floor(entries / 100));
    record(name, 'scan100', await timed(scans, concurrency, (i) => subject.scan(makeKey(readKeys[i]!), 100)));
    await subject.close();
    (notes[name] ??= []).push([
      `load average (1 / 5 / 15 min) at start ${loadAtStart}, at end ${loadLine()}`,
      `background drain counted in the write phases: fillrandom ${Math.round(fillDrainMs)} ms, overwrite ${Math.round(overwriteDrainMs)} ms`,
      `write amplification after fillrandom + overwrite (table bytes written / user bytes): ${amplification}`,
      `on-disk size after close: ${(await diskBytes(dir) / 1024 / 1024).toFixed(1)} MiB; readrandom found ${found} of ${entries}; readseq saw ${scanned} entries`,
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const cpu = cpus();
  const header = [
    `# lsm vs LevelDB (classic-level) — db_bench-style`,
    '',
    `- machine: ${cpu[0]?.model ?? 'unknown'}, ${cpu.length} cores, ${platform()} ${release()}`,
    `- node ${process.version}; date ${new Date().toISOString()}`,
    `- ${args.entries.toLocaleString('en-US')} entries, ${KEY_BYTES}-byte keys, ${VALUE_BYTES}-byte incompressible values; concurrency ${args.concurrency} callers, each awaiting its own operation`,
    `- both engines: sync off, block cache ${args.cacheBytes / 1024 / 1024} MiB, write buffer ${WRITE_BUFFER_BYTES / 1024 / 1024} MiB, public Node API (lsm: Engine.put/get/range; LevelDB: classic-level put/get/iterator)`,
    `- lsm write phases include draining its background compaction; LevelDB compacts on its own threads and is not waited for`,
    `- ${args.runs} runs per engine, alternating which engine goes first; each cell is the median ops/s [lowest–highest run], the ratio is the median of the per-run ratios [their range]`,
  ];
  console.log(header.join('\n'));
  const rows: Row[] = [];
  const notes: Record<string, string[][]> = {};
  for (let run = 0; run < args.runs; run++) {
    console.log(`\n-- run ${run + 1} of ${args.runs}`);
    const order = (run % 2 === 0 ? [openLevelDb, openLsm] : [openLsm, openLevelDb]).filter((open) => args.engines.includes(open === openLsm ? 'lsm' : 'leveldb'));
    for (const open of order) await runOne(open, args, rows, notes);
  }
  const table = ['| workload | LevelDB ops/s | lsm ops/s | lsm / LevelDB |', '|---|---:|---:|---:|'];
  for (const row of rows) {
    const level = row.opsPerSecond['leveldb'] ?? [];
    const lsm = row.opsPerSecond['lsm'] ?? [];
    const ratios = lsm.length === level.length ? lsm.map((value, run) => value / level[run]!) : [];
    const cell = (values: number[], format: (value: number) => string): string => (values.length === 0 ? '—' : medianCell(values, format));
    table.push(`| ${row.workload} | ${cell(level, formatOps)} | ${cell(lsm, formatOps)} | ${cell(ratios, (ratio) => `${ratio.toFixed(2)}×`)} |`);
  }
  const noteLines = Object.entries(notes).flatMap(([name, runs]) => runs.flatMap((lines, run) => lines.map((line) => `${name} (run ${run + 1}): ${line}`)));
  const body = [...header, '', ...table, '', ...noteLines.map((line) => `- ${line}`), ''].join('\n');
  console.log('\n' + table.join('\n') + '\n');
  for (const line of noteLines) console.log(line);
  await mkdir(join(args.out, '..'), { recursive: true });
  await writeFile(args.out, body);
  console.log(`\nwrote ${args.out}`);
}

function formatOps(opsPerSecond: number): string {
  return Math.round(opsPerSecond).toLocaleString('en-US');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
