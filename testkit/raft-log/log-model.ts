/**
 * The Raft-log half of the crash harness and of the model tests: a plain
 * in-memory model of what a `RaftLogStore` must hold after a sequence of saves
 * and compactions, a comparison of a store's whole read side against it, a
 * generator of valid random operations, and `LogHistory`, the record a crash
 * or I/O-error sweep (testkit/vfs/crash-harness.ts) keeps: the state after
 * the last ACKNOWLEDGED operation and the state the in-flight one would give.
 *
 * Used by src/raft/log-store/*.test.ts; anything implementing RaftLogStore
 * can be checked with it.
 */
import type { Random } from '../../src/util/random.js';
import type { ConfState, Entry, HardState } from '../../src/raft/types.js';
import type { LogUpdate, RaftLogStore, RaftStorage, SnapshotMeta } from '../../src/raft/storage.js';

/** What a log must hold: hard state, boundary, and the entries after it (contiguous). */
export interface LogState {
  readonly hardState: HardState;
  readonly boundary: SnapshotMeta;
  readonly entries: readonly Entry[];
}

export function emptyLogState(confState: ConfState = { voters: [], learners: [] }): LogState {
  return { hardState: { term: 0, vote: 0, commit: 0 }, boundary: { index: 0, term: 0, confState }, entries: [] };
}

export function lastIndexOf(state: LogState): number {
  return state.boundary.index + state.entries.length;
}

/** The term at `index` in `state` (the boundary's at the boundary). */
export function termAt(state: LogState, index: number): number {
  return index === state.boundary.index ? state.boundary.term : state.entries[index - state.boundary.index - 1]!.term;
}

/** `save(update)`'s effect: install the snapshot (dropping every entry), replace the suffix from the first entry, set the hard state. */
export function applyUpdate(state: LogState, update: LogUpdate): LogState {
  let { hardState, boundary, entries } = state;
  if (update.snapshot !== null) {
    boundary = update.snapshot;
    entries = [];
  }
  const first = update.entries[0];
  if (first !== undefined) entries = [...entries.slice(0, first.index - boundary.index - 1), ...update.entries];
  if (update.hardState !== null) hardState = update.hardState;
  return { hardState, boundary, entries };
}

/** `compact(meta)`'s effect: the boundary moves to `meta`, entries at or below it go. */
export function applyCompaction(state: LogState, meta: SnapshotMeta): LogState {
  return { ...state, boundary: meta, entries: state.entries.slice(meta.index - state.boundary.index) };
}

/** A stable string for any plain value (keys sorted, bytes as hex), for comparisons and messages. */
export function canonical(value: unknown): string {
  if (value instanceof Uint8Array) return `<${Buffer.from(value).toString('hex')}>`;
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    return `{${Object.keys(record).sort().map((key) => `${key}:${canonical(record[key])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'undefined';
}

/**
 * Compares the whole read side of `store` with `expected`: hard state,
 * boundary, first/last index, term() in and around the range, and every
 * entry (read in one call, which may go to disk). Undefined when equal.
 */
export function describeDifference(store: RaftStorage, expected: LogState): string | undefined {
  const same = (what: string, actual: unknown, wanted: unknown): string | undefined =>
    canonical(actual) === canonical(wanted) ? undefined : `${what}: got ${canonical(actual).slice(0, 300)}, expected ${canonical(wanted).slice(0, 300)}`;
  const last = lastIndexOf(expected);
  const problems = [
    same('hard state', store.hardState(), expected.hardState),
    same('snapshot boundary', store.snapshotMeta(), expected.boundary),
    same('first index', store.firstIndex(), expected.boundary.index + 1),
    same('last index', store.lastIndex(), last),
  ].filter((problem) => problem !== undefined);
  if (problems.length > 0) return problems.join('; ');
  for (let index = Math.max(0, expected.boundary.index - 1); index <= last + 1; index++) {
    const wanted = index < expected.boundary.index || index > last ? undefined : termAt(expected, index);
    const problem = same(`term(${index})`, store.term(index), wanted);
    if (problem !== undefined) return problem;
  }
  if (last === expected.boundary.index) return undefined;
  return same('entries', store.entries(expected.boundary.index + 1, last + 1, Number.MAX_SAFE_INTEGER), expected.entries);
}

/** `save` as a promise. */
export function saveAsync(store: RaftLogStore, update: LogUpdate): Promise<void> {
  return new Promise((resolve, reject) => store.save(update, (error) => (error === null ? resolve() : reject(error))));
}

/** `compact` as a promise. */
export function compactAsync(store: RaftLogStore, meta: SnapshotMeta): Promise<void> {
  return new Promise((resolve, reject) => store.compact(meta, (error) => (error === null ? resolve() : reject(error))));
}

export type LogOperation = { readonly kind: 'save'; readonly update: LogUpdate } | { readonly kind: 'compact'; readonly meta: SnapshotMeta };

/**
 * The record of a crash or I/O-error sweep. Drive the store through `save`
 * and `compact` here so the record knows what was acknowledged.
 */
export class LogHistory {
  /** The state after the last acknowledged operation. */
  acknowledged: LogState;
  /** The state if the operation in flight (not yet acknowledged) took effect; null when none is. */
  inFlight: LogState | null = null;
  /** Operations acknowledged. */
  acknowledgedCount = 0;
  private errorsSeen = 0;

  constructor(initial: LogState = emptyLogState()) {
    this.acknowledged = initial;
  }

  async run(store: RaftLogStore, operation: LogOperation): Promise<void> {
    const next = operation.kind === 'save' ? applyUpdate(this.acknowledged, operation.update) : applyCompaction(this.acknowledged, operation.meta);
    this.inFlight = next;
    if (operation.kind === 'save') await saveAsync(store, operation.update);
    else await compactAsync(store, operation.meta);
    this.acknowledged = next;
    this.inFlight = null;
    this.acknowledgedCount++;
  }

  /** The workload caught an error from the store. */
  sawError(): void {
    this.errorsSeen++;
  }

  get anyErrorSeen(): boolean {
    return this.errorsSeen > 0;
  }

  /**
   * Checks a recovered store: it must hold exactly the acknowledged state or,
   * when an operation was in flight, the state that operation gives (a save
   * is all-or-nothing). Undefined when it does.
   */
  check(store: RaftStorage): string | undefined {
    const againstAcknowledged = describeDifference(store, this.acknowledged);
    if (againstAcknowledged === undefined) return undefined;
    if (this.inFlight !== null && describeDifference(store, this.inFlight) === undefined) return undefined;
    return `after ${this.acknowledgedCount} acknowledged operations${this.inFlight === null ? '' : ' (one more in flight)'}: ${againstAcknowledged}`;
  }
}

/** Options of `randomOperation`. */
export interface RandomOperationOptions {
  /** Largest payload of a normal entry (bytes). Default 160. */
  readonly dataBytesMax?: number;
  /** Payload of the occasional oversized entry (bigger than a test's segment). Default 0 (none). */
  readonly oversizedBytes?: number;
}

/**
 * A valid next operation for a log in `state`, as a Raft core could ask for
 * it: appends at the current term (with commit advances), conflicting
 * truncations above the commit index at a new term, hard-state changes,
 * snapshot installs, compactions up to the commit index.
 */
export function randomOperation(state: LogState, random: Random, options: RandomOperationOptions = {}): LogOperation {
  const { hardState, boundary } = state;
  const last = lastIndexOf(state);
  const roll = random.int(100);
  const newTerm = (): HardState => ({ term: hardState.term + 1, vote: random.int(4), commit: hardState.commit });
  if (hardState.term === 0 || (roll >= 60 && roll < 70)) {
    return { kind: 'save', update: { snapshot: null, entries: [], hardState: random.chance(0.5) || hardState.term === 0 ? newTerm() : { ...hardState, commit: hardState.commit + random.int(last - hardState.commit + 1) } } };
  }
  if (roll < 45 || (roll < 60 && last === hardState.commit)) {
    const entries = makeEntries(last + 1, 1 + random.int(4), hardState.term, random, options);
    const newLast = last + entries.length;
    const commit = random.chance(0.6) ? hardState.commit + random.int(newLast - hardState.commit + 1) : hardState.commit;
    return { kind: 'save', update: { snapshot: null, entries, hardState: commit === hardState.commit ? null : { ...hardState, commit } } };
  }
  if (roll < 60) {
    // A conflicting suffix from a new leader: truncate above the commit index.
    const from = hardState.commit + 1 + random.int(last - hardState.commit);
    const term = newTerm();
    return { kind: 'save', update: { snapshot: null, entries: makeEntries(from, 1 + random.int(3), term.term, random, options), hardState: term } };
  }
  if (roll < 80) {
    const index = last + random.int(4);
    const snapshot: SnapshotMeta = { index, term: hardState.term, confState: { voters: [1, 2, 3], learners: random.chance(0.3) ? [4] : [] } };
    return { kind: 'save', update: { snapshot, entries: makeEntries(index + 1, random.int(3), hardState.term, random, options), hardState: { ...hardState, commit: index } } };
  }
  const compactTop = Math.min(hardState.commit, last);
  if (compactTop > boundary.index && roll < 94) {
    const index = boundary.index + 1 + random.int(compactTop - boundary.index);
    return { kind: 'compact', meta: { index, term: termAt(state, index), confState: { voters: [1, 2, 3], learners: [] } } };
  }
  return { kind: 'save', update: { snapshot: null, entries: makeEntries(last + 1, 1, hardState.term, random, { ...options, dataBytesMax: options.oversizedBytes ?? options.dataBytesMax }), hardState: null } };
}

function makeEntries(first: number, count: number, term: number, random: Random, options: RandomOperationOptions): Entry[] {
  const entries: Entry[] = [];
  for (let index = first; index < first + count; index++) {
    if (random.chance(0.1)) {
      const nodeId = 1 + random.int(5);
      const context = Buffer.from(`node-${nodeId}.example:${7000 + random.int(1000)}`);
      entries.push({ kind: 'conf-change', index, term, change: { type: 'add-learner', nodeId, context }, confState: { voters: [1, 2, 3], learners: [nodeId] } });
    } else {
      const data = Buffer.alloc(random.int((options.dataBytesMax ?? 160) + 1));
      for (let i = 0; i < data.length; i++) data[i] = random.int(256);
      entries.push({ kind: 'normal', index, term, data });
    }
  }
  return entries;
}
