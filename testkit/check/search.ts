/**
 * Generic linearizability search: the Wing & Gong depth-first search with
 * Lowe's memoization, as Porcupine does it, plus P-compositionality (the
 * model splits a history into independent partitions, e.g. one per key, and
 * each partition is checked alone).
 *
 * How to use: describe the object under test as a `Model` (initial state, a
 * step function, a partition function, equality, hashing and descriptions),
 * record a history of `HistoryOperation`s, and call `checkLinearizability`.
 * The key-value model in `linearizability.ts` is one instance; another model
 * (a leaderless register, a queue) only has to implement `Model`.
 *
 * Semantics of a history:
 * - Operation A precedes B in real time iff `A.return < B.call` (strictly);
 *   equal timestamps count as concurrent, the permissive reading.
 * - An operation with `return === undefined` has an unknown outcome (timed out,
 *   client crashed). It may have taken effect at any point after its call, or
 *   never: the search may leave it out of a linearization entirely. Its
 *   effect is whatever `Model.step` allows for an `undefined` output.
 * - The answer is deterministic: the search explores in a fixed order and is
 *   bounded by a step budget, never by wall-clock time.
 */
import { assert } from '../../src/util/assert.js';
import { PartitionSearch } from './partition-search.js';

/** One operation as a client saw it. Times are in any monotonic unit. */
export interface HistoryOperation<Input, Output> {
  /** Who issued it; only used for reports. */
  readonly clientId: number;
  readonly input: Input;
  /** Invocation time. Finite. */
  readonly call: number;
  /** Completion time (>= call), or undefined when the outcome is unknown. */
  readonly return: number | undefined;
  /** The observed result; undefined iff `return` is undefined. */
  readonly output: Output | undefined;
}

/** A part of a history that can be checked on its own (P-compositionality). */
export interface Partition<Input, Output> {
  /** Name shown in reports, e.g. the key. */
  readonly label: string;
  /** Operations of this partition, in any order, as the search sees them. */
  readonly operations: readonly HistoryOperation<Input, Output>[];
  /**
   * The same operations as the client saw them, index-aligned with
   * `operations`, when the model rewrote them (e.g. abstracted values): shown
   * in reports. Defaults to `operations`.
   */
  readonly reported?: readonly HistoryOperation<Input, Output>[];
}

/**
 * A sequential specification. States are immutable values: `step` must not
 * mutate the state it is given.
 */
export interface Model<State, Input, Output> {
  /**
   * Splits a history into parts whose linearizability can be checked
   * independently (the whole history is linearizable iff every part is).
   * May drop operations that cannot constrain the verdict (say which, in the
   * model's documentation).
   */
  partition(history: readonly HistoryOperation<Input, Output>[]): Partition<Input, Output>[];
  /** State every partition starts in. */
  init(): State;
  /**
   * The states the object may be in after applying `input` in `state` and
   * answering `output`; an empty array means the operation cannot be
   * linearized here with that output. `output === undefined` means the
   * outcome is unknown: return every state the operation could have produced.
   * (The search itself discards successors equal to `state` for unknown
   * operations, because an effect-free unknown operation is the same as one
   * that never happened.)
   */
  step(state: State, input: Input, output: Output | undefined): readonly State[];
  /** Structural equality of states. */
  equal(a: State, b: State): boolean;
  /** 32-bit hash of a state, consistent with `equal`. */
  hash(state: State): number;
  /**
   * Optional, and a promise about the model: when present, the search places
   * an unknown-outcome operation u only immediately before an operation that
   * u enables (one that could not be applied in the state before u), or
   * before another unknown operation that is not a blind write. Without it,
   * every pending timed-out operation is a branch at every dead end, and
   * histories with many timeouts take exponential time.
   *
   * The promise: for a state s, an unknown operation u taking s to x != s,
   * and a known operation k applicable in both s and x, either k is a blind
   * write (u can be dropped: k overwrites it), or applying k then u from s
   * also ends in x. And a blind write right after an unknown operation makes
   * that one unobservable. Then every linearization can be rewritten, moving
   * unknown operations later or dropping them, into one the search explores.
   * True for registers with get / put / delete / compare-and-set (see the KV
   * model); not for e.g. an append-only list.
   */
  lazyUnknownPlacement?: {
    /** True when the successors of `input` do not depend on the state (put, delete). */
    isBlindWrite(input: Input): boolean;
    /**
     * Optional: prepares, for one partition's operations, a test
     * `mayEnable(u, k)` (indices into `operations`, u unknown): could placing
     * u immediately before k make k applicable where it was not? It must
     * answer true whenever that is possible. With it, an unknown operation
     * whose possible enablees are all placed is retired (never tried again),
     * and only its possible enablees are tried right after it.
     */
    enablement?(operations: readonly HistoryOperation<Input, Output>[]): (unknown: number, other: number) => boolean;
  };
  /**
   * Optional: a string that is equal for two inputs exactly when they have
   * the same effect in every state (e.g. two deletes of one key). Unknown
   * operations with equal keys are interchangeable, so the search places
   * them only in call order, which removes symmetric branches.
   */
  inputKey?(input: Input): string;
  /**
   * Optional: true when an operation with this input and (known) output
   * never changes the state wherever it applies, e.g. a get, or a cas that
   * failed. Such an operation that applies now is placed at once, without
   * trying others first (walk-through step 9).
   */
  isReadOnly?(input: Input, output: Output): boolean;
  /** One-line description of an operation, e.g. `put("k", "v") -> ok`. */
  describeOperation(input: Input, output: Output | undefined): string;
  /** One-line description of a state. */
  describeState(state: State): string;
}

/** Default total step budget for a whole history (deterministic, not time). */
export const DEFAULT_STEP_BUDGET = 2_000_000;

/** Options for `checkLinearizability`. */
export interface CheckOptions {
  /**
   * Maximum search steps over the whole history (all partitions together).
   * One step is one attempt to linearize an operation or one backtrack.
   * Default `DEFAULT_STEP_BUDGET`. Must be a positive safe integer.
   */
  stepBudget?: number;
  /**
   * Estimated bytes the memo cache of one partition may hold. Past it the
   * search stops remembering new configurations: still correct, possibly
   * slower (the step budget still bounds it). Default `DEFAULT_CACHE_BYTES_MAX`.
   */
  cacheBytesMax?: number;
  /**
   * Place applicable read-only operations at once, without trying their
   * siblings (walk-through step 9; needs `Model.isReadOnly`). Default true;
   * false only to compare against the unreduced search in tests.
   */
  reduceStatePreserving?: boolean;
}

/** Default bound on the memo cache of one partition: 128 MiB (estimated). */
export const DEFAULT_CACHE_BYTES_MAX = 128 * 1024 * 1024;

/** Verdict over a whole history. */
export type HistoryCheckResult<Input, Output> =
  | { verdict: 'linearizable'; partitions: number; operations: number; steps: number }
  | {
      verdict: 'not-linearizable';
      /** Label of the failing partition with the fewest operations. */
      partition: string;
      /** That partition's operations, sorted by call time. */
      operations: HistoryOperation<Input, Output>[];
      /** One line: the longest linearizable prefix found and where it got stuck. */
      explanation: string;
      steps: number;
    }
  | { verdict: 'unknown'; reason: string; steps: number };

/**
 * Checks a whole history against `model`. Partitions are checked in order of
 * increasing size (ties by label), so the first failing one is the smallest;
 * the search stops there. When the step budget runs out before a verdict, the
 * answer is 'unknown' (a failure found earlier still wins).
 */
export function checkLinearizability<State, Input, Output>(
  model: Model<State, Input, Output>,
  history: readonly HistoryOperation<Input, Output>[],
  options: CheckOptions = {},
): HistoryCheckResult<Input, Output> {
  const stepBudget = options.stepBudget ?? DEFAULT_STEP_BUDGET;
  const cacheBytesMax = options.cacheBytesMax ?? DEFAULT_CACHE_BYTES_MAX;
  assert(Number.isSafeInteger(stepBudget) && stepBudget > 0, 'stepBudget must be a positive safe integer', stepBudget);
  assert(cacheBytesMax >= 0, 'cacheBytesMax must not be negative', cacheBytesMax);
  for (const operation of history) validateOperation(operation);

  const partitions = model
    .partition(history)
    .slice()
    .sort((a, b) => a.operations.length - b.operations.length || compareStrings(a.label, b.label));
  let steps = 0;
  for (let index = 0; index < partitions.length; index++) {
    const partition = partitions[index]!;
    const outcome = searchPartition(
      model,
      partition.operations,
      stepBudget - steps,
      cacheBytesMax,
      options.reduceStatePreserving ?? true,
      partition.reported,
    );
    steps += outcome.steps;
    if (outcome.kind === 'budget-exhausted') {
      return {
        verdict: 'unknown',
        reason:
          `step budget of ${stepBudget} exhausted while checking partition ${JSON.stringify(partition.label)} ` +
          `(${partition.operations.length} operations; ${index} of ${partitions.length} partitions fully checked)`,
        steps,
      };
    }
    if (outcome.kind === 'not-linearizable') {
      return {
        verdict: 'not-linearizable',
        partition: partition.label,
        operations: sortByCall(partition.reported ?? partition.operations),
        explanation: outcome.explanation,
        steps,
      };
    }
  }
  return { verdict: 'linearizable', partitions: partitions.length, operations: history.length, steps };
}

/** Outcome of searching one partition. */
export type PartitionOutcome =
  | { kind: 'linearizable'; steps: number }
  | { kind: 'not-linearizable'; steps: number; explanation: string }
  | { kind: 'budget-exhausted'; steps: number };

/**
 * Searches one partition for a linearization, spending at most `stepBudget`
 * steps. Exported for tests and for models that partition by themselves.
 *
 * The walk-through (Wing & Gong, Lowe, Porcupine):
 * 1. Every operation becomes a call node and, if its outcome is known, a
 *    return node. Nodes sit in one doubly linked list sorted by time (calls
 *    before returns at equal times). Unknown operations have no return node:
 *    they never force the search to place them.
 * 2. The candidates to linearize next are the call nodes before the first
 *    return node: every one of them was invoked before any unplaced
 *    operation completed, so placing it next respects real time.
 * 3. To place a candidate, apply it to the model; on success, remove its call
 *    and return node from the list (kept in place for O(1) undo, "dancing
 *    links"), push it, and start again from the head.
 * 4. Reaching a return node means the operation it ends must have been
 *    placed already: backtrack (pop, restore the nodes, try the next
 *    candidate or the next successor state of the popped operation).
 * 5. Lowe's memoization: the pair (set of placed operations, model state)
 *    fully determines the rest of the search, so a pair already seen is not
 *    explored again. Sets are bitsets over operation indices, hashed
 *    incrementally (Zobrist: XOR of a fixed random word per operation).
 * 6. Success when every operation with a known outcome is placed: unknown
 *    operations still unplaced are taken never to have happened.
 * Candidates with known outcomes are tried before unknown ones (two passes
 * over the same candidate window): a pending timed-out write is applied only
 * when nothing else fits. The order of trying candidates does not affect the
 * verdict.
 * 7. With `Model.lazyUnknownPlacement`, an unknown operation placed at a dead
 *    end must be followed at once by an operation it enables (see there);
 *    otherwise it could have been placed later or never. So right after one,
 *    pass 0 takes only known operations it enabled, and pass 2 (instead of
 *    pass 1) only its possible followers among the unknown ones. With
 *    `enablement`, an unknown operation whose possible enablees are all
 *    placed is retired: pass 1 no longer tries it.
 * 8. With `Model.inputKey`, unknown operations with equal inputs are placed
 *    in call order only: swapping two of them in a linearization gives
 *    another one (the earlier-called can stand wherever the later can).
 * 9. Forced moves: on arriving at a new configuration, a read-only known
 *    candidate (`Model.isReadOnly`, e.g. a get) that applies in the current
 *    state is placed at once. Any linearization from here can move it to the
 *    front (it is a candidate, so real time allows it; it applies here; and
 *    being read-only wherever it stood, moving it changes no other
 *    operation's state), so if placing it fails, the configuration fails.
 */
export function searchPartition<State, Input, Output>(
  model: Model<State, Input, Output>,
  operations: readonly HistoryOperation<Input, Output>[],
  stepBudget: number,
  cacheBytesMax: number = DEFAULT_CACHE_BYTES_MAX,
  reduceStatePreserving = true,
  reported: readonly HistoryOperation<Input, Output>[] = operations,
): PartitionOutcome {
  return new PartitionSearch(model, operations, stepBudget, cacheBytesMax, reduceStatePreserving, reported).run();
}

/** FNV-1a over UTF-16 code units, for models whose state is a string. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h | 0;
}

function validateOperation<Input, Output>(operation: HistoryOperation<Input, Output>): void {
  assert(Number.isFinite(operation.call), 'operation call time must be finite', operation);
  if (operation.return === undefined) {
    assert(operation.output === undefined, 'an operation with unknown outcome must have no output', operation);
  } else {
    assert(Number.isFinite(operation.return), 'operation return time must be finite or undefined', operation);
    assert(operation.return >= operation.call, 'operation returned before it was called', operation);
    assert(operation.output !== undefined, 'a completed operation must have an output', operation);
  }
}

function sortByCall<Input, Output>(operations: readonly HistoryOperation<Input, Output>[]): HistoryOperation<Input, Output>[] {
  return operations
    .slice()
    .sort(
      (a, b) =>
        a.call - b.call ||
        (a.return ?? Number.POSITIVE_INFINITY) - (b.return ?? Number.POSITIVE_INFINITY) ||
        a.clientId - b.clientId,
    );
}

/** Sorts operations for display: by call, then return (unknown last), then client. */
export function sortOperationsByCall<Input, Output>(
  operations: readonly HistoryOperation<Input, Output>[],
): HistoryOperation<Input, Output>[] {
  return sortByCall(operations);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
