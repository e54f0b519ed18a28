/**
 * The key-value half of the crash harness: a `KvHistory` of puts, deletes and
 * atomic batches, `checkRecoveredKv` (acknowledged writes survive, nothing
 * appears that was never written, batches are all-or-nothing), and the KV
 * sweeps `crashAtEveryIoPoint` / `ioErrorAtEveryPoint` built on the generic
 * sweeps of testkit/vfs/crash-harness.ts. Every disk engine's crash test uses
 * it; see the example at the top of the generic harness.
 */
import type { Entry, RangeOptions, WriteOp } from '../../src/storage/engine.js';
import { AssertionError } from '../../src/util/assert.js';
import { isCrashError, type IoOperation, type MemVfs, type RecoverMode } from '../vfs/mem-vfs.js';
import { sweepCrashPoints, sweepIoErrors, type FaultPoint, type SweepOptions, type SweepSummary, type WorkloadContext } from '../vfs/crash-harness.js';


/** Bytes, or a string taken as UTF-8. */
export type Bytes = Uint8Array | string;

export type KvWriteOp = { readonly type: 'put'; readonly key: Bytes; readonly value: Bytes } | { readonly type: 'del'; readonly key: Bytes };

/** One write as invoked: a put, a delete, or an atomic batch. */
export type KvOp = KvWriteOp | { readonly type: 'batch'; readonly ops: readonly KvWriteOp[] };

/** The part of an engine the history helpers drive (`Engine` fits). */
export interface KvWriter {
  put(key: Uint8Array, value: Uint8Array): Promise<void>;
  del(key: Uint8Array): Promise<void>;
  batch(ops: readonly WriteOp[]): Promise<void>;
}

export type WriteStatus = 'invoked' | 'acknowledged' | 'failed';

/** One recorded write. `effects`: key (hex) → value after this write (undefined = deleted), last op per key wins. */
export interface RecordedWrite {
  readonly id: number;
  readonly op: KvOp;
  readonly effects: ReadonlyMap<string, Buffer | undefined>;
  status: WriteStatus;
}

/**
 * What a KV workload did: every write it invoked (in invocation order, which
 * must be the order the engine applies them: invoke right before calling the
 * engine, as the helpers do) and which ones were acknowledged as durable.
 * A write that failed (rejected) has an unknown outcome: it may or may not
 * survive. Bounded by the workload (one entry per write).
 */
export class KvHistory {
  private readonly recorded: RecordedWrite[] = [];
  private errorsSeen = 0;

  /** Records that `op` is about to be issued; returns its id (ids are 0, 1, 2, ... in invocation order). */
  invoke(op: KvOp): number {
    const effects = new Map<string, Buffer | undefined>();
    const ops = op.type === 'batch' ? op.ops : [op];
    for (const write of ops) effects.set(toBuffer(write.key).toString('hex'), write.type === 'put' ? toBuffer(write.value) : undefined);
    const id = this.recorded.length;
    this.recorded.push({ id, op, effects, status: 'invoked' });
    return id;
  }

  /** Records that write `id` was acknowledged (its promise resolved: it is durable). */
  ack(id: number): void {
    this.entry(id).status = 'acknowledged';
  }

  /** Records that write `id` was rejected: the error reached the caller; the outcome is unknown. */
  fail(id: number): void {
    this.entry(id).status = 'failed';
    this.errorsSeen++;
  }

  /** Records that some other call (a read, open, close) rejected and the workload caught it. */
  sawError(): void {
    this.errorsSeen++;
  }

  /** True when any recorded call failed (see `fail`, `sawError`). */
  get anyErrorSeen(): boolean {
    return this.errorsSeen > 0;
  }

  get writes(): readonly RecordedWrite[] {
    return this.recorded;
  }

  /** invoke + `engine.put` + ack (or fail and rethrow). */
  put(engine: KvWriter, key: Bytes, value: Bytes): Promise<void> {
    return this.track({ type: 'put', key, value }, () => engine.put(toBuffer(key), toBuffer(value)));
  }

  /** invoke + `engine.del` + ack (or fail and rethrow). */
  del(engine: KvWriter, key: Bytes): Promise<void> {
    return this.track({ type: 'del', key }, () => engine.del(toBuffer(key)));
  }

  /** invoke + `engine.batch` + ack (or fail and rethrow). */
  batch(engine: KvWriter, ops: readonly KvWriteOp[]): Promise<void> {
    const engineOps: WriteOp[] = ops.map((op) => (op.type === 'put' ? { type: 'put', key: toBuffer(op.key), value: toBuffer(op.value) } : { type: 'del', key: toBuffer(op.key) }));
    return this.track({ type: 'batch', ops }, () => engine.batch(engineOps));
  }

  private async track(op: KvOp, call: () => Promise<void>): Promise<void> {
    const id = this.invoke(op);
    try {
      await call();
    } catch (error) {
      // A crash is not an error the caller "saw": the process is gone.
      if (isCrashError(error)) throw error;
      this.fail(id);
      throw error;
    }
    this.ack(id);
  }

  private entry(id: number): RecordedWrite {
    const entry = this.recorded[id];
    if (entry === undefined) throw new RangeError(`KvHistory: no write with id ${id}`);
    return entry;
  }
}

/** What a KV `recover` returns: the engine's full contents (a Map, or pairs; an undefined value means absent). */
export type KvContents = Iterable<readonly [Bytes, Bytes | undefined]> | AsyncIterable<readonly [Bytes, Bytes | undefined]>;

/** How strict the KV check is. */
export type KvConsistency =
  /** Per key: the last acknowledged write or a later invoked one; batches all-or-nothing. */
  | 'per-key'
  /** Additionally, the recovered state equals the state after SOME prefix of the invoked writes that includes every acknowledged one. */
  | 'prefix';

export interface KvCrashOptions extends SweepOptions {
  workload(vfs: MemVfs, history: KvHistory, context: WorkloadContext): Promise<void>;
  /** Opens the engine over `vfs`, runs its invariant checks, returns the full contents, closes it. */
  recover(vfs: MemVfs, point: FaultPoint): Promise<KvContents>;
  readonly modes?: readonly RecoverMode[];
  /** Default 'per-key'. */
  readonly consistency?: KvConsistency;
  /** See `CrashSweepOptions.crashDuringRecovery`. */
  readonly crashDuringRecovery?: boolean;
}

/** The KV crash sweep: `sweepCrashPoints` with a `KvHistory` and `checkRecoveredKv`. */
export function crashAtEveryIoPoint(options: KvCrashOptions): Promise<SweepSummary> {
  return sweepCrashPoints<KvHistory>({
    ...options,
    newRecord: () => new KvHistory(),
    workload: options.workload,
    verify: async (recovered, history, point) => {
      const contents = await collectContents(await options.recover(recovered, point));
      return checkRecoveredKv(history, contents, options.consistency).slice(0, 5).join('; ') || undefined;
    },
  });
}

export interface KvIoErrorOptions extends SweepOptions {
  workload(vfs: MemVfs, history: KvHistory, context: WorkloadContext): Promise<void>;
  recover(vfs: MemVfs, point: FaultPoint): Promise<KvContents>;
  readonly persistence?: ReadonlyArray<'once' | 'persistent'>;
  readonly modes?: readonly RecoverMode[];
  readonly consistency?: KvConsistency;
  readonly syncFailureDropsWrites?: boolean;
  mayAbsorb?(operation: IoOperation): boolean;
}

/** The KV I/O-error sweep: `sweepIoErrors` with a `KvHistory` (failed writes have unknown outcome) and `checkRecoveredKv`. */
export function ioErrorAtEveryPoint(options: KvIoErrorOptions): Promise<SweepSummary> {
  return sweepIoErrors<KvHistory>({
    ...options,
    newRecord: () => new KvHistory(),
    reachedCaller: (history) => history.anyErrorSeen,
    verify: async (recovered, history, point) => {
      const contents = await collectContents(await options.recover(recovered, point));
      return checkRecoveredKv(history, contents, options.consistency).slice(0, 5).join('; ') || undefined;
    },
  });
}

/** Key (hex) → value of recovered contents; absent values dropped; a key twice is an error. */
export async function collectContents(contents: KvContents): Promise<Map<string, Buffer>> {
  const result = new Map<string, Buffer>();
  for await (const [key, value] of contents as AsyncIterable<readonly [Bytes, Bytes | undefined]>) {
    const hex = toBuffer(key).toString('hex');
    if (result.has(hex)) throw new AssertionError(`recovered contents list key ${describeKey(hex)} twice`);
    if (value !== undefined) result.set(hex, toBuffer(value));
  }
  return result;
}

/** Every entry of an engine, paging through `range` (pages of `pageSize`, at most `rangeLimitMax`). */
export async function readAllEntries(engine: { range(options: RangeOptions): Promise<Entry[]> }, pageSize = 1000): Promise<Array<[Buffer, Buffer]>> {
  const all: Array<[Buffer, Buffer]> = [];
  let after: Buffer | undefined;
  for (;;) {
    const page = await engine.range(after === undefined ? { limit: pageSize } : { gt: after, limit: pageSize });
    for (const entry of page) all.push([entry.key, entry.value]);
    if (page.length < pageSize) return all;
    after = page[page.length - 1]?.key;
  }
}

/**
 * Checks recovered contents (key hex → value) against a history. Returns the
 * violations found (empty when consistent). The rules, with writes in
 * invocation order:
 *   1. Per key: if its last ACKNOWLEDGED write is W, the key holds W's effect
 *      (value, or absent for a delete) or the effect of a write invoked after W
 *      (those are unacknowledged: may or may not have survived). With no
 *      acknowledged write, absent or the effect of any write to it.
 *   2. No phantoms: a key never written is absent.
 *   3. Batches are atomic: no batch shows on one key while definitely not on another.
 *      A batch "shows" on key k when only it can explain k's value; it "definitely
 *      does not" when k's value is explained only by writes invoked before it.
 *      (Unique values per write make this exact; duplicates only make it lenient.)
 *   4. With 'prefix': the contents equal the state after writes [0, c) for some c
 *      past the last acknowledged write (failed writes may be applied or skipped;
 *      with more than 10 failed writes this rule is not checked).
 */
export function checkRecoveredKv(history: KvHistory, recovered: ReadonlyMap<string, Buffer>, consistency: KvConsistency = 'per-key'): string[] {
  const writes = history.writes;
  const violations: string[] = [];
  type Source = { readonly index: number; readonly value: Buffer | undefined };
  const perKey = new Map<string, Source[]>();
  writes.forEach((write, index) => {
    for (const [key, value] of write.effects) {
      let sources = perKey.get(key);
      if (sources === undefined) perKey.set(key, (sources = []));
      sources.push({ index, value });
    }
  });

  // Rule 1: allowed sources per key (index -1 = never written).
  const allowedByKey = new Map<string, Source[]>();
  for (const [key, sources] of perKey) {
    let lastAcked = -1;
    sources.forEach((source, position) => {
      if (writes[source.index]?.status === 'acknowledged') lastAcked = position;
    });
    const allowed = lastAcked >= 0 ? sources.slice(lastAcked) : [{ index: -1, value: undefined }, ...sources];
    allowedByKey.set(key, allowed);
    const actual = recovered.get(key);
    if (!allowed.some((source) => sameValue(source.value, actual))) {
      const anchor = lastAcked >= 0 ? sources[lastAcked] : undefined;
      const everWritten = sources.some((source) => sameValue(source.value, actual));
      const expected = anchor === undefined ? 'absent or any written value' : `${describeValue(anchor.value)} (acknowledged write #${writes[anchor.index]?.id}) or a later unacknowledged value`;
      violations.push(
        `key ${describeKey(key)}: expected ${expected}, found ${describeValue(actual)}${
          everWritten ? ' (an older, overwritten value: acknowledged write lost)' : actual === undefined ? ' (acknowledged write lost)' : ' (never written: phantom value)'
        }`,
      );
    }
  }

  // Rule 2.
  for (const [key, value] of recovered) {
    if (!perKey.has(key)) violations.push(`key ${describeKey(key)}: never written, found ${describeValue(value)} (phantom key)`);
  }

  // Rule 3.
  writes.forEach((write, index) => {
    if (write.effects.size < 2) return;
    const shows: string[] = [];
    const lacks: string[] = [];
    for (const key of write.effects.keys()) {
      const actual = recovered.get(key);
      const matching = (allowedByKey.get(key) ?? []).filter((source) => sameValue(source.value, actual));
      if (matching.length === 0) continue; // already a rule-1 violation
      if (matching.length === 1 && matching[0]?.index === index) shows.push(key);
      else if (!matching.some((source) => source.index >= index)) lacks.push(key);
    }
    if (shows.length > 0 && lacks.length > 0) {
      violations.push(
        `batch #${write.id} (${write.status}) applied partially: visible on ${shows.slice(0, 3).map(describeKey).join(', ')} but not on ${lacks.slice(0, 3).map(describeKey).join(', ')}`,
      );
    }
  });

  // Rule 4.
  if (consistency === 'prefix' && violations.length === 0) {
    const violation = checkPrefix(writes, recovered);
    if (violation !== undefined) violations.push(violation);
  }
  return violations;
}

/** Failed writes beyond this many make the prefix check give up (it tries every applied/skipped combination). */
const PREFIX_FAILED_WRITES_MAX = 10;

/**
 * Rule 4. A failed write (rejected to the caller) may have been applied or
 * skipped even before later acknowledged writes (an engine may roll a failed
 * write back and carry on), so every applied/skipped combination of the failed
 * writes is tried: at most 2^PREFIX_FAILED_WRITES_MAX cut searches.
 */
function checkPrefix(writes: readonly RecordedWrite[], recovered: ReadonlyMap<string, Buffer>): string | undefined {
  const failed = writes.filter((write) => write.status === 'failed').map((write) => write.id);
  if (failed.length > PREFIX_FAILED_WRITES_MAX) return undefined;
  let firstReport: string | undefined;
  for (let mask = 0; mask < 1 << failed.length; mask++) {
    const skipped = new Set(failed.filter((_id, bit) => (mask & (1 << bit)) === 0));
    const report = searchCut(writes, recovered, skipped);
    if (report === undefined) return undefined;
    firstReport ??= report;
  }
  return firstReport;
}

/** Is `recovered` the state after writes [0, c) minus `skipped`, for some c past the last acknowledged write? */
function searchCut(writes: readonly RecordedWrite[], recovered: ReadonlyMap<string, Buffer>, skipped: ReadonlySet<number>): string | undefined {
  let lastAcked = -1;
  writes.forEach((write, index) => {
    if (write.status === 'acknowledged') lastAcked = index;
  });
  const state = new Map<string, Buffer>();
  const mismatched = new Set<string>();
  const update = (key: string): void => {
    if (sameValue(state.get(key), recovered.get(key))) mismatched.delete(key);
    else mismatched.add(key);
  };
  const apply = (write: RecordedWrite): void => {
    if (skipped.has(write.id)) return;
    for (const [key, value] of write.effects) {
      if (value === undefined) state.delete(key);
      else state.set(key, value);
      update(key);
    }
  };
  for (const key of recovered.keys()) update(key);
  for (let index = 0; index <= lastAcked; index++) apply(writes[index] as RecordedWrite);
  if (mismatched.size === 0) return undefined;
  const firstMismatch = [...mismatched].slice(0, 3).map((key) => `${describeKey(key)}: prefix has ${describeValue(state.get(key))}, found ${describeValue(recovered.get(key))}`);
  for (let index = lastAcked + 1; index < writes.length; index++) {
    apply(writes[index] as RecordedWrite);
    if (mismatched.size === 0) return undefined;
  }
  return `no prefix of the invoked writes through acknowledged write #${lastAcked} gives the recovered state (at the shortest allowed prefix: ${firstMismatch.join('; ')})`;
}

function toBuffer(bytes: Bytes): Buffer {
  return typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function sameValue(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}

/** A key or value for messages: quoted text when printable, else hex; long ones cut. */
function describeBytes(bytes: Buffer): string {
  const printable = /^[\x20-\x7e]*$/.test(bytes.toString('latin1'));
  const text = printable ? JSON.stringify(bytes.toString('latin1')) : `0x${bytes.toString('hex')}`;
  return text.length > 50 ? `${text.slice(0, 47)}...(${bytes.length} bytes)` : text;
}

function describeKey(hex: string): string {
  return describeBytes(Buffer.from(hex, 'hex'));
}

function describeValue(value: Buffer | undefined): string {
  return value === undefined ? '(absent)' : describeBytes(value);
}
