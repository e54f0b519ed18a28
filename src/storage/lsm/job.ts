/**
 * Background jobs as plain data, so one description runs in either place the
 * engine chooses (job-runner.ts): inline on its own thread, or in a worker
 * thread (background-worker.ts), which opens its own NodeVfs on the same
 * paths. A job only writes new table files; the engine installs the result.
 *
 *   - flush: the entries of a frozen memtable (encoded by `encodeMemtable`),
 *     written as one table.
 *   - compact: a compaction (compaction.ts `CompactionInput`), written as
 *     new tables for the next level.
 *
 * Across a thread boundary Buffers arrive as plain Uint8Arrays;
 * `asBuffers` restores them.
 */
import type { TableMeta } from './manifest.js';
import { type CompactionInput, type JobEnvironment, type KeyBounds, type TableRef, compactTables, flushEntries } from './compaction.js';
import { GrowableBuffer } from './coding.js';
import type { Memtable } from './memtable.js';

export type BackgroundJob = { readonly kind: 'flush'; readonly entries: Buffer } | ({ readonly kind: 'compact' } & CompactionInput);

/** Runs `job` in `env` and returns the tables it wrote (not yet listed anywhere). */
export async function runJob(env: JobEnvironment, job: BackgroundJob): Promise<TableMeta[]> {
  if (job.kind === 'flush') return [await flushEntries(env, job.entries)];
  return compactTables(env, job);
}

/**
 * A frozen memtable's newest version of every key, in no particular order
 * (the flush job sorts them: tens of milliseconds per memtable, spent in the
 * flush worker thread rather than on the event loop), as one buffer: [entry count
 * u32] then per entry [key length varint][key] [value tag varint: 0
 * tombstone, else length + 1][value]. Keys are distinct. The buffer owns its
 * memory (it can be transferred to a worker). Keys are latin1 strings in the
 * memtable; each character is one byte.
 */
export function encodeMemtable(memtable: Memtable): Buffer {
  const out = new GrowableBuffer(Math.max(4096, memtable.approximateBytes));
  out.uint32(memtable.entryCount);
  for (const node of memtable.nodes()) {
    const key = node.key;
    out.varint(key.length);
    out.latin1(key);
    const value = node.value;
    if (value === null) {
      out.varint(0);
    } else {
      out.varint(value.length + 1);
      out.append(value);
    }
  }
  const owned = Buffer.from(new ArrayBuffer(out.length));
  out.buffer.copy(owned, 0, 0, out.length);
  return owned;
}

/** `job` with its byte fields as Buffers again, after a structured clone turned them into Uint8Arrays. */
export function jobAsBuffers(job: BackgroundJob): BackgroundJob {
  if (job.kind === 'flush') return { kind: 'flush', entries: toBuffer(job.entries) };
  const ref = (table: TableRef): TableRef => ({ ...table, smallest: toBuffer(table.smallest), largest: toBuffer(table.largest) });
  const bounds = (table: KeyBounds): KeyBounds => ({ smallest: toBuffer(table.smallest), largest: toBuffer(table.largest) });
  return { ...job, inputs: job.inputs.map(ref), overlapping: job.overlapping.map(ref), deeper: job.deeper.map((level) => level.map(bounds)) };
}

/** Table metadata with its key bounds as Buffers again (see `jobAsBuffers`). */
export function metaAsBuffers(meta: TableMeta): TableMeta {
  return { ...meta, smallest: toBuffer(meta.smallest), largest: toBuffer(meta.largest) };
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
