/**
 * Tables the search precomputes per partition for its reductions
 * (walk-through steps 7 and 8 in search.ts), and their bookkeeping as
 * operations are placed and unplaced. Each reduction's soundness argument is
 * in search.ts (`Model.lazyUnknownPlacement`, `Model.inputKey`).
 */
import type { HistoryOperation, Model } from './search.js';

/**
 * Step 7, lazy placement of unknown-outcome operations: which unknown
 * operations may directly follow each unknown one, and, with
 * `enablement` (retirement), which operations each unknown one may enable and
 * how many of those are still unplaced.
 */
export class LazyPlacementTables {
  /** Per unknown operation u: the unknown operations that may follow it, in call order (empty for known ones). */
  readonly followers: Int32Array[] = [];
  /** Per operation k: the unknown operations that may enable it (retirement only). */
  private readonly enablersOf: number[][] = [];
  /** Per unknown operation: how many operations it may enable are unplaced; 0 = retired. */
  readonly unplacedEnablees: Int32Array;
  /** True when the model gave `enablement`: retirement and the may-enable bits are in use. */
  readonly retirement: boolean;
  /** One bitset row per unknown operation u, bit k set when u may enable k; `enableeRow[u]` is its first word (-1 if none). */
  private readonly enableeRow: Int32Array;
  private readonly enableeBits: Uint32Array;

  /** Tables for `model`; with no `lazyUnknownPlacement` they are empty and every query is permissive. */
  constructor(
    model: Model<unknown, unknown, unknown>,
    operations: readonly HistoryOperation<unknown, unknown>[],
    known: Uint8Array,
    blindWrite: Uint8Array,
    callNode: Int32Array,
  ) {
    const operationCount = operations.length;
    const lazy = model.lazyUnknownPlacement;
    this.retirement = lazy?.enablement !== undefined;
    this.unplacedEnablees = new Int32Array(operationCount);
    this.enableeRow = new Int32Array(operationCount).fill(-1);
    const words = Math.ceil(operationCount / 32);
    let rows = 0;
    if (this.retirement) for (let op = 0; op < operationCount; op++) if (!known[op]) this.enableeRow[op] = words * rows++;
    this.enableeBits = new Uint32Array(words * rows);
    if (lazy === undefined) return;
    const mayEnable = lazy.enablement?.(operations) ?? ((): boolean => true);
    const unknownByCall = unknownOperationsByCall(known, callNode);
    for (let op = 0; op < operationCount; op++) this.enablersOf.push([]);
    for (let u = 0; u < operationCount; u++) {
      const list: number[] = [];
      if (!known[u]) {
        for (const k of unknownByCall) if (k !== u && !blindWrite[k] && mayEnable(u, k)) list.push(k);
        if (this.retirement) this.recordEnablees(u, operationCount, mayEnable);
      }
      this.followers.push(Int32Array.from(list));
    }
  }

  /** Whether unknown operation `u` may enable `k` (retirement only). */
  mayEnableBit(u: number, k: number): boolean {
    return (this.enableeBits[this.enableeRow[u]! + (k >>> 5)]! & (1 << (k & 31))) !== 0;
  }

  /** `op` was placed: the unknown operations that could enable it have one enablee fewer left. */
  onPlaced(op: number): void {
    for (const enabler of this.enablersOf[op] ?? []) this.unplacedEnablees[enabler]!--;
  }

  /** Inverse of `onPlaced`. */
  onUnplaced(op: number): void {
    for (const enabler of this.enablersOf[op] ?? []) this.unplacedEnablees[enabler]!++;
  }

  private recordEnablees(u: number, operationCount: number, mayEnable: (unknown: number, other: number) => boolean): void {
    for (let k = 0; k < operationCount; k++) {
      if (k === u || !mayEnable(u, k)) continue;
      this.enablersOf[k]!.push(u);
      this.unplacedEnablees[u]!++;
      this.enableeBits[this.enableeRow[u]! + (k >>> 5)]! |= 1 << (k & 31);
    }
  }
}

/**
 * Step 8, interchangeable unknown operations (`Model.inputKey`): per class,
 * its members in call order and how many are placed. Only the first unplaced
 * member of a class may be placed next, so placed members always form a prefix.
 */
export class InterchangeClasses {
  /** Class index per operation, -1 for operations in no class (known ones, or no `inputKey`). */
  private readonly classOf: Int32Array;
  private readonly members: number[][] = [];
  private readonly placedCount: Int32Array;

  constructor(
    model: Model<unknown, unknown, unknown>,
    operations: readonly HistoryOperation<unknown, unknown>[],
    known: Uint8Array,
    callNode: Int32Array,
  ) {
    this.classOf = new Int32Array(operations.length).fill(-1);
    if (model.inputKey !== undefined) {
      const classByKey = new Map<string, number>();
      for (const op of unknownOperationsByCall(known, callNode)) {
        const key = model.inputKey(operations[op]!.input);
        let index = classByKey.get(key);
        if (index === undefined) {
          classByKey.set(key, (index = this.members.length));
          this.members.push([]);
        }
        this.classOf[op] = index;
        this.members[index]!.push(op);
      }
    }
    this.placedCount = new Int32Array(this.members.length);
  }

  /** True when `op` may be placed now: it is in no class, or it is its class's first unplaced member. */
  isTurn(op: number): boolean {
    const index = this.classOf[op]!;
    return index < 0 || this.members[index]![this.placedCount[index]!] === op;
  }

  onPlaced(op: number): void {
    if (this.classOf[op]! >= 0) this.placedCount[this.classOf[op]!]!++;
  }

  onUnplaced(op: number): void {
    if (this.classOf[op]! >= 0) this.placedCount[this.classOf[op]!]!--;
  }
}

/** The unknown-outcome operations, in call order. */
function unknownOperationsByCall(known: Uint8Array, callNode: Int32Array): number[] {
  const unknown: number[] = [];
  for (let op = 0; op < known.length; op++) if (!known[op]) unknown.push(op);
  return unknown.sort((a, b) => callNode[a]! - callNode[b]!);
}
