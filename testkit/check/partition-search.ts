/**
 * The search over one partition: Wing & Gong's depth-first search with Lowe's
 * memoization and the reductions of search.ts's walk-through (steps 1-9,
 * documented on `searchPartition`). One `PartitionSearch` runs once; its
 * fields are the search's whole state, so each method below is one move of
 * the walk-through and can be read on its own:
 *   - `forcedMove`      step 9: place an applicable read-only candidate at once
 *   - `selectCandidate` steps 2, 7, 8: the next operation to try, or BACKTRACK
 *   - `attempt`         steps 3, 5: apply it, memoize, push
 *   - `backtrack`       step 4: pop and resume where the popped one was chosen
 */
import { END, EventList, HEAD } from './event-list.js';
import { InterchangeClasses, LazyPlacementTables } from './reductions.js';
import type { HistoryOperation, Model, PartitionOutcome } from './search.js';
import { StateCache, mix32 } from './state-cache.js';

/** `selectCandidate`'s answer when the current configuration has no candidate left. */
const BACKTRACK = -1;

/** What one move of the search leads to. */
const enum Progress {
  /** Keep searching. */
  Continue,
  /** Every known operation is placed (step 6). */
  Linearizable,
  /** Backtracked past the root: no linearization exists. */
  NotLinearizable,
  /** The step budget ran out first. */
  BudgetExhausted,
}

/**
 * Pass 0 tries the known candidates in the window, pass 1 the unknown ones,
 * pass 2 (right after a lazily placed unknown operation, step 7) only that
 * operation's followers.
 */
type Pass = 0 | 1 | 2;

export class PartitionSearch<State, Input, Output> {
  private readonly list: EventList;
  /** 1 when the operation's outcome is known (it has a return node). */
  private readonly known: Uint8Array;
  /** 1 when the operation is read-only with its known output (step 9). */
  private readonly readOnly: Uint8Array;
  /** Zobrist word per operation: `placedHash` is the XOR over placed ones (step 5). */
  private readonly zobrist: Int32Array;
  private readonly lazy: boolean;
  private readonly tables: LazyPlacementTables;
  private readonly classes: InterchangeClasses;
  private readonly cache: StateCache<State>;
  /** Bitset of placed operations. */
  private readonly placed: Uint32Array;
  private placedHash = 0;
  private state: State;
  private knownRemaining = 0;
  private steps = 0;

  // The stack of placed operations: which one, which successor, the state
  // before it, and how it was chosen (to resume there; forced moves, step 9,
  // have no siblings).
  private depth = 0;
  private readonly stackOperation: Int32Array;
  private readonly stackAlternative: Int32Array;
  private readonly stackPass: Uint8Array;
  private readonly stackCursor: Int32Array;
  private readonly stackForced: Uint8Array;
  private readonly stackState: State[] = [];

  // The cursor: the pass, the node (passes 0, 1) or index into the followers
  // (pass 2), the window's end (pass 2), and the first successor to try.
  private pass: Pass = 0;
  private node: number;
  private cursor = 0;
  private windowEnd = 0;
  private alternative = 0;
  /** True on arriving at a configuration not seen before; false when resuming. */
  private fresh = true;
  /** The current configuration is known to fail: backtrack. */
  private failed = false;

  /**
   * The candidates in the current window that cannot take effect in the
   * current state: the only ones an unknown operation placed now could help
   * (step 7). Computed when pass 1 or 2 starts or resumes.
   */
  private readonly blockedInWindow: number[] = [];

  // The longest prefix of known operations placed, for the failure explanation.
  private knownPlaced = 0;
  private bestKnownPlaced = -1;
  private bestPrefix: number[] = [];
  private bestState: State;

  constructor(
    private readonly model: Model<State, Input, Output>,
    private readonly operations: readonly HistoryOperation<Input, Output>[],
    private readonly stepBudget: number,
    cacheBytesMax: number,
    private readonly reduceStatePreserving: boolean,
    /** The operations as the client saw them, index-aligned with `operations` (for the explanation). */
    private readonly reported: readonly HistoryOperation<Input, Output>[],
  ) {
    const operationCount = operations.length;
    this.list = new EventList(operations);
    this.known = new Uint8Array(operationCount);
    this.readOnly = new Uint8Array(operationCount);
    this.zobrist = new Int32Array(operationCount);
    const blindWrite = new Uint8Array(operationCount);
    const lazy = model.lazyUnknownPlacement;
    for (let op = 0; op < operationCount; op++) {
      const { input, output } = operations[op]!;
      this.known[op] = output === undefined ? 0 : 1;
      if (output !== undefined) this.knownRemaining++;
      this.readOnly[op] = output !== undefined && model.isReadOnly?.(input, output) === true ? 1 : 0;
      blindWrite[op] = lazy?.isBlindWrite(input) === true ? 1 : 0;
      this.zobrist[op] = mix32(op + 0x51ed27);
    }
    this.lazy = lazy !== undefined;
    this.tables = new LazyPlacementTables(model, operations, this.known, blindWrite, this.list.callNode);
    this.classes = new InterchangeClasses(model, operations, this.known, this.list.callNode);
    const words = Math.ceil(operationCount / 32);
    this.cache = new StateCache<State>(model, words, cacheBytesMax);
    this.placed = new Uint32Array(words);
    this.stackOperation = new Int32Array(operationCount);
    this.stackAlternative = new Int32Array(operationCount);
    this.stackPass = new Uint8Array(operationCount);
    this.stackCursor = new Int32Array(operationCount);
    this.stackForced = new Uint8Array(operationCount);
    this.state = model.init();
    this.bestState = this.state;
    this.node = this.list.next[HEAD]!;
    this.recordBest();
  }

  /** Runs the search to a verdict; call once. */
  run(): PartitionOutcome {
    if (this.knownRemaining === 0) return { kind: 'linearizable', steps: 0 };
    let progress = Progress.Continue;
    while (progress === Progress.Continue) progress = this.move();
    switch (progress) {
      case Progress.Linearizable:
        return { kind: 'linearizable', steps: this.steps };
      case Progress.BudgetExhausted:
        return { kind: 'budget-exhausted', steps: this.stepBudget };
      default:
        return { kind: 'not-linearizable', steps: this.steps, explanation: this.explain() };
    }
  }

  /** One move: a forced placement, an attempt at a candidate, or a backtrack. */
  private move(): Progress {
    if (this.fresh) {
      this.fresh = false;
      const forced = this.forcedMove();
      if (forced !== undefined) return forced;
    }
    const op = this.failed ? BACKTRACK : this.selectCandidate();
    this.failed = false;
    return op === BACKTRACK ? this.backtrack() : this.attempt(op);
  }

  /**
   * Step 9: a read-only candidate that applies now can be moved to the front
   * of any linearization from here, so it is placed at once, and if that
   * configuration was seen before (so it failed then), this one fails: its
   * siblings need not be tried. Not right after a lazily placed unknown
   * operation, where only operations it enabled may follow (step 7).
   * Returns undefined when there is no forced move (or it failed: `failed` is set).
   */
  private forcedMove(): Progress | undefined {
    if (!this.reduceStatePreserving || this.afterUnknown()) return undefined;
    const forced = this.findForcedCandidate();
    if (forced < 0) return undefined;
    if (++this.steps > this.stepBudget) return Progress.BudgetExhausted;
    this.setPlaced(forced, true);
    const forcedPlacedHash = this.placedHash ^ this.zobrist[forced]!;
    if (this.cache.addIfAbsent(forcedPlacedHash, this.placed, this.state, -1, undefined)) {
      return this.push(forced, 0, this.state, forcedPlacedHash, true);
    }
    this.setPlaced(forced, false);
    this.failed = true;
    return undefined;
  }

  private findForcedCandidate(): number {
    const { next, nodeIsCall, nodeOperation } = this.list;
    for (let node = next[HEAD]!; node !== END && nodeIsCall[node]; node = next[node]!) {
      const k = nodeOperation[node]!;
      if (!this.readOnly[k]) continue;
      const successors = this.model.step(this.state, this.operations[k]!.input, this.operations[k]!.output);
      if (successors.length === 1 && this.model.equal(successors[0]!, this.state)) return k;
    }
    return -1;
  }

  /**
   * Steps 2, 7 and 8: advances the cursor to the next operation to try in the
   * current configuration and returns it, or BACKTRACK when none is left.
   */
  private selectCandidate(): number {
    const afterUnknown = this.afterUnknown();
    const { next, nodeIsCall, nodeOperation } = this.list;
    for (;;) {
      if (this.pass === 2) return this.nextFollower();
      if (this.node === END || !nodeIsCall[this.node]) {
        // End of the candidate window (step 2).
        if (this.pass === 1) return BACKTRACK;
        this.startUnknownPass(afterUnknown);
        continue;
      }
      const op = nodeOperation[this.node]!;
      if (!this.skipInWindow(op, afterUnknown)) return op;
      this.node = next[this.node]!;
      this.alternative = 0;
    }
  }

  /** Pass 0 is over: pass 2 right after a lazily placed unknown operation, else pass 1. */
  private startUnknownPass(afterUnknown: boolean): void {
    if (afterUnknown) {
      this.pass = 2;
      this.cursor = 0;
      this.windowEnd = this.node === END ? this.list.size : this.node;
    } else {
      this.pass = 1;
      this.node = this.list.next[HEAD]!;
    }
    this.findBlockedInWindow();
    this.alternative = 0;
  }

  /**
   * Whether the window candidate `op` is not for this pass. Pass 0 takes
   * known operations, pass 1 unknown ones. Step 7: right after an unknown
   * operation, pass 0 takes only known ones it enabled; pass 1 only unknown
   * ones not retired. Step 8: only an interchangeable operation's turn.
   */
  private skipInWindow(op: number, afterUnknown: boolean): boolean {
    if ((this.known[op] === 1) !== (this.pass === 0)) return true;
    if (this.pass === 0) return afterUnknown && !this.enabledByTop(op);
    return !this.classes.isTurn(op) || this.isRetired(op);
  }

  /** Whether known `op` could not be applied before the unknown operation on top of the stack (so that one enabled it). */
  private enabledByTop(op: number): boolean {
    const top = this.stackOperation[this.depth - 1]!;
    if (this.tables.retirement && !this.tables.mayEnableBit(top, op)) return false;
    const operation = this.operations[op]!;
    return this.model.step(this.stackState[this.depth - 1]!, operation.input, operation.output).length === 0;
  }

  /** Whether unknown `op` is not worth trying now: it can enable nothing unplaced, or nothing blocked in the window (step 7). */
  private isRetired(op: number): boolean {
    return this.tables.retirement && (this.tables.unplacedEnablees[op] === 0 || !this.mayEnableInWindow(op));
  }

  /** Pass 2: the next follower of the unknown operation on top that may be placed now, or BACKTRACK. */
  private nextFollower(): number {
    const candidates = this.tables.followers[this.stackOperation[this.depth - 1]!]!;
    for (; this.cursor < candidates.length; this.cursor++, this.alternative = 0) {
      const op = candidates[this.cursor]!;
      const eligible = !this.isPlaced(op) && this.list.callNode[op]! <= this.windowEnd && this.classes.isTurn(op) && !this.isRetired(op);
      if (eligible) return op;
    }
    return BACKTRACK;
  }

  /**
   * Steps 3 and 5: tries `op`'s successor states from `alternative` on; the
   * first whose configuration is new is pushed. When none is, the cursor moves
   * past `op`.
   */
  private attempt(op: number): Progress {
    if (++this.steps > this.stepBudget) return Progress.BudgetExhausted;
    const operation = this.operations[op]!;
    const successors = this.model.step(this.state, operation.input, operation.output);
    const unknown = !this.known[op];
    for (let a = this.alternative; a < successors.length; a++) {
      const successor = successors[a]!;
      // An effect-free unknown operation is the same as one that never happened.
      if (unknown && this.model.equal(successor, this.state)) continue;
      this.setPlaced(op, true);
      const successorPlacedHash = this.placedHash ^ this.zobrist[op]!;
      // Under lazy placement, what may follow a just-placed unknown operation
      // depends on which one it was and on the state before it, so both join the key.
      const lazyContext = this.lazy && unknown;
      if (this.cache.addIfAbsent(successorPlacedHash, this.placed, successor, lazyContext ? op : -1, lazyContext ? this.state : undefined)) {
        return this.push(op, a, successor, successorPlacedHash, false);
      }
      this.setPlaced(op, false);
    }
    if (this.pass === 2) this.cursor++;
    else this.node = this.list.next[this.node]!;
    this.alternative = 0;
    return Progress.Continue;
  }

  /**
   * Step 3: places `op` (its bit already set in `placed`) with successor
   * number `chosen`, and moves the cursor to the new configuration.
   */
  private push(op: number, chosen: number, successor: State, successorPlacedHash: number, forced: boolean): Progress {
    const depth = this.depth++;
    this.stackOperation[depth] = op;
    this.stackAlternative[depth] = chosen;
    this.stackPass[depth] = this.pass;
    this.stackCursor[depth] = this.cursor;
    this.stackForced[depth] = forced ? 1 : 0;
    this.stackState.push(this.state);
    this.state = successor;
    this.placedHash = successorPlacedHash;
    this.list.lift(op);
    this.tables.onPlaced(op);
    this.classes.onPlaced(op);
    this.node = this.list.next[HEAD]!;
    this.pass = 0;
    this.alternative = 0;
    this.fresh = true;
    if (!this.known[op]) return Progress.Continue;
    this.knownPlaced++;
    this.recordBest();
    return --this.knownRemaining === 0 ? Progress.Linearizable : Progress.Continue;
  }

  /** Step 4: pops the top operation and resumes the cursor just after where it was chosen. */
  private backtrack(): Progress {
    if (this.depth === 0) return Progress.NotLinearizable;
    if (++this.steps > this.stepBudget) return Progress.BudgetExhausted;
    const depth = --this.depth;
    const popped = this.stackOperation[depth]!;
    this.state = this.stackState[depth]!;
    this.stackState.length = depth;
    this.setPlaced(popped, false);
    this.placedHash ^= this.zobrist[popped]!;
    this.list.unlift(popped);
    this.tables.onUnplaced(popped);
    this.classes.onUnplaced(popped);
    if (this.known[popped]) {
      this.knownRemaining++;
      this.knownPlaced--;
    }
    if (this.stackForced[depth]) {
      this.failed = true;
      return Progress.Continue;
    }
    this.pass = this.stackPass[depth] as Pass;
    this.alternative = this.stackAlternative[depth]! + 1;
    if (this.pass === 2) {
      this.cursor = this.stackCursor[depth]!;
      this.windowEnd = this.list.windowEndNode();
      this.findBlockedInWindow();
    } else {
      this.node = this.list.callNode[popped]!;
      if (this.pass === 1) this.findBlockedInWindow();
    }
    return Progress.Continue;
  }

  /** Whether the operation on top of the stack is an unknown one placed lazily (step 7). */
  private afterUnknown(): boolean {
    return this.lazy && this.depth > 0 && !this.known[this.stackOperation[this.depth - 1]!];
  }

  private isPlaced(op: number): boolean {
    return (this.placed[op >>> 5]! & (1 << (op & 31))) !== 0;
  }

  private setPlaced(op: number, placed: boolean): void {
    if (placed) this.placed[op >>> 5]! |= 1 << (op & 31);
    else this.placed[op >>> 5]! &= ~(1 << (op & 31));
  }

  /** Step 7: collects `blockedInWindow` (only with retirement). */
  private findBlockedInWindow(): void {
    const blocked = this.blockedInWindow;
    blocked.length = 0;
    if (!this.tables.retirement) return;
    const { next, nodeIsCall, nodeOperation } = this.list;
    for (let node = next[HEAD]!; node !== END && nodeIsCall[node]; node = next[node]!) {
      const k = nodeOperation[node]!;
      const { input, output } = this.operations[k]!;
      const successors = this.model.step(this.state, input, output);
      const isBlocked = this.known[k] ? successors.length === 0 : successors.every((successor) => this.model.equal(successor, this.state));
      if (isBlocked) blocked.push(k);
    }
  }

  /** Whether placing unknown `u` now could enable a blocked candidate; if not, it leads nowhere (step 7). */
  private mayEnableInWindow(u: number): boolean {
    for (const k of this.blockedInWindow) if (k !== u && this.tables.mayEnableBit(u, k)) return true;
    return false;
  }

  /** One line for a failed search: the longest linearizable prefix found and the operation it got stuck on. */
  private explain(): string {
    const { model, reported, bestPrefix } = this;
    const known = reported.filter((operation) => operation.return !== undefined).length;
    const placedKnown = bestPrefix.filter((op) => reported[op]!.return !== undefined).length;
    // The operation that forced the backtrack from the best prefix: the unplaced known operation that completes first.
    const blocker = this.list.firstReturnNotIn(new Set(bestPrefix));
    const lastPlaced = bestPrefix.length > 0 ? describeOne(model, reported[bestPrefix[bestPrefix.length - 1]!]!) : 'nothing';
    const stuck = blocker === undefined ? 'an unknown operation' : describeOne(model, reported[blocker]!);
    return (
      `no linearization: the longest linearizable prefix places ${placedKnown} of ${known} completed operations ` +
      `(last: ${lastPlaced}; state then ${model.describeState(this.bestState)}), ` +
      `and no order of the remaining ones lets ${stuck} take effect before it returned`
    );
  }

  private recordBest(): void {
    if (this.knownPlaced <= this.bestKnownPlaced) return;
    this.bestKnownPlaced = this.knownPlaced;
    this.bestPrefix = Array.from(this.stackOperation.subarray(0, this.depth));
    this.bestState = this.state;
  }
}

function describeOne<State, Input, Output>(model: Model<State, Input, Output>, operation: HistoryOperation<Input, Output>): string {
  const returned = operation.return === undefined ? '?' : String(operation.return);
  return `client ${operation.clientId} ${model.describeOperation(operation.input, operation.output)} [${operation.call}, ${returned}]`;
}
