/**
 * Entries for the key-value state machine, generated against the model
 * (testkit/kv/model.ts) so conditions and retries are meaningful: a spec says
 * "a put on key 2 conditioned on its current revision" or "client 0 retries
 * one of its earlier writes", and the `Planner` turns it into a concrete entry
 * given the model's state at that point. Used by the property suite (specs
 * from fast-check) and the crash tests (specs from a seeded Random).
 */
import { ImpulseError } from '../../src/errors.js';
import { type KvCommand, type KvOp, encodeCommand } from '../../src/kv/command.js';
import type { ApplyEntry } from '../../src/kv/state-machine.js';
import { type Random, SeededRandom } from '../../src/util/random.js';
import { KvModel, type ModelResult } from './model.js';

/** Small session limits, so windows and evictions happen within short runs. */
export const SESSIONS = { windowSeqs: 4, clientsMax: 2 };
/** A small key alphabet, so keys collide and conditions see earlier writes. */
export const KEYS = ['a', 'b', 'c', 'ab', 'z'].map((key) => Buffer.from(key));

export type Hint = 'none' | 'current' | 'stale' | 'absent';
export interface OpSpec {
  readonly type: 'put' | 'del';
  readonly key: number;
  readonly value: Buffer;
  readonly hint: Hint;
}
export type EntrySpec =
  | { readonly kind: 'command'; readonly ops: OpSpec[]; readonly session: { client: number; mode: 'next' | 'retry' | 'old'; pick: number; acked: boolean } | null; readonly encoded: boolean }
  | { readonly kind: 'meta'; readonly name: string; readonly value: Buffer | null; readonly more?: ReadonlyArray<{ readonly name: string; readonly value: Buffer | null }> }
  | { readonly kind: 'noop' }
  | { readonly kind: 'refused' };

/** Turns specs into concrete entries against the model's current state, keeping each client's sent commands for retries. */
export class Planner {
  private readonly sent = new Map<number, Map<number, KvCommand>>();
  private readonly nextSeq = new Map<number, number>();

  constructor(private readonly model: KvModel) {}

  entry(spec: EntrySpec, index: number): { entry: ApplyEntry; command?: KvCommand } {
    if (spec.kind === 'noop') return { entry: { index, term: 1, type: 'noop' } };
    if (spec.kind === 'meta') return { entry: { index, term: 1, type: 'meta', name: spec.name, value: spec.value, ...(spec.more !== undefined ? { more: spec.more } : {}) } };
    if (spec.kind === 'refused') return { entry: { index, term: 1, type: 'refused', error: new ImpulseError('IMPULSE_ERR_SHARD_STALE') } };
    const command = this.command(spec);
    return { entry: { index, term: 1, type: 'command', command: spec.encoded ? encodeCommand(command) : command }, command };
  }

  private command(spec: Extract<EntrySpec, { kind: 'command' }>): KvCommand {
    const ops = spec.ops.map((op) => this.op(op));
    if (spec.session === null) return { ops };
    const { client, mode, pick, acked } = spec.session;
    const history = this.sent.get(client) ?? new Map<number, KvCommand>();
    this.sent.set(client, history);
    const seqs = [...history.keys()];
    if (mode === 'retry' && seqs.length > 0) return history.get(seqs[pick % seqs.length]!)!; // the very same command again
    const next = this.nextSeq.get(client) ?? 1;
    // 'old': a new command with a seq around the edge of the session window (below, at, just inside).
    const seq = mode === 'old' && next > 1 ? Math.max(1, next - SESSIONS.windowSeqs - 1 + (pick % 3)) : next;
    if (seq === next) this.nextSeq.set(client, next + 1);
    const session = { clientId: `client-${client}`, seq, ...(acked ? { ackedBelow: Math.max(1, seq - 1) } : {}) };
    const command: KvCommand = { ops, session };
    if (!history.has(seq)) history.set(seq, command);
    return command;
  }

  private op(spec: OpSpec): KvOp {
    const key = KEYS[spec.key]!;
    const current = this.model.revisionOf(key);
    const condition =
      spec.hint === 'current' ? (current === null ? undefined : { ifRevision: current })
      : spec.hint === 'stale' ? { ifRevision: Math.max(1, (current ?? 2) - 1) }
      : spec.hint === 'absent' && spec.type === 'put' ? { ifAbsent: true as const }
      : undefined;
    const base = spec.type === 'put' ? { type: 'put' as const, key, value: spec.value } : { type: 'del' as const, key };
    return condition === undefined ? base : { ...base, condition };
  }
}


/** A random entry spec from a seeded Random (the crash tests' workload). */
export function randomEntrySpec(random: Random): EntrySpec {
  const roll = random.int(10);
  if (roll === 0) return { kind: 'noop' };
  if (roll === 1) return { kind: 'meta', name: random.chance(0.5) ? 'members' : 'shard', value: random.chance(0.8) ? Buffer.from([random.int(256)]) : null };
  const hints: Hint[] = ['none', 'none', 'current', 'stale', 'absent'];
  const ops: OpSpec[] = Array.from({ length: random.int(4) }, () => ({
    type: random.chance(0.7) ? ('put' as const) : ('del' as const),
    key: random.int(KEYS.length),
    value: Buffer.from(`v${random.int(1000)}`),
    hint: hints[random.int(hints.length)]!,
  }));
  const modes = ['next', 'next', 'retry', 'retry', 'old'] as const;
  const session = random.chance(0.7) ? { client: [0, 0, 0, 1, 2][random.int(5)]!, mode: modes[random.int(modes.length)]!, pick: random.int(1000), acked: random.chance(0.25) } : null;
  return { kind: 'command', ops, session, encoded: random.chance(0.5) };
}

/** A fixed log and what the model says after each prefix of it. */
export interface Script {
  readonly entries: readonly ApplyEntry[];
  readonly results: readonly ModelResult[];
  /** dumps[i]: the model's contents after entries 1..i. */
  readonly dumps: ReadonlyArray<readonly string[]>;
  /** Batch sizes the workload applies the entries in. */
  readonly batches: readonly number[];
}

/** `count` random entries from `seed`, with the model's results and contents after each. */
export function makeScript(seed: number, count: number): Script {
  const random = new SeededRandom(seed);
  const model = new KvModel(SESSIONS);
  const planner = new Planner(model);
  const entries: ApplyEntry[] = [];
  const results: ModelResult[] = [];
  const dumps: string[][] = [model.dump()];
  for (let index = 1; index <= count; index++) {
    const { entry, command } = planner.entry(randomEntrySpec(random), index);
    entries.push(entry);
    results.push(model.apply(entry, command));
    dumps.push(model.dump());
  }
  const batches: number[] = [];
  for (let left = count; left > 0; ) {
    const size = Math.min(left, 1 + random.int(4));
    batches.push(size);
    left -= size;
  }
  return { entries, results, dumps, batches };
}
