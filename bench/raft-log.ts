/**
 * Benchmark: the durable Raft log (src/raft/log-store/) on NodeVfs, against
 * the ceiling of the same disk: a bare loop of append + fdatasync of the same
 * number of bytes per call, in the same run.
 *
 * Run (compiled to dist/bench/raft-log.js; one benchmark at a time on the shared machine):
 *
 *   npx tsc -p . && flock /tmp/impulse-bench.lock node dist/bench/raft-log.js
 *       [--seconds 2] [--runs 3] [--dir /tmp] [--out bench/results/raft-log.md] [--docs]
 *
 * Workloads, each `--runs` times, reported as median [min–max]:
 *   save       one `save` per Ready of 1, 16 or 256 entries of 100 B or 4 KiB, plus
 *              a hard state (commit): saves/s and entries/s.
 *   bare       append the same bytes as one save, fdatasync (node:fs, one FileHandle):
 *              the most any log on this disk can do. Ratio = save / bare.
 *   prealloc   the same bytes overwritten into a preallocated, synced file (no size
 *              change per write): what preallocating segments could gain.
 *   The three take turns call by call for 3 × `--seconds`, each timed on its own, so a
 *   busy neighbour on the shared machine slows all three alike.
 *   read       a log of 20,000 entries reopened with no cache: single-entry reads at
 *              random indexes, and 64-entry range reads, from disk: entries/s.
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { NodeVfs } from '../src/vfs/node-vfs.js';
import { SegmentedLogStore } from '../src/raft/log-store/log-store.js';
import { RECORD_HEADER_BYTES } from '../src/raft/log-store/record.js';
import type { Entry } from '../src/raft/types.js';
import type { LogUpdate } from '../src/raft/storage.js';
import { SeededRandom } from '../src/util/random.js';
import { flag, formatNumber, machineLine, median, medianCell, table, writeSection } from './report.js';

const SECONDS = Number(flag('seconds', '2'));
const RUNS = Number(flag('runs', '3'));
const BASE_DIR = flag('dir', tmpdir());
const OUT = flag('out', 'bench/results/raft-log.md');
const READY_SIZES = [1, 16, 256] as const;
const PAYLOADS = [100, 4096] as const;
const READ_LOG_ENTRIES = 20_000;

function save(store: SegmentedLogStore, update: LogUpdate): Promise<void> {
  return new Promise((resolve, reject) => store.save(update, (error) => (error === null ? resolve() : reject(error))));
}

function entries(first: number, count: number, payload: Buffer): Entry[] {
  return Array.from({ length: count }, (_, i) => ({ kind: 'normal' as const, index: first + i, term: 1, data: payload }));
}

/** A file that takes `bytes`-sized writes, each followed by fdatasync: appended, or over a preallocated region. */
async function bareFile(path: string, bytes: number, mode: 'append' | 'preallocated'): Promise<{ once(): Promise<void>; close(): Promise<void> }> {
  const handle = await open(path, 'w+');
  const buffer = Buffer.alloc(bytes, 7);
  const region = 16 * 1024 * 1024;
  if (mode === 'preallocated') {
    const zeros = Buffer.alloc(1024 * 1024);
    for (let at = 0; at < region; at += zeros.length) await handle.write(zeros, 0, zeros.length, at);
    await handle.sync();
  }
  let position = 0;
  return {
    async once() {
      if (mode === 'preallocated' && position + bytes > region) position = 0;
      await handle.write(buffer, 0, bytes, position);
      await handle.datasync();
      position += bytes;
    },
    close: () => handle.close(),
  };
}

/**
 * Saves of Readies of `readySize` entries of `payloadBytes`, interleaved one for one with the
 * bare loops on the same bytes (so a busy neighbour slows all three alike). Rates are calls per
 * second of each one's own time.
 */
async function measureSaves(dir: string, readySize: number, payloadBytes: number): Promise<{ log: number; bare: number; preallocated: number; bytesPerSave: number }> {
  const store = await SegmentedLogStore.open(new NodeVfs(), join(dir, 'log'));
  const payload = Buffer.alloc(payloadBytes, 7);
  let next = 1;
  const saveOnce = async (): Promise<void> => {
    await save(store, { snapshot: null, entries: entries(next, readySize, payload), hardState: { term: 1, vote: 1, commit: next } });
    next += readySize;
  };
  for (let i = 0; i < 5; i++) await saveOnce();
  const bytesPerSave = store.stats()['saved_bytes']! / store.stats()['saves']!;
  const bare = await bareFile(join(dir, 'bare'), Math.round(bytesPerSave), 'append');
  const preallocated = await bareFile(join(dir, 'prealloc'), Math.round(bytesPerSave), 'preallocated');
  const timeMs = { log: 0, bare: 0, preallocated: 0 };
  const timed = async (which: keyof typeof timeMs, action: () => Promise<void>): Promise<void> => {
    const started = performance.now();
    await action();
    timeMs[which] += performance.now() - started;
  };
  let rounds = 0;
  const started = performance.now();
  const turns: Array<[keyof typeof timeMs, () => Promise<void>]> = [
    ['log', saveOnce],
    ['bare', bare.once],
    ['preallocated', preallocated.once],
  ];
  while (performance.now() - started < SECONDS * 1000 * 3 || rounds < 20) {
    // Rotate who goes first, so none always follows the same neighbour's fsync.
    for (let turn = 0; turn < turns.length; turn++) await timed(...turns[(rounds + turn) % turns.length]!);
    rounds++;
  }
  await Promise.all([store.close(), bare.close(), preallocated.close()]);
  const rate = (ms: number): number => (rounds / ms) * 1000;
  return { log: rate(timeMs.log), bare: rate(timeMs.bare), preallocated: rate(timeMs.preallocated), bytesPerSave };
}

/** Entries per second read from disk (no cache): single entries at random indexes, and 64-entry ranges. */
async function measureReads(dir: string, payloadBytes: number): Promise<{ single: number; range: number }> {
  const vfs = new NodeVfs();
  const writer = await SegmentedLogStore.open(vfs, dir);
  const payload = Buffer.alloc(payloadBytes, 7);
  for (let first = 1; first <= READ_LOG_ENTRIES; first += 256) {
    await save(writer, { snapshot: null, entries: entries(first, Math.min(256, READ_LOG_ENTRIES - first + 1), payload), hardState: { term: 1, vote: 1, commit: first } });
  }
  await writer.close();
  const store = await SegmentedLogStore.open(vfs, dir, { cacheBytesMax: 0 });
  const random = new SeededRandom(7);
  const rate = (batch: number): number => {
    let read = 0;
    const started = performance.now();
    while (performance.now() - started < SECONDS * 1000) {
      const lo = 1 + random.int(READ_LOG_ENTRIES - batch + 1);
      read += store.entries(lo, lo + batch, Number.MAX_SAFE_INTEGER).length;
    }
    return (read / (performance.now() - started)) * 1000;
  };
  const result = { single: rate(1), range: rate(64) };
  await store.close();
  return result;
}

/** "median (min–max)" with `digits` decimals. */
function spread(values: readonly number[], digits = 0): string {
  return medianCell(values, (value) => formatNumber(value, digits));
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(BASE_DIR, 'impulse-raft-log-bench-'));
  try {
    const saveRows: Array<Array<string | number>> = [];
    for (const payload of PAYLOADS) {
      for (const readySize of READY_SIZES) {
        const log: number[] = [];
        const bare: number[] = [];
        const preallocated: number[] = [];
        let bytesPerSave = 0;
        for (let run = 0; run < RUNS; run++) {
          const dir = join(root, `save-${payload}-${readySize}-${run}`);
          mkdirSync(dir, { recursive: true });
          const measured = await measureSaves(dir, readySize, payload);
          log.push(measured.log);
          bare.push(measured.bare);
          preallocated.push(measured.preallocated);
          bytesPerSave = measured.bytesPerSave;
          await rm(dir, { recursive: true });
        }
        const ratios = log.map((value, i) => value / bare[i]!);
        saveRows.push([
          readySize,
          payload === 100 ? '100 B' : '4 KiB',
          formatNumber(bytesPerSave),
          spread(log),
          formatNumber(median(log) * readySize),
          spread(bare),
          spread(ratios, 2),
          spread(preallocated),
        ]);
        console.error(`save ${readySize} × ${payload} B: ${saveRows.at(-1)!.join(' | ')}`);
      }
    }
    const readRows: Array<Array<string | number>> = [];
    for (const payload of PAYLOADS) {
      const single: number[] = [];
      const range: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        const dir = join(root, `read-${payload}-${run}`);
        const measured = await measureReads(dir, payload);
        single.push(measured.single);
        range.push(measured.range);
        await rm(dir, { recursive: true });
      }
      readRows.push([payload === 100 ? '100 B' : '4 KiB', spread(single), spread(range)]);
      console.error(`read ${payload} B: ${readRows.at(-1)!.join(' | ')}`);
    }
    const markdown = [
      '## Raft log (bench/raft-log.ts)',
      '',
      machineLine(),
      `Disk: ${BASE_DIR} · ${3 * SECONDS} s per save measurement, ${SECONDS} s per read measurement · ${RUNS} runs, median [min–max] · shared build machine (other jobs running: figures are noisy)`,
      '',
      `One save = one Ready: N entries + a hard state, one write + one fdatasync (record header ${RECORD_HEADER_BYTES} B + 17 B per entry).`,
      'Bare = append the same bytes + fdatasync (node:fs), the ceiling; prealloc = the same over a preallocated file. The three take turns call by call; ratio = log / bare, per run.',
      '',
      table(['entries per save', 'payload', 'bytes per save', 'saves/s', 'entries/s (median)', 'bare fdatasync/s', 'ratio', 'prealloc fdatasync/s'], saveRows),
      '',
      `Reads from disk (no cache) of a ${formatNumber(READ_LOG_ENTRIES)}-entry log, random positions:`,
      '',
      table(['payload', 'single-entry reads: entries/s', '64-entry ranges: entries/s'], readRows),
    ].join('\n');
    console.log(markdown);
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, `${markdown}\n`);
    if (process.argv.includes('--docs')) await writeSection('raft-log', markdown);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
