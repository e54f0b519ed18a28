/**
 * Benchmark: the `btree` engine against LMDB (`lmdb`) and LevelDB
 * (`classic-level`), side by side in one run, each through its public Node API.
 *
 * Run (compiled to dist/bench/btree.js; one benchmark at a time on the shared machine):
 *
 *   npx tsc -p . && flock /tmp/impulse-bench.lock node dist/bench/btree.js [--entries N] [--batch N]
 *       [--sync fsync|none] [--cache-mib N] [--reads N] [--runs N] [--subjects btree,lmdb,classic-level]
 *       [--out bench/results/btree.md] [--docs]
 *
 * Workloads (16-byte keys, 100-byte values, every engine in a fresh temp dir):
 *   fillseq      insert N keys in ascending order, in batches of `--batch` (default 1000)
 *   fillrandom   insert N keys in a seeded random order, same batches, into a fresh database
 *   readrandom   `--reads` point reads of random present keys (default N), 32 in flight
 *   readseq      every entry in key order, in range pages of 1000
 *   range100     `--reads / 100` scans of 100 entries from a random start key
 * Each write batch is one atomic, durable commit for every engine: btree `batch()` with sync
 * `fsync` (group commit: one meta-page switch), LMDB one `transaction()` then `await db.flushed`
 * (lmdb-js resolves a transaction before its fsync by default: overlappingSync),
 * classic-level one `batch(..., { sync: true })`. `--sync none` turns syncing off for all three.
 * File size is measured after fillrandom. `--runs N` (default 3) repeats every subject N times,
 * the subjects taking turns within each round, and reports the median with the spread
 * (min–max) of each figure; ratios are of medians. `--subjects` runs a subset (e.g. `btree`
 * alone to compare two versions of the engine). Prints a markdown table and writes it to
 * `--out` (and with `--docs`, to the "btree" section of docs/benchmarks.md).
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { writeFileSync, mkdirSync } from 'node:fs';
import { cpus, tmpdir, platform, release, totalmem } from 'node:os';
import { join, dirname } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { open as openLmdb } from 'lmdb';
import { BTreeEngine } from '../src/storage/btree/btree-engine.js';
import { median, medianCell, writeSection } from './report.js';
import { SeededRandom } from '../src/util/random.js';

interface Options {
  entries: number;
  batch: number;
  sync: 'fsync' | 'none';
  cacheMiB: number;
  reads: number;
  runs: number;
  subjects: string[];
  out: string;
  /** Also write the table into docs/benchmarks.md (section "btree"). */
  docs: boolean;
}

function parseArgs(argv: string[]): Options {
  const options: Options = {
    entries: 1_000_000,
    batch: 1000,
    sync: 'fsync',
    cacheMiB: 512,
    reads: -1,
    runs: 3,
    subjects: [...SUBJECT_NAMES],
    out: 'bench/results/btree.md',
    docs: false,
  };
  for (let index = 0; index < argv.length; index++) {
    const name = argv[index];
    const next = argv[index + 1];
    const number = (): number => {
      const parsed = Number(next);
      if (!Number.isSafeInteger(parsed) || parsed <= 0) throw new Error(`${name} needs a positive integer, got ${String(next)}`);
      index++;
      return parsed;
    };
    if (name === '--entries') options.entries = number();
    else if (name === '--batch') options.batch = number();
    else if (name === '--cache-mib') options.cacheMiB = number();
    else if (name === '--reads') options.reads = number();
    else if (name === '--runs') options.runs = number();
    else if (name === '--subjects') {
      options.subjects = String(next).split(',');
      for (const subject of options.subjects) if (!SUBJECT_NAMES.includes(subject)) throw new Error(`--subjects: unknown ${subject}; choose from ${SUBJECT_NAMES.join(', ')}`);
      index++;
    }
    else if (name === '--sync') {
      if (next !== 'fsync' && next !== 'none') throw new Error('--sync is fsync or none');
      options.sync = next;
      index++;
    } else if (name === '--docs') {
      options.docs = true;
    } else if (name === '--out') {
      options.out = String(next);
      index++;
    } else throw new Error(`unknown argument ${String(name)}`);
  }
  if (options.reads < 0) options.reads = options.entries;
  return options;
}

/** The operations the benchmark needs, implemented once per engine. */
interface Subject {
  readonly name: string;
  open(dir: string): Promise<void>;
  writeBatch(keys: Buffer[], values: Buffer[]): Promise<void>;
  get(key: Buffer): Promise<Buffer | undefined> | Buffer | undefined;
  /** Up to `limit` entries with key >= `from` (or > `from` when `exclusive`), ascending; returns the count and the last key. */
  scan(from: Buffer | undefined, exclusive: boolean, limit: number): Promise<{ count: number; last: Buffer | undefined }>;
  close(): Promise<void>;
}

function btreeSubject(options: Options): Subject {
  let engine: BTreeEngine | undefined;
  return {
    name: 'btree',
    async open(dir) {
      engine = new BTreeEngine({ dataDir: dir, sync: options.sync, cacheBytesMax: options.cacheMiB * 1024 * 1024 });
      await engine.open();
    },
    writeBatch(keys, values) {
      return engine!.batch(keys.map((key, index) => ({ type: 'put', key, value: values[index]! })));
    },
    get(key) {
      return engine!.get(key);
    },
    async scan(from, exclusive, limit) {
      const entries = await engine!.range(from === undefined ? { limit } : exclusive ? { gt: from, limit } : { gte: from, limit });
      return { count: entries.length, last: entries[entries.length - 1]?.key };
    },
    async close() {
      await engine!.close();
    },
  };
}

function lmdbSubject(options: Options): Subject {
  let db: ReturnType<typeof openLmdb> | undefined;
  return {
    name: 'lmdb',
    async open(dir) {
      db = openLmdb({ path: dir, keyEncoding: 'binary', encoding: 'binary', compression: false, noSync: options.sync === 'none' });
    },
    async writeBatch(keys, values) {
      await db!.transaction(() => {
        for (let index = 0; index < keys.length; index++) void db!.put(keys[index]!, values[index]!);
      });
      // lmdb-js resolves a transaction when it is committed and visible; with its default
      // overlappingSync the fsync happens afterwards. Wait for it, so every engine acknowledges
      // a batch only once it is durable, as impulse's engines do.
      if (options.sync === 'fsync') await db!.flushed;
    },
    get(key) {
      return db!.get(key) as Buffer | undefined;
    },
    async scan(from, exclusive, limit) {
      let count = 0;
      let last: Buffer | undefined;
      for (const { key } of db!.getRange({ ...(from === undefined ? {} : { start: from }), limit: limit + (exclusive ? 1 : 0) })) {
        if (exclusive && count === 0 && last === undefined && from !== undefined && Buffer.compare(key as Buffer, from) === 0) {
          last = from;
          continue;
        }
        count++;
        last = key as Buffer;
        if (count === limit) break;
      }
      return { count, last };
    },
    async close() {
      await db!.close();
    },
  };
}

function levelSubject(options: Options): Subject {
  let db: ClassicLevel<Buffer, Buffer> | undefined;
  return {
    name: 'classic-level',
    async open(dir) {
      db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
      await db.open();
    },
    writeBatch(keys, values) {
      return db!.batch(
        keys.map((key, index) => ({ type: 'put' as const, key, value: values[index]! })),
        { sync: options.sync === 'fsync' },
      );
    },
    get(key) {
      return db!.get(key);
    },
    async scan(from, exclusive, limit) {
      const entries = await db!.iterator(from === undefined ? { limit } : exclusive ? { gt: from, limit } : { gte: from, limit }).all();
      return { count: entries.length, last: entries[entries.length - 1]?.[0] };
    },
    async close() {
      await db!.close();
    },
  };
}

function keyOf(index: number): Buffer {
  return Buffer.from(String(index).padStart(16, '0'), 'latin1');
}

function valueOf(index: number): Buffer {
  const value = Buffer.allocUnsafe(100);
  let state = (index * 2654435761) >>> 0;
  for (let at = 0; at < 100; at++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    value[at] = state >>> 24;
  }
  return value;
}

function permutation(count: number, random: SeededRandom): Uint32Array {
  const order = new Uint32Array(count);
  for (let index = 0; index < count; index++) order[index] = index;
  for (let index = count - 1; index > 0; index--) {
    const other = random.int(index + 1);
    const swap = order[index]!;
    order[index] = order[other]!;
    order[other] = swap;
  }
  return order;
}

async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) {
    const info = await stat(join(dir, name));
    total += info.isDirectory() ? await directoryBytes(join(dir, name)) : info.size;
  }
  return total;
}

/** Inserts every entry in batches; only the engine calls are timed (building keys and values is not). */
async function fill(subject: Subject, order: Uint32Array | undefined, options: Options): Promise<number> {
  let elapsedMs = 0;
  for (let start = 0; start < options.entries; start += options.batch) {
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    for (let index = start; index < Math.min(options.entries, start + options.batch); index++) {
      const id = order === undefined ? index : order[index]!;
      keys.push(keyOf(id));
      values.push(valueOf(id));
    }
    const started = performance.now();
    await subject.writeBatch(keys, values);
    elapsedMs += performance.now() - started;
  }
  return options.entries / (elapsedMs / 1000);
}

const READS_IN_FLIGHT = 32;

async function readRandom(subject: Subject, options: Options, random: SeededRandom): Promise<number> {
  const ids = new Uint32Array(options.reads);
  for (let index = 0; index < ids.length; index++) ids[index] = random.int(options.entries);
  const keys = Array.from(ids, (id) => keyOf(id));
  let next = 0;
  let missing = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < keys.length) {
      const key = keys[next++]!;
      const value = await subject.get(key);
      if (value === undefined || value.length !== 100) missing++;
    }
  };
  await Promise.all(Array.from({ length: READS_IN_FLIGHT }, worker));
  const elapsed = performance.now() - started;
  if (missing > 0) throw new Error(`${subject.name}: ${missing} reads missed present keys`);
  return keys.length / (elapsed / 1000);
}

async function readSequential(subject: Subject, options: Options): Promise<number> {
  const started = performance.now();
  let total = 0;
  let last: Buffer | undefined;
  for (;;) {
    const page = await subject.scan(last, true, 1000);
    total += page.count;
    if (page.count < 1000) break;
    last = page.last;
  }
  const elapsed = performance.now() - started;
  if (total !== options.entries) throw new Error(`${subject.name}: readseq saw ${total} entries, expected ${options.entries}`);
  return total / (elapsed / 1000);
}

async function range100(subject: Subject, options: Options, random: SeededRandom): Promise<number> {
  const scans = Math.max(1, Math.floor(options.reads / 100));
  const started = performance.now();
  for (let index = 0; index < scans; index++) {
    const { count } = await subject.scan(keyOf(random.int(options.entries)), false, 100);
    if (count === 0) throw new Error(`${subject.name}: empty range scan`);
  }
  return scans / ((performance.now() - started) / 1000);
}

interface Result {
  fillseq: number;
  fillrandom: number;
  readrandom: number;
  readseq: number;
  range100: number;
  fileBytes: number;
}

async function runSubject(make: () => Subject, options: Options): Promise<Result> {
  const root = await mkdtemp(join(tmpdir(), 'impulse-bench-btree-'));
  try {
    const sequential = make();
    await sequential.open(join(root, 'seq'));
    const fillseq = await fill(sequential, undefined, options);
    await sequential.close();

    const subject = make();
    const dir = join(root, 'random');
    await subject.open(dir);
    const fillrandom = await fill(subject, permutation(options.entries, new SeededRandom(7)), options);
    const fileBytes = await directoryBytes(dir);
    const readrandom = await readRandom(subject, options, new SeededRandom(11));
    const readseq = await readSequential(subject, options);
    const ranges = await range100(subject, options, new SeededRandom(13));
    await subject.close();
    return { fillseq, fillrandom, readrandom, readseq, range100: ranges, fileBytes };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

function format(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

const SUBJECT_NAMES = ['btree', 'lmdb', 'classic-level'];
const MAKERS: Record<string, (options: Options) => Subject> = { btree: btreeSubject, lmdb: lmdbSubject, 'classic-level': levelSubject };

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const header = [
    `# btree benchmark`,
    ``,
    `- date: ${new Date().toISOString()}`,
    `- machine: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, ${platform()} ${release()}`,
    `- node ${process.version}`,
    `- ${format(options.entries)} entries, 16-byte keys, 100-byte values; writes in batches of ${options.batch} (one atomic commit each, sync ${options.sync}); ` +
      `readrandom ${format(options.reads)} reads, ${READS_IN_FLIGHT} in flight; readseq in pages of 1000; range100 = ${format(Math.max(1, Math.floor(options.reads / 100)))} scans of 100 entries`,
    `- btree page cache ${options.cacheMiB} MiB (4 KiB pages); lmdb maps the file (OS page cache); classic-level default options (8 MiB block cache, snappy)`,
    `- ${options.runs} run(s) per subject, taking turns; each cell is the median (min–max); ratios are of medians`,
    `- shared, noisy 2-core VM: compare ratios within one table, not absolute numbers across runs`,
    ``,
  ];
  console.log(header.join('\n'));
  const results = new Map<string, Result[]>(options.subjects.map((name) => [name, []]));
  for (let run = 0; run < options.runs; run++) {
    for (const name of options.subjects) {
      console.log(`run ${run + 1}/${options.runs}: ${name} ...`);
      const result = await runSubject(() => MAKERS[name]!(options), options);
      results.get(name)!.push(result);
      console.log(name, JSON.stringify(result));
    }
  }
  const rows: Array<[string, keyof Result, string]> = [
    ['fillseq', 'fillseq', 'entries/s'],
    ['fillrandom', 'fillrandom', 'entries/s'],
    ['readrandom', 'readrandom', 'reads/s'],
    ['readseq', 'readseq', 'entries/s'],
    ['range100', 'range100', 'scans/s'],
    ['file size after fillrandom', 'fileBytes', 'MiB'],
  ];
  const others = options.subjects.filter((name) => name !== 'btree');
  const hasBtree = options.subjects.includes('btree');
  const ratioNames = hasBtree ? others : [];
  const table = [
    `| workload | unit | ${options.subjects.join(' | ')} |${ratioNames.map((name) => ` btree / ${name} |`).join('')}`,
    `|---|---|${options.subjects.map(() => '---:|').join('')}${ratioNames.map(() => '---:|').join('')}`,
    ...rows.map(([label, field, unit]) => {
      const show = field === 'fileBytes' ? (value: number) => (value / 2 ** 20).toFixed(1) : format;
      const values = (name: string): number[] => results.get(name)!.map((result) => result[field]);
      const cells = options.subjects.map((name) => medianCell(values(name), show));
      const ratios = ratioNames.map((name) => `${(median(values('btree')) / median(values(name))).toFixed(2)}×`);
      return `| ${label} | ${unit} | ${cells.join(' | ')} |${ratios.map((ratio) => ` ${ratio} |`).join('')}`;
    }),
  ];
  const markdown = [...header, ...table, ''].join('\n');
  console.log(table.join('\n'));
  mkdirSync(dirname(options.out), { recursive: true });
  writeFileSync(options.out, markdown);
  console.log(`\nwritten to ${options.out}`);
  if (options.docs) {
    await writeSection('btree', markdown.replace(/^# btree benchmark/, '## btree: B+tree engine vs LMDB and LevelDB'));
    console.log('written to docs/benchmarks.md (section btree)');
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
