/**
 * Transactions across shards on the state machine side, against a model:
 * three shards' state machines (btree on MemVfs), keys spread over them, and
 * fast-check interleavings of the steps of several transactions — prepares
 * (late ones too, after an abort), commits, aborts by anyone, resolves,
 * forgets — with ordinary conditional writes, crashes of a shard (what
 * survives a crash, then the log replayed from the recovered applied index)
 * and MERGES: a range shard freezes (an entry of its own log) and its left
 * neighbour takes in its keys, locks and records (the product's
 * `mergeAbsorbOf` and `staleKeysOf`), then serves its range — transactions
 * under way go on there, and a lock whose primary key lived in the merged
 * shard finds its record in the survivor.
 *
 * The harness plays the coordinators by the protocol's rules (txn.ts): a
 * commit only once every key of the transaction was prepared ok,
 * resolves only after the record is decided, a forget only of a committed
 * record with no lock of it left. It does not assume any rule of the state
 * machine beyond those.
 *
 * Checked after every step:
 *   - every result equals the model's (conditions, lock conflicts, aborts);
 *   - each shard's data (values AND revisions) and locks equal the model's;
 *   - the VIEW — what a lock-aware reader sees: a key's value, or its lock's
 *     value when the lock's record (at the primary key's shard) says
 *     committed — equals the model's visible state, which takes a
 *     transaction's writes all at once at its commit point. So no
 *     transaction is ever half visible, and a committed one is never lost
 *     (also not through a crash and replay);
 *   - a replay after a crash gives the results the first apply gave.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isImpulseError } from '../errors.js';
import { BTreeEngine } from '../storage/btree/btree-engine.js';
import { SeededRandom } from '../util/random.js';
import { MemVfs } from '../../testkit/vfs/mem-vfs.js';
import { TEST_LIMITS } from '../../testkit/kv/state-machine-suite.js';
import { type Condition, type KvOp, encodeCommand } from './command.js';
import { DirectoryEngineHome } from './engine-home.js';
import { type ApplyEntry, type ApplyResult, KvStateMachine, engineLimitsFor } from './state-machine.js';
import { type TxnCommand, decodeTxnCommand, decodeTxnRecord, encodeLock, encodeTxnCommand, encodeTxnRecord, decodeLock } from './txn.js';
import { mergeAbsorbOf, staleKeysOf } from '../cluster/shard-merge.js';

const SHARDS = 3;
const KEY_COUNT = 7;
const KEYS = Array.from({ length: KEY_COUNT }, (_, i) => Buffer.from([0x61 + i]));
/** Where each shard's range starts: [a, d), [d, f), [f, ..). */
const STARTS = [Buffer.from('a'), Buffer.from('d'), Buffer.from('f')];
/** The shard whose range holds `key` before any merge. */
const shardOf = (key: Uint8Array): number => STARTS.filter((start) => Buffer.compare(start, key) <= 0).length - 1;
const engineLimits = engineLimitsFor(TEST_LIMITS);

type Hint = 'none' | 'current' | 'stale' | 'absent';
type Step =
  | { readonly kind: 'begin'; readonly keys: number[]; readonly values: number[]; readonly dels: boolean[]; readonly hints: Hint[] }
  | { readonly kind: 'prepare' | 'resolve'; readonly txn: number; readonly shard: number }
  | { readonly kind: 'commit' | 'abort' | 'forget'; readonly txn: number }
  | { readonly kind: 'write'; readonly key: number; readonly value: number; readonly hint: Hint }
  | { readonly kind: 'crash' | 'flush'; readonly shard: number; readonly mode: 'lose-unsynced' | 'torn' }
  | { readonly kind: 'merge'; readonly shard: number };

/** An apply entry before the log gives it an index and term. */
type EntryBody = { readonly type: 'txn'; readonly command: TxnCommand } | { readonly type: 'command'; readonly command: Uint8Array } | Omit<Extract<ApplyEntry, { type: 'meta' }>, 'index' | 'term'>;

/** A result as compared: ok, a failed condition, or an error code. */
type Outcome = string;

function outcomeOf(result: ApplyResult): Outcome {
  if (result.ok) return `ok@${result.revision}`;
  if ('error' in result) return result.error.code;
  return `failed:${result.failed.op}:${result.failed.key.toString('hex')}:${result.failed.revision}`;
}

interface ModelLock {
  readonly txn: string;
  readonly value: Buffer | null;
}

class ShardModel {
  index = 0;
  /** Raised by a merge above the merged shard's revisions (apply.ts `MergeAbsorb`). */
  base = 0;
  readonly data = new Map<string, { value: Buffer; revision: number }>();
  readonly locks = new Map<string, ModelLock>();
  readonly records = new Map<string, 'committed' | 'aborted'>();

  /** The revision of a write at the current index. */
  get revision(): number {
    return this.index + this.base;
  }

  revisionOf(key: Buffer): number | null {
    return this.data.get(key.toString('hex'))?.revision ?? null;
  }

  write(key: Buffer, value: Buffer | null): void {
    if (value === null) this.data.delete(key.toString('hex'));
    else this.data.set(key.toString('hex'), { value, revision: this.revision });
  }

  /** The failed-condition outcome of `ops` against this shard's data, or undefined. */
  failedCondition(ops: readonly KvOp[]): Outcome | undefined {
    for (const [i, op] of ops.entries()) {
      if (op.condition === undefined) continue;
      const revision = this.revisionOf(Buffer.from(op.key));
      const holds = 'ifRevision' in op.condition ? revision === op.condition.ifRevision : revision === null;
      if (!holds) return `failed:${i}:${Buffer.from(op.key).toString('hex')}:${revision}`;
    }
    return undefined;
  }

  resolve(txn: string, commit: boolean, keys: readonly Buffer[]): void {
    for (const key of keys) {
      const lock = this.locks.get(key.toString('hex'));
      if (lock?.txn !== txn) continue;
      this.locks.delete(key.toString('hex'));
      if (commit) this.write(key, lock.value);
    }
  }
}

interface Txn {
  readonly id: string;
  readonly ops: readonly { key: Buffer; value: Buffer | null }[];
  readonly hints: readonly Hint[];
  readonly primaryKey: Buffer;
  /** Keys (hex) a prepare answered ok for. */
  readonly preparedOk: Set<string>;
}

/** One shard: its machine (on its own MemVfs), its log and the results its entries gave. */
interface ShardUnderTest {
  vfs: MemVfs;
  machine: KvStateMachine;
  readonly log: ApplyEntry[];
  readonly outcomes: Outcome[];
}

function open(vfs: MemVfs): Promise<KvStateMachine> {
  return KvStateMachine.open({ home: new DirectoryEngineHome(vfs, 'store', (dir) => new BTreeEngine({ dataDir: dir, vfs, limits: engineLimits })), limits: TEST_LIMITS });
}

class Harness {
  readonly models = Array.from({ length: SHARDS }, () => new ShardModel());
  /** What a reader may see: a transaction's writes appear all at once, at its commit. */
  readonly visible = new Map<string, Buffer>();
  readonly txns: Txn[] = [];
  shards: ShardUnderTest[] = [];
  /** Which shard serves each initial shard's range now (merges only join ranges). */
  readonly owner = Array.from({ length: SHARDS }, (_, s) => s);

  /** The shard serving `key` now. */
  shardOf(key: Uint8Array): number {
    return this.owner[shardOf(key)]!;
  }

  /** The shards serving `txn`'s keys now. */
  shardsOf(txn: Txn): number[] {
    return [...new Set(txn.ops.map((op) => this.shardOf(op.key)))];
  }

  static async create(): Promise<Harness> {
    const harness = new Harness();
    for (let s = 0; s < SHARDS; s++) {
      const vfs = new MemVfs({ random: new SeededRandom(100 + s) });
      harness.shards.push({ vfs, machine: await open(vfs), log: [], outcomes: [] });
    }
    return harness;
  }

  async close(): Promise<void> {
    for (const shard of this.shards) await shard.machine.close();
  }

  /** Appends `entry` to shard `s`'s log, applies it and checks its outcome against `expected`. */
  private async apply(s: number, entry: EntryBody, expected: Outcome, sync: boolean): Promise<Outcome> {
    const shard = this.shards[s]!;
    const indexed = { ...entry, index: shard.log.length + 1, term: 1 } as ApplyEntry;
    shard.log.push(indexed);
    const [result] = await shard.machine.applyBatch([indexed], { sync });
    const outcome = outcomeOf(result!);
    shard.outcomes.push(outcome);
    assert.equal(outcome, expected, `shard ${s} entry ${indexed.index} (${JSON.stringify(describeEntry(indexed))})`);
    return outcome;
  }

  private txnEntry(command: TxnCommand): EntryBody {
    return { type: 'txn', command: decodeTxnCommand(encodeTxnCommand(command), TEST_LIMITS) }; // through the log encoding
  }

  async step(step: Step, sync: boolean): Promise<void> {
    switch (step.kind) {
      case 'begin':
        return this.begin(step);
      case 'write':
        return this.write(step, sync);
      case 'crash':
        return this.crash(step.shard, step.mode);
      case 'flush':
        return this.shards[step.shard % SHARDS]!.machine.flush();
      case 'merge':
        return this.merge(step.shard);
      default: {
        if (this.txns.length === 0) return;
        const txn = this.txns[this.txns.length - 1 - (step.txn % this.txns.length)]!; // mostly the latest transactions
        const shards = this.shardsOf(txn);
        if (step.kind === 'prepare') return this.prepare(txn, shards[step.shard % shards.length]!, sync);
        if (step.kind === 'resolve') return this.resolve(txn, shards[step.shard % shards.length]!, sync);
        if (step.kind === 'commit') return this.commit(txn, sync);
        if (step.kind === 'abort') return this.abort(txn, sync);
        return this.forget(txn, sync);
      }
    }
  }

  private begin(step: Extract<Step, { kind: 'begin' }>): void {
    const keys = [...new Set(step.keys)].map((k) => KEYS[k % KEY_COUNT]!);
    const ops = keys.map((key, i) => ({ key, value: step.dels[i] === true ? null : Buffer.from([step.values[i] ?? 0]) }));
    this.txns.push({ id: `t${this.txns.length}`, ops, hints: step.hints, primaryKey: keys[0]!, preparedOk: new Set() });
  }

  private conditionFor(model: ShardModel, key: Buffer, hint: Hint | undefined): Condition | undefined {
    const revision = model.revisionOf(key);
    if (hint === 'absent') return { ifAbsent: true };
    if (hint === 'current') return revision === null ? { ifAbsent: true } : { ifRevision: revision };
    if (hint === 'stale') return { ifRevision: (revision ?? 0) + 1000 };
    return undefined;
  }

  private async prepare(txn: Txn, s: number, sync: boolean): Promise<void> {
    const model = this.models[s]!;
    // A prepare after the commit would be a duplicate proposal, which a coordinator never sends (txn.ts).
    if (this.models[this.shardOf(txn.primaryKey)]!.records.get(txn.id) === 'committed') return;
    const mine = txn.ops.map((op, i) => ({ op, i })).filter(({ op }) => this.shardOf(op.key) === s);
    const ops: KvOp[] = mine.map(({ op, i }) => {
      const condition = this.conditionFor(model, op.key, txn.hints[i]);
      const base = op.value === null ? { type: 'del' as const, key: op.key } : { type: 'put' as const, key: op.key, value: op.value };
      return condition === undefined ? base : { ...base, condition };
    });
    model.index++;
    const expected = this.modelPrepare(model, txn, ops);
    const outcome = await this.apply(s, this.txnEntry({ kind: 'prepare', txnId: txn.id, primaryKey: txn.primaryKey, createdAtMs: 5, ops }), expected, sync);
    if (outcome.startsWith('ok')) for (const op of ops) txn.preparedOk.add(Buffer.from(op.key).toString('hex'));
  }

  private modelPrepare(model: ShardModel, txn: Txn, ops: readonly KvOp[]): Outcome {
    const held = ops.map((op) => model.locks.get(Buffer.from(op.key).toString('hex')));
    if (held.some((lock) => lock !== undefined && lock.txn !== txn.id)) return 'IMPULSE_ERR_TXN_LOCKED';
    if (held.every((lock) => lock !== undefined)) return `ok@${model.revision}`;
    if (held.some((lock) => lock !== undefined)) return 'IMPULSE_ERR_TXN_LOCKED';
    if (ops.some((op) => txn.primaryKey.equals(op.key)) && model.records.has(txn.id)) return 'IMPULSE_ERR_TXN_ABORTED';
    const failed = model.failedCondition(ops);
    if (failed !== undefined) return failed;
    for (const op of ops) model.locks.set(Buffer.from(op.key).toString('hex'), { txn: txn.id, value: op.type === 'put' ? Buffer.from(op.value) : null });
    return `ok@${model.revision}`;
  }

  private async commit(txn: Txn, sync: boolean): Promise<void> {
    if (!txn.ops.every((op) => txn.preparedOk.has(op.key.toString('hex')))) return; // a coordinator commits only once every prepare answered ok
    const p = this.shardOf(txn.primaryKey);
    const model = this.models[p]!;
    const keys = txn.ops.filter((op) => this.shardOf(op.key) === p).map((op) => op.key);
    const otherKeys = txn.ops.filter((op) => this.shardOf(op.key) !== p).map((op) => op.key);
    model.index++;
    let expected: Outcome;
    const record = model.records.get(txn.id);
    if (record === 'aborted') expected = 'IMPULSE_ERR_TXN_ABORTED';
    else if (record === undefined && model.locks.get(txn.primaryKey.toString('hex'))?.txn !== txn.id) {
      model.records.set(txn.id, 'aborted');
      expected = 'IMPULSE_ERR_TXN_ABORTED';
    } else {
      if (record === undefined) {
        model.records.set(txn.id, 'committed');
        for (const op of txn.ops) {
          if (op.value === null) this.visible.delete(op.key.toString('hex'));
          else this.visible.set(op.key.toString('hex'), op.value);
        }
      }
      model.resolve(txn.id, true, keys);
      expected = `ok@${model.revision}`;
    }
    await this.apply(p, this.txnEntry({ kind: 'commit', txnId: txn.id, primaryKey: txn.primaryKey, keys, otherKeys }), expected, sync);
  }

  private async abort(txn: Txn, sync: boolean): Promise<void> {
    const p = this.shardOf(txn.primaryKey);
    const model = this.models[p]!;
    model.index++;
    const record = model.records.get(txn.id);
    if (record === undefined) model.records.set(txn.id, 'aborted');
    if (record !== 'committed') model.resolve(txn.id, false, [txn.primaryKey]);
    await this.apply(p, this.txnEntry({ kind: 'abort', txnId: txn.id, primaryKey: txn.primaryKey }), `ok@${model.revision}`, sync);
  }

  /** A resolver: reads the record at the primary's shard (the machine's, which must agree with the model's), then resolves this shard's keys. */
  private async resolve(txn: Txn, s: number, sync: boolean): Promise<void> {
    const p = this.shardOf(txn.primaryKey);
    const record = await this.shards[p]!.machine.txnRecord(txn.id);
    assert.equal(record?.status, this.models[p]!.records.get(txn.id), `record of ${txn.id}`);
    if (record === undefined) return;
    const keys = txn.ops.filter((op) => this.shardOf(op.key) === s).map((op) => op.key);
    const model = this.models[s]!;
    model.index++;
    model.resolve(txn.id, record.status === 'committed', keys);
    await this.apply(s, this.txnEntry({ kind: 'resolve', txnId: txn.id, commit: record.status === 'committed', keys }), `ok@${model.revision}`, sync);
  }

  private async forget(txn: Txn, sync: boolean): Promise<void> {
    const p = this.shardOf(txn.primaryKey);
    const model = this.models[p]!;
    const locksLeft = this.liveShards().some((live) => [...this.models[live]!.locks.values()].some((lock) => lock.txn === txn.id));
    if (model.records.get(txn.id) !== 'committed' || locksLeft) return; // only a fully resolved, committed transaction's record is forgotten
    model.index++;
    model.records.delete(txn.id);
    await this.apply(p, this.txnEntry({ kind: 'forget', txnId: txn.id, primaryKey: txn.primaryKey }), `ok@${model.revision}`, sync);
  }

  /** The shards still serving a range (not merged away). */
  private liveShards(): number[] {
    return this.owner.filter((owner, s) => owner === s);
  }

  /**
   * Merges a live shard R (the `pick`th with a left neighbour) into its left
   * neighbour L, as the product's steps do on each replica: R applies a
   * freeze entry (its prepare-merge; its revision top is that index plus its
   * base), then L's commit entry takes in R's frozen keys, locks and records
   * (over L's stale copies) and raises L's base. R's model stays as it froze.
   */
  private async merge(pick: number): Promise<void> {
    const candidates = this.liveShards().filter((s) => s > 0);
    if (candidates.length === 0) return;
    const r = candidates[pick % candidates.length]!;
    const l = this.owner[r - 1]!;
    const [right, left] = [this.models[r]!, this.models[l]!];
    right.index++;
    await this.apply(r, { type: 'meta', name: 'merge-prepared', value: Buffer.from('frozen') }, `ok@${right.revision}`, true);
    const revisionTop = right.revision;
    const bounds = { start: STARTS[r]!, end: STARTS[this.owner.lastIndexOf(r) + 1] ?? null };
    const absorbed = await mergeAbsorbOf(this.shards[r]!.machine, { leftId: l, index: right.index, bounds, revisionTop, epoch: 1 });
    const absorb = { ...absorbed, deletes: await staleKeysOf(this.shards[l]!.machine, bounds, absorbed) };
    left.index++;
    await this.apply(l, { type: 'meta', name: 'merged-test', value: Buffer.from(String(r)), absorb }, `ok@${left.revision}`, true);
    left.base = Math.max(left.base, revisionTop - left.index);
    for (const [key, value] of right.data) left.data.set(key, value);
    for (const [key, lock] of right.locks) left.locks.set(key, lock);
    for (const [txnId, status] of right.records) left.records.set(txnId, status);
    for (let s = 0; s < SHARDS; s++) if (this.owner[s] === r) this.owner[s] = l;
  }

  private async write(step: Extract<Step, { kind: 'write' }>, sync: boolean): Promise<void> {
    const key = KEYS[step.key % KEY_COUNT]!;
    const s = this.shardOf(key);
    const model = this.models[s]!;
    const condition = this.conditionFor(model, key, step.hint);
    const op: KvOp = step.value === 0 ? { type: 'del', key } : { type: 'put', key, value: Buffer.from([step.value]) };
    const withCondition = condition === undefined ? op : { ...op, condition };
    model.index++;
    let expected: Outcome;
    if (model.locks.has(key.toString('hex'))) expected = 'IMPULSE_ERR_TXN_LOCKED';
    else {
      expected = model.failedCondition([withCondition]) ?? `ok@${model.revision}`;
      if (expected.startsWith('ok')) {
        model.write(key, op.type === 'put' ? Buffer.from(op.value) : null);
        if (op.type === 'put') this.visible.set(key.toString('hex'), Buffer.from(op.value));
        else this.visible.delete(key.toString('hex'));
      }
    }
    await this.apply(s, { type: 'command', command: encodeCommand({ ops: [withCondition] }) }, expected, sync);
  }

  /** Shard `s` crashes: what its disk kept comes back, and the log is applied again from the recovered applied index. */
  private async crash(s: number, mode: 'lose-unsynced' | 'torn'): Promise<void> {
    const shard = this.shards[s % SHARDS]!;
    const durable = shard.machine.durableAppliedIndex;
    shard.vfs = shard.vfs.recover(mode);
    shard.machine = await open(shard.vfs); // the crashed machine is abandoned, as a dead process's
    const applied = shard.machine.appliedIndex;
    assert.ok(applied >= durable && applied <= shard.log.length, `shard ${s} recovered at ${applied}; durable was ${durable}, the log has ${shard.log.length}`);
    const rest = shard.log.slice(applied);
    if (rest.length === 0) return;
    const replayed = (await shard.machine.applyBatch(rest)).map(outcomeOf);
    assert.deepEqual(replayed, shard.outcomes.slice(applied), `shard ${s}: the replay from ${applied + 1} gave other results`);
  }

  /** Every shard's data, revisions and locks are the model's; the lock-aware view is the visible state. */
  async check(): Promise<void> {
    for (const [s, shard] of this.shards.entries()) {
      const model = this.models[s]!;
      const data = (await shard.machine.range({ limit: 100 })).map((item) => `${item.key.toString('hex')}=${item.value.toString('hex')}@${item.revision}`);
      const expected = [...model.data.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([key, { value, revision }]) => `${key}=${value.toString('hex')}@${revision}`);
      assert.deepEqual(data, expected, `shard ${s} data`);
      const locks = shard.machine.locks().map(({ key, lock }) => `${key.toString('hex')}:${lock.txnId}:${lock.op.type === 'put' ? lock.op.value.toString('hex') : '-'}`).sort();
      const modelLocks = [...model.locks.entries()].map(([key, lock]) => `${key}:${lock.txn}:${lock.value === null ? '-' : lock.value.toString('hex')}`).sort();
      assert.deepEqual(locks, modelLocks, `shard ${s} locks`);
    }
    const view: string[] = [];
    for (const key of KEYS) {
      const value = await this.read(key);
      if (value !== undefined) view.push(`${key.toString('hex')}=${value.toString('hex')}`);
    }
    const visible = [...this.visible.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([key, value]) => `${key}=${value.toString('hex')}`);
    assert.deepEqual(view, visible, 'what a reader sees is not the model\'s visible state (a transaction half visible, or a committed one lost)');
  }

  /** A lock-aware read: a locked key whose transaction committed reads as the lock's write. */
  private async read(key: Buffer): Promise<Buffer | undefined> {
    const machine = this.shards[this.shardOf(key)]!.machine;
    const lock = machine.lockOf(key);
    if (lock !== undefined) {
      const record = await this.shards[this.shardOf(lock.primaryKey)]!.machine.txnRecord(lock.txnId);
      if (record?.status === 'committed') return lock.op.type === 'put' ? lock.op.value : undefined;
    }
    return (await machine.get(key))?.value;
  }
}

function describeEntry(entry: ApplyEntry): unknown {
  if (entry.type !== 'txn') return entry.type;
  const { command } = entry;
  return { kind: command.kind, txn: command.txnId };
}

const hint = fc.constantFrom<Hint>('none', 'none', 'none', 'current', 'current', 'stale', 'absent');
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('begin' as const), keys: fc.array(fc.nat(KEY_COUNT - 1), { minLength: 1, maxLength: 4 }), values: fc.array(fc.integer({ min: 1, max: 255 }), { minLength: 4, maxLength: 4 }), dels: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), hints: fc.array(hint, { minLength: 4, maxLength: 4 }) }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('prepare' as const), txn: fc.nat(2), shard: fc.nat(3) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('commit' as const), txn: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('abort' as const), txn: fc.nat(2) }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('resolve' as const), txn: fc.nat(2), shard: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('forget' as const), txn: fc.nat(2) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), key: fc.nat(KEY_COUNT - 1), value: fc.integer({ min: 0, max: 255 }), hint }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash' as const), shard: fc.nat(SHARDS - 1), mode: fc.constantFrom('lose-unsynced' as const, 'torn' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('flush' as const), shard: fc.nat(SHARDS - 1), mode: fc.constant('lose-unsynced' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('merge' as const), shard: fc.nat(SHARDS - 1) }) },
);

describe('transactions across shards: state machines against a model', () => {
  it('no transaction is ever half visible, a committed one is never lost, replays agree (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(stepArb, fc.boolean()), { minLength: 20, maxLength: 60 }), async (steps) => {
        const harness = await Harness.create();
        try {
          for (const [step, sync] of steps) {
            await harness.step(step, sync);
            await harness.check();
          }
        } finally {
          await harness.close();
        }
      }),
      { numRuns: 60 },
    );
  });

  it('refuses an ordinary write to a locked key and a second transaction on it, and takes both once resolved', async () => {
    const harness = await Harness.create();
    try {
      const [a, b] = [KEYS[0]!, KEYS[1]!]; // both in shard 0
      const machineA = harness.shards[shardOf(a)]!.machine;
      const prepare = decodeTxnCommand(encodeTxnCommand({ kind: 'prepare', txnId: 'x1', primaryKey: a, createdAtMs: 1, ops: [{ type: 'put', key: a, value: Buffer.from('A') }] }), TEST_LIMITS);
      assert.deepEqual(await machineA.applyBatch([{ index: 1, term: 1, type: 'txn', command: prepare }]), [{ ok: true, revision: 1 }]);
      const [refused] = await machineA.applyBatch([{ index: 2, term: 1, type: 'command', command: { ops: [{ type: 'put', key: a, value: Buffer.from('z') }] } }]);
      assert.ok(!refused!.ok && 'error' in refused! && isImpulseError(refused.error, 'IMPULSE_ERR_TXN_LOCKED') && refused.error.details?.['txn'] === 'x1');
      const other = { ...prepare, txnId: 'x2', primaryKey: b };
      const [conflict] = await machineA.applyBatch([{ index: 3, term: 1, type: 'txn', command: other }]);
      assert.ok(!conflict!.ok && 'error' in conflict! && isImpulseError(conflict.error, 'IMPULSE_ERR_TXN_LOCKED'));
      // The commit and the write in one batch: the write sees the lock gone.
      const results = await machineA.applyBatch([
        { index: 4, term: 1, type: 'txn', command: { kind: 'commit', txnId: 'x1', primaryKey: a, keys: [a], otherKeys: [b] } },
        { index: 5, term: 1, type: 'command', command: { ops: [{ type: 'put', key: a, value: Buffer.from('z'), condition: { ifRevision: 4 } }] } },
      ]);
      assert.deepEqual(results, [{ ok: true, revision: 4 }, { ok: true, revision: 5 }]);
      assert.equal((await machineA.get(a))?.value.toString(), 'z');
      const record = await machineA.txnRecord('x1');
      assert.deepEqual({ status: record?.status, keys: record?.keys.map(String) }, { status: 'committed', keys: ['a', 'b'] });
      assert.equal(machineA.lockCount, 0);
      assert.equal((await machineA.stats()).keyCount, 1, 'locks and records are not user keys');
    } finally {
      await harness.close();
    }
  });

  it('answers a retried commit under the same client session with the first result and aborts the retry', async () => {
    const harness = await Harness.create();
    try {
      const key = KEYS[3]!;
      const machine = harness.shards[shardOf(key)]!.machine;
      const session = { clientId: 'client-1', seq: 7 };
      const prepare = (txnId: string, value: string): TxnCommand => ({ kind: 'prepare', txnId, primaryKey: key, createdAtMs: 0, ops: [{ type: 'put', key, value: Buffer.from(value) }] });
      const commit = (txnId: string): TxnCommand => decodeTxnCommand(encodeTxnCommand({ kind: 'commit', txnId, primaryKey: key, keys: [key], otherKeys: [KEYS[4]!], session }), TEST_LIMITS);
      const first = await machine.applyBatch([
        { index: 1, term: 1, type: 'txn', command: prepare('r1', 'first') },
        { index: 2, term: 1, type: 'txn', command: commit('r1') },
      ]);
      assert.deepEqual(first, [{ ok: true, revision: 1 }, { ok: true, revision: 2 }]);
      const retry = await machine.applyBatch([
        { index: 3, term: 1, type: 'txn', command: prepare('r2', 'second') },
        { index: 4, term: 1, type: 'txn', command: commit('r2') },
      ]);
      assert.deepEqual(retry, [{ ok: true, revision: 3 }, { ok: true, revision: 2 }], 'the retry is answered the first commit\'s result');
      assert.equal((await machine.txnRecord('r2'))?.status, 'aborted');
      assert.equal(machine.lockOf(key), undefined);
      assert.deepEqual(await machine.get(key), { value: Buffer.from('first'), revision: 2 });
    } finally {
      await harness.close();
    }
  });

  it('locks and records travel in a snapshot image', async () => {
    const harness = await Harness.create();
    try {
      const [source, target] = [harness.shards[0]!.machine, harness.shards[1]!.machine];
      const key = KEYS[2]!;
      await source.applyBatch([
        { index: 1, term: 1, type: 'txn', command: { kind: 'prepare', txnId: 'y', primaryKey: key, createdAtMs: 9, ops: [{ type: 'del', key }] } },
        { index: 2, term: 1, type: 'txn', command: { kind: 'abort', txnId: 'z', primaryKey: KEYS[5]! } },
      ]);
      const image = await source.snapshot();
      try {
        await (await target.stageSnapshot(image.chunks)).install();
      } finally {
        image.release();
      }
      assert.deepEqual(target.lockOf(key), { txnId: 'y', primaryKey: key, createdAtMs: 9, op: { type: 'del' } });
      assert.equal((await target.txnRecord('z'))?.status, 'aborted');
    } finally {
      await harness.close();
    }
  });
});

describe('transaction command encoding', () => {
  it('refuses malformed commands and stored values with coded errors', () => {
    const bad = (bytes: Uint8Array): void => assert.throws(() => decodeTxnCommand(bytes, TEST_LIMITS), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_COMMAND_INVALID'));
    const good = encodeTxnCommand({ kind: 'abort', txnId: 'ok', primaryKey: Buffer.from('k') });
    bad(good.subarray(0, 1));
    bad(Buffer.concat([Buffer.from([1]), good.subarray(1)]));
    bad(encodeTxnCommand({ kind: 'abort', txnId: 'no spaces', primaryKey: Buffer.from('k') }));
    bad(encodeTxnCommand({ kind: 'abort', txnId: 'ok', primaryKey: Buffer.alloc(0) }));
    bad(encodeTxnCommand({ kind: 'prepare', txnId: 'ok', primaryKey: Buffer.from('k'), createdAtMs: 1, ops: [] }));
    bad(encodeTxnCommand({ kind: 'prepare', txnId: 'ok', primaryKey: Buffer.from('k'), createdAtMs: -1, ops: [{ type: 'del', key: Buffer.from('k') }] }));
    bad(encodeTxnCommand({ kind: 'resolve', txnId: 'ok', commit: true, keys: Array.from({ length: TEST_LIMITS.batchOpsMax + 1 }, () => Buffer.from('k')) }));
    bad(Buffer.from([2, 0x93, 9, 0xa1, 0x61, 0xc0]));
    assert.throws(() => decodeLock(Buffer.from([1, 2, 3])), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'));
    const lock = { txnId: 't', primaryKey: Buffer.from('p'), createdAtMs: 3, op: { type: 'put' as const, value: Buffer.from('v') } };
    assert.deepEqual(decodeLock(encodeLock(lock)), lock);
    const record = { status: 'committed' as const, primaryKey: Buffer.from('p'), keys: [Buffer.from('p'), Buffer.from('q')], revision: 42 };
    assert.deepEqual(decodeTxnRecord(encodeTxnRecord(record)), record, 'a committed record keeps its commit revision');
    const { revision: _none, ...older } = record;
    assert.deepEqual(decodeTxnRecord(encodeTxnRecord(older)), older, 'a record from before revisions were kept');
    assert.throws(() => decodeTxnRecord(encodeTxnRecord({ ...record, revision: -1 })), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'));
  });
});
