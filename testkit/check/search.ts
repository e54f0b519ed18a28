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
  const operationCount = operations.length;
  let knownRemaining = 0;
  for (const operation of operations) if (operation.return !== undefined) knownRemaining++;
  if (knownRemaining === 0) return { kind: 'linearizable', steps: 0 };

  // 1. Build the node list. Node 0 is the head sentinel; END marks the tail.
  const list = buildNodeList(operations);
  const { next, prev, nodeOperation, nodeIsCall, callNode, returnNode } = list;
  const known = new Uint8Array(operationCount);
  for (let op = 0; op < operationCount; op++) known[op] = operations[op]!.return === undefined ? 0 : 1;
  const lazy = model.lazyUnknownPlacement;
  const blindWrite = new Uint8Array(operationCount);
  if (lazy !== undefined) {
    for (let op = 0; op < operationCount; op++) blindWrite[op] = lazy.isBlindWrite(operations[op]!.input) ? 1 : 0;
  }
  const zobrist = new Int32Array(operationCount);
  for (let op = 0; op < operationCount; op++) zobrist[op] = mix32(op + 0x51ed27);

  const lift = (op: number): void => {
    const call = callNode[op]!;
    next[prev[call]!] = next[call]!;
    if (next[call] !== END) prev[next[call]!] = prev[call]!;
    const ret = returnNode[op]!;
    if (ret !== END) {
      next[prev[ret]!] = next[ret]!;
      if (next[ret] !== END) prev[next[ret]!] = prev[ret]!;
    }
  };
  // Exact inverse of lift, valid because undo happens in LIFO order.
  const unlift = (op: number): void => {
    const ret = returnNode[op]!;
    if (ret !== END) {
      next[prev[ret]!] = ret;
      if (next[ret] !== END) prev[next[ret]!] = ret;
    }
    const call = callNode[op]!;
    next[prev[call]!] = call;
    if (next[call] !== END) prev[next[call]!] = call;
  };

  const cache = new StateCache<State>(model, Math.ceil(operationCount / 32), cacheBytesMax);
  const placed = new Uint32Array(Math.ceil(operationCount / 32));
  let placedHash = 0;
  let state = model.init();

  // The stack of placed operations: which one, which successor, state before.
  const stackOperation = new Int32Array(operationCount);
  const stackAlternative = new Int32Array(operationCount);
  const stackState: State[] = [];
  let depth = 0;

  // Longest prefix of known operations placed, for the failure explanation.
  let bestKnownPlaced = -1;
  let bestPrefix: number[] = [];
  let bestState = state;
  let knownPlaced = 0;
  const recordBest = (): void => {
    if (knownPlaced <= bestKnownPlaced) return;
    bestKnownPlaced = knownPlaced;
    bestPrefix = Array.from(stackOperation.subarray(0, depth));
    bestState = state;
  };
  recordBest();

  // Lazy placement tables (7): the unknown operations that may directly
  // follow each unknown operation, in call order, and for retirement, how
  // many operations each unknown one could still enable.
  const followers: Int32Array[] = [];
  const enablersOf: number[][] = [];
  const unplacedEnablees = new Int32Array(operationCount);
  const retirement = lazy?.enablement !== undefined;
  // With `enablement`: one bitset row per unknown operation u, bit k set when
  // u may enable k (`enableeRow[u]` is the row's first word, -1 if none).
  const words = Math.ceil(operationCount / 32);
  const enableeRow = new Int32Array(operationCount).fill(-1);
  let enableeBits = new Uint32Array(0);
  if (retirement) {
    let rows = 0;
    for (let op = 0; op < operationCount; op++) if (!known[op]) enableeRow[op] = words * rows++;
    enableeBits = new Uint32Array(words * rows);
  }
  const mayEnableBit = (u: number, k: number): boolean => (enableeBits[enableeRow[u]! + (k >>> 5)]! & (1 << (k & 31))) !== 0;
  // The candidates in the current window that cannot take effect in the
  // current state: the only ones an unknown operation placed now could help
  // (7). Computed when pass 1 or 2 starts or resumes.
  const blockedInWindow: number[] = [];
  const findBlockedInWindow = (): void => {
    blockedInWindow.length = 0;
    if (!retirement) return;
    for (let node = next[HEAD]!; node !== END && nodeIsCall[node]; node = next[node]!) {
      const k = nodeOperation[node]!;
      const { input, output } = operations[k]!;
      const successors = model.step(state, input, output);
      const blocked = known[k] ? successors.length === 0 : successors.every((successor) => model.equal(successor, state));
      if (blocked) blockedInWindow.push(k);
    }
  };
  // Whether placing unknown u now could enable a blocked candidate; if not,
  // it leads nowhere (7), so it is not tried.
  const mayEnableInWindow = (u: number): boolean => {
    if (!retirement) return true;
    for (const k of blockedInWindow) if (k !== u && mayEnableBit(u, k)) return true;
    return false;
  };
  if (lazy !== undefined) {
    const mayEnable = lazy.enablement?.(operations) ?? ((): boolean => true);
    const unknownByCall: number[] = [];
    for (let op = 0; op < operationCount; op++) {
      enablersOf.push([]);
      if (!known[op]) unknownByCall.push(op);
    }
    unknownByCall.sort((a, b) => callNode[a]! - callNode[b]!);
    for (let u = 0; u < operationCount; u++) {
      const list: number[] = [];
      if (!known[u]) {
        for (const k of unknownByCall) if (k !== u && !blindWrite[k] && mayEnable(u, k)) list.push(k);
        if (retirement) {
          for (let k = 0; k < operationCount; k++) {
            if (k !== u && mayEnable(u, k)) {
              enablersOf[k]!.push(u);
              unplacedEnablees[u]!++;
              enableeBits[enableeRow[u]! + (k >>> 5)]! |= 1 << (k & 31);
            }
          }
        }
      }
      followers.push(Int32Array.from(list));
    }
  }
  // Interchangeable unknown operations (Model.inputKey): per class, members
  // in call order and how many are placed; only the first unplaced member of
  // a class may be placed next, so placed members always form a prefix.
  const classOf = new Int32Array(operationCount).fill(-1);
  const classMembers: number[][] = [];
  if (model.inputKey !== undefined) {
    const classByKey = new Map<string, number>();
    const unknownByCallNode = [...Array(operationCount).keys()].filter((op) => !known[op]).sort((a, b) => callNode[a]! - callNode[b]!);
    for (const op of unknownByCallNode) {
      const key = model.inputKey(operations[op]!.input);
      let index = classByKey.get(key);
      if (index === undefined) {
        classByKey.set(key, (index = classMembers.length));
        classMembers.push([]);
      }
      classOf[op] = index;
      classMembers[index]!.push(op);
    }
  }
  const classPlaced = new Int32Array(classMembers.length);
  const isTurnInClass = (op: number): boolean => {
    const index = classOf[op]!;
    return index < 0 || classMembers[index]![classPlaced[index]!] === op;
  };

  // The node of the first return in the current list (or past the end).
  const windowEndNode = (): number => {
    let node = next[HEAD]!;
    while (node !== END && nodeIsCall[node]) node = next[node]!;
    return node === END ? nodeOperation.length : node;
  };

  // The stack also records how each operation was chosen, to resume there,
  // and whether it was placed as a forced move (9), which has no siblings.
  const stackPass = new Uint8Array(operationCount);
  const stackCursor = new Int32Array(operationCount);
  const stackForced = new Uint8Array(operationCount);

  // 9. A read-only candidate (Model.isReadOnly) that applies now can be
  // moved to the front of any linearization from here, so it is placed at
  // once, and if that fails, this configuration fails: its siblings need not
  // be tried.
  const readOnly = new Uint8Array(operationCount);
  if (model.isReadOnly !== undefined) {
    for (let op = 0; op < operationCount; op++) {
      const { input, output } = operations[op]!;
      readOnly[op] = output !== undefined && model.isReadOnly(input, output) ? 1 : 0;
    }
  }
  const findForcedCandidate = (): number => {
    for (let node = next[HEAD]!; node !== END && nodeIsCall[node]; node = next[node]!) {
      const k = nodeOperation[node]!;
      if (!readOnly[k]) continue;
      const successors = model.step(state, operations[k]!.input, operations[k]!.output);
      if (successors.length === 1 && model.equal(successors[0]!, state)) return k;
    }
    return -1;
  };

  // Cursor: the pass (0 = known candidates in the window, 1 = unknown ones,
  // 2 = followers of the unknown operation on top), the node (passes 0, 1)
  // or index into the followers (pass 2), and the first successor to try.
  let node = next[HEAD]!;
  let pass = 0;
  let cursor = 0;
  let windowEnd = 0;
  let alternative = 0;
  let steps = 0;

  // 3. Places `op` (its bit already set in `placed`) with successor number
  // `alternative`, and moves the cursor to the new configuration. Returns
  // true when every known operation is placed (6. success).
  const push = (op: number, chosen: number, successor: State, successorPlacedHash: number, forced: boolean): boolean => {
    stackOperation[depth] = op;
    stackAlternative[depth] = chosen;
    stackPass[depth] = pass;
    stackCursor[depth] = cursor;
    stackForced[depth] = forced ? 1 : 0;
    stackState.push(state);
    depth++;
    state = successor;
    placedHash = successorPlacedHash;
    lift(op);
    for (const enabler of enablersOf[op] ?? []) unplacedEnablees[enabler]!--;
    if (classOf[op]! >= 0) classPlaced[classOf[op]!]!++;
    node = next[HEAD]!;
    pass = 0;
    alternative = 0;
    if (!known[op]) return false;
    knownPlaced++;
    recordBest();
    return --knownRemaining === 0;
  };
  // True on arriving at a configuration not seen before; false when resuming.
  let fresh = true;
  // The current configuration is known to fail: backtrack.
  let failed = false;

  for (;;) {
    const afterUnknown = lazy !== undefined && depth > 0 && !known[stackOperation[depth - 1]!];
    let op = -1;
    let backtrack = false;
    if (fresh) {
      fresh = false;
      // 9. (Not right after a lazily placed unknown operation, where only
      // operations it enabled may follow.)
      const forced = reduceStatePreserving && !afterUnknown ? findForcedCandidate() : -1;
      if (forced >= 0) {
        if (++steps > stepBudget) return { kind: 'budget-exhausted', steps: stepBudget };
        placed[forced >>> 5]! |= 1 << (forced & 31);
        const forcedPlacedHash = placedHash ^ zobrist[forced]!;
        if (cache.addIfAbsent(forcedPlacedHash, placed, state, -1, undefined)) {
          if (push(forced, 0, state, forcedPlacedHash, true)) return { kind: 'linearizable', steps };
          fresh = true;
          continue;
        }
        placed[forced >>> 5]! &= ~(1 << (forced & 31));
        failed = true; // seen before, so it failed then
      }
    }
    if (failed) {
      failed = false;
      backtrack = true;
    } else if (pass === 2) {
      const candidates = followers[stackOperation[depth - 1]!]!;
      if (cursor >= candidates.length) {
        backtrack = true;
        op = -1;
      } else {
        op = candidates[cursor]!;
        if (
          (placed[op >>> 5]! & (1 << (op & 31))) !== 0 ||
          callNode[op]! > windowEnd ||
          !isTurnInClass(op) ||
          (retirement && (unplacedEnablees[op] === 0 || !mayEnableInWindow(op)))
        ) {
          cursor++;
          alternative = 0;
          continue;
        }
      }
    } else if (node === END || !nodeIsCall[node]) {
      // End of the candidate window (2).
      if (pass === 0) {
        if (afterUnknown) {
          pass = 2;
          cursor = 0;
          windowEnd = node === END ? nodeOperation.length : node;
          findBlockedInWindow();
        } else {
          pass = 1;
          node = next[HEAD]!;
          findBlockedInWindow();
        }
        alternative = 0;
        continue;
      }
      backtrack = true;
      op = -1;
    } else {
      op = nodeOperation[node]!;
      // Pass 0 takes known operations, pass 1 unknown ones. 7: right after an
      // unknown operation, only known ones it enabled (pass 0) or its
      // followers (pass 2); otherwise only unknown ones not yet retired.
      const skip =
        (known[op] === 1) !== (pass === 0) ||
        (pass === 0 &&
          afterUnknown &&
          ((retirement && !mayEnableBit(stackOperation[depth - 1]!, op)) ||
            model.step(stackState[depth - 1]!, operations[op]!.input, operations[op]!.output).length > 0)) ||
        (pass === 1 && (!isTurnInClass(op) || (retirement && (unplacedEnablees[op] === 0 || !mayEnableInWindow(op)))));
      if (skip) {
        node = next[node]!;
        alternative = 0;
        continue;
      }
    }

    if (backtrack) {
      // 4. Backtrack.
      if (depth === 0) {
        return { kind: 'not-linearizable', steps, explanation: explain(model, reported, bestPrefix, bestState, list) };
      }
      if (++steps > stepBudget) return { kind: 'budget-exhausted', steps: stepBudget };
      depth--;
      const popped = stackOperation[depth]!;
      state = stackState[depth]!;
      stackState.length = depth;
      placed[popped >>> 5]! &= ~(1 << (popped & 31));
      placedHash ^= zobrist[popped]!;
      unlift(popped);
      for (const enabler of enablersOf[popped] ?? []) unplacedEnablees[enabler]!++;
      if (classOf[popped]! >= 0) classPlaced[classOf[popped]!]!--;
      if (known[popped]) {
        knownRemaining++;
        knownPlaced--;
      }
      if (stackForced[depth]) {
        failed = true;
        continue;
      }
      pass = stackPass[depth]!;
      alternative = stackAlternative[depth]! + 1;
      if (pass === 2) {
        cursor = stackCursor[depth]!;
        windowEnd = windowEndNode();
        findBlockedInWindow();
      } else {
        node = callNode[popped]!;
        if (pass === 1) findBlockedInWindow();
      }
      continue;
    }

    if (++steps > stepBudget) return { kind: 'budget-exhausted', steps: stepBudget };
    const operation = operations[op]!;
    const successors = model.step(state, operation.input, operation.output);
    let moved = false;
    for (let a = alternative; a < successors.length; a++) {
      const successor = successors[a]!;
      if (!known[op] && model.equal(successor, state)) continue;
      // 5. Memoization: mark op placed, look up (placed, successor).
      placed[op >>> 5]! |= 1 << (op & 31);
      const successorPlacedHash = placedHash ^ zobrist[op]!;
      // Under lazy placement, what may follow a just-placed unknown operation
      // depends on which one it was and on the state before it, so both
      // join the key.
      const lazyContext = lazy !== undefined && !known[op];
      if (cache.addIfAbsent(successorPlacedHash, placed, successor, lazyContext ? op : -1, lazyContext ? state : undefined)) {
        if (push(op, a, successor, successorPlacedHash, false)) return { kind: 'linearizable', steps };
        fresh = true;
        moved = true;
        break;
      }
      placed[op >>> 5]! &= ~(1 << (op & 31));
    }
    if (!moved) {
      if (pass === 2) cursor++;
      else node = next[node]!;
      alternative = 0;
    }
  }
}

const HEAD = 0;
const END = -1;

interface NodeList {
  readonly next: Int32Array;
  readonly prev: Int32Array;
  readonly nodeOperation: Int32Array;
  readonly nodeIsCall: Uint8Array;
  readonly callNode: Int32Array;
  /** END for operations with unknown outcome. */
  readonly returnNode: Int32Array;
}

function buildNodeList<Input, Output>(operations: readonly HistoryOperation<Input, Output>[]): NodeList {
  interface Event {
    time: number;
    isCall: boolean;
    operation: number;
  }
  const events: Event[] = [];
  operations.forEach((operation, index) => {
    events.push({ time: operation.call, isCall: true, operation: index });
    if (operation.return !== undefined) events.push({ time: operation.return, isCall: false, operation: index });
  });
  // Calls before returns at equal times: equal timestamps overlap (see header).
  events.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall) || a.operation - b.operation);
  const size = events.length + 1;
  const list: NodeList = {
    next: new Int32Array(size),
    prev: new Int32Array(size),
    nodeOperation: new Int32Array(size),
    nodeIsCall: new Uint8Array(size),
    callNode: new Int32Array(operations.length),
    returnNode: new Int32Array(operations.length).fill(END),
  };
  for (let node = 0; node < size; node++) {
    list.next[node] = node + 1 < size ? node + 1 : END;
    list.prev[node] = node - 1;
  }
  events.forEach((event, index) => {
    const node = index + 1;
    list.nodeOperation[node] = event.operation;
    list.nodeIsCall[node] = event.isCall ? 1 : 0;
    if (event.isCall) list.callNode[event.operation] = node;
    else list.returnNode[event.operation] = node;
  });
  return list;
}

function explain<State, Input, Output>(
  model: Model<State, Input, Output>,
  operations: readonly HistoryOperation<Input, Output>[],
  prefix: readonly number[],
  stateAfterPrefix: State,
  list: NodeList,
): string {
  const known = operations.filter((operation) => operation.return !== undefined).length;
  const placedKnown = prefix.filter((op) => operations[op]!.return !== undefined).length;
  // The operation that forced the backtrack from the best prefix: the unplaced
  // known operation that completes first.
  const inPrefix = new Set(prefix);
  let blocker: number | undefined;
  for (let node = 1; node < list.nodeOperation.length; node++) {
    const op = list.nodeOperation[node]!;
    if (!list.nodeIsCall[node] && !inPrefix.has(op)) {
      blocker = op;
      break;
    }
  }
  const lastPlaced = prefix.length > 0 ? describeOne(model, operations[prefix[prefix.length - 1]!]!) : 'nothing';
  const stuck = blocker === undefined ? 'an unknown operation' : describeOne(model, operations[blocker]!);
  return (
    `no linearization: the longest linearizable prefix places ${placedKnown} of ${known} completed operations ` +
    `(last: ${lastPlaced}; state then ${model.describeState(stateAfterPrefix)}), ` +
    `and no order of the remaining ones lets ${stuck} take effect before it returned`
  );
}

function describeOne<State, Input, Output>(model: Model<State, Input, Output>, operation: HistoryOperation<Input, Output>): string {
  const returned = operation.return === undefined ? '?' : String(operation.return);
  return `client ${operation.clientId} ${model.describeOperation(operation.input, operation.output)} [${operation.call}, ${returned}]`;
}

/**
 * Hash set of (placed-operations bitset, model state[, lazy context])
 * configurations. Buckets are keyed by a 32-bit hash and chained; equality is
 * exact (bitset words and `model.equal`), so hash collisions cost time, never
 * correctness. Entries live in flat arrays (bitsets in one growing arena)
 * because allocating a small typed array per entry dominated the run time.
 * At most one entry is added per step, and none past `bytesMax` (estimated).
 */
class StateCache<State> {
  /** Hash key -> index of the newest entry with that key. */
  private readonly buckets = new Map<number, number>();
  private readonly entriesMax: number;
  private entries = 0;
  private capacity = 0;
  private bits = new Uint32Array(0);
  private chainNext = new Int32Array(0);
  private contextOperation = new Int32Array(0);
  private readonly states: State[] = [];
  private readonly contextBefore: (State | undefined)[] = [];

  constructor(
    private readonly model: Pick<Model<State, unknown, unknown>, 'equal' | 'hash'>,
    private readonly words: number,
    bytesMax: number,
  ) {
    // Rough per-entry cost: the bitset, the flat arrays, a Map slot.
    this.entriesMax = Math.floor(bytesMax / (64 + 4 * words));
  }

  /**
   * Adds the configuration and returns true, or returns false if it was
   * present. `contextOperation` >= 0 (after a lazily placed unknown
   * operation: which one; `contextBefore` is the state before it) is part of
   * the configuration; -1 means no context.
   */
  addIfAbsent(placedHash: number, placed: Uint32Array, state: State, contextOperation: number, contextBefore: State | undefined): boolean {
    const { model, words } = this;
    let key = (placedHash ^ Math.imul(model.hash(state) | 0, 0x9e3779b1)) | 0;
    if (contextOperation >= 0) {
      key = (key ^ Math.imul(model.hash(contextBefore as State) | 0x1, 0x85ebca77) ^ mix32(contextOperation + 0x27d4eb2f)) | 0;
    }
    // Keep keys within 30 bits: V8 stores those as small integers, larger ones
    // as heap numbers, which made every lookup allocate.
    key &= 0x3fffffff;
    const head = this.buckets.get(key);
    for (let entry = head ?? -1; entry >= 0; entry = this.chainNext[entry]!) {
      if (this.contextOperation[entry] !== contextOperation) continue;
      let same = true;
      const base = entry * words;
      for (let i = 0; i < words; i++) {
        if (this.bits[base + i] !== placed[i]) {
          same = false;
          break;
        }
      }
      if (!same || !model.equal(this.states[entry]!, state)) continue;
      if (contextOperation >= 0 && !model.equal(this.contextBefore[entry] as State, contextBefore as State)) continue;
      return false;
    }
    if (this.entries < this.entriesMax) {
      if (this.entries === this.capacity) this.grow();
      const entry = this.entries++;
      this.bits.set(placed, entry * words);
      this.chainNext[entry] = head ?? -1;
      this.contextOperation[entry] = contextOperation;
      this.states.push(state);
      this.contextBefore.push(contextBefore);
      this.buckets.set(key, entry);
    }
    return true;
  }

  private grow(): void {
    const capacity = Math.min(this.entriesMax, Math.max(1024, this.capacity * 2));
    const bits = new Uint32Array(capacity * this.words);
    bits.set(this.bits);
    this.bits = bits;
    const chainNext = new Int32Array(capacity);
    chainNext.set(this.chainNext);
    this.chainNext = chainNext;
    const contextOperation = new Int32Array(capacity);
    contextOperation.set(this.contextOperation);
    this.contextOperation = contextOperation;
    this.capacity = capacity;
  }
}

/** murmur3's 32-bit finalizer: a fixed pseudo-random word per integer. */
function mix32(value: number): number {
  let h = value | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
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
