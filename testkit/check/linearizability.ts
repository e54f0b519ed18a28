/**
 * Linearizability checker for the key-value model: get, put, delete and
 * compare-and-set on string keys and values, as clients of an impulse cluster
 * see them. The history is split per key (operations on different keys never
 * constrain each other) and each key is checked with the generic search in
 * `search.ts` (Wing & Gong with Lowe's memoization, as Porcupine does it).
 *
 * How to use: record every client operation with its invocation time, its
 * completion time and its result; operations that timed out or whose client
 * crashed get `return: undefined, output: undefined`. Then:
 *
 *     const result = checkKvLinearizability(history);
 *     if (result.verdict === 'not-linearizable') console.log(result.key, result.explanation,
 *       '\n' + formatOperations(result.operations));
 */
import { assert, unreachable } from '../../src/util/assert.js';
import {
  checkLinearizability,
  hashString,
  sortOperationsByCall,
  type HistoryOperation,
  type Model,
  type Partition,
} from './search.js';

/** What a client asked for. */
export type KvInput =
  | { kind: 'get'; key: string }
  | { kind: 'put'; key: string; value: string }
  | { kind: 'delete'; key: string }
  | { kind: 'cas'; key: string; expected: string | null; value: string }; // expected null = key must be absent

/** What the client was told. */
export type KvOutput =
  | { kind: 'get'; value: string | null } // null = absent
  | { kind: 'put' }
  | { kind: 'delete' }
  | { kind: 'cas'; ok: boolean };

/** One client operation; see `HistoryOperation` in search.ts for the time semantics. */
export interface Operation {
  clientId: number;
  input: KvInput;
  call: number; // invocation time (any monotonic unit)
  return: number | undefined; // completion time; undefined = outcome unknown (timed out, client crashed)
  output: KvOutput | undefined; // undefined iff return is undefined
}

/**
 * The verdict. `steps` is the search effort spent (deterministic).
 * - linearizable: `keys` partitions checked, `operations` = history length.
 * - not-linearizable: the failing key with the fewest operations, all of that
 *   key's checked operations (sorted by call), and a one-line explanation.
 * - unknown: the step budget ran out; `reason` names the key being checked.
 */
export type CheckResult =
  | { verdict: 'linearizable'; keys: number; operations: number; steps: number }
  | { verdict: 'not-linearizable'; key: string; operations: Operation[]; explanation: string; steps: number }
  | { verdict: 'unknown'; reason: string; steps: number };

/** State of one key: its value, or null when absent. */
export type KvState = string | null;

/**
 * The sequential specification of one key. `partition` groups by key and
 * drops operations with unknown outcome that cannot change the verdict:
 * - gets: a read nobody saw has no effect and constrains nothing;
 * - writes (put, delete, cas) of a value no completed get returned and no
 *   cas expected, unless a "needy" failed cas may follow the write (returned
 *   after its call). A failed cas is needy when its expected value may still
 *   be current when it runs: not every write of that value (nor the initial
 *   absent state, for null) is certainly overwritten by a completed write
 *   that was called after it returned and returned before the cas was called.
 *   Proof: take a linearization that places such a write u; remove u. Until
 *   the next write, the operations placed after u saw u's value, so none of
 *   them is a completed get or a cas expecting it (there are none); a failed
 *   cas there is not needy, so its expected value is not current without u
 *   either. They stay valid, and after the next write nothing differs.
 *   Dropping these keeps histories with many timeouts cheap to check.
 * It also replaces written values nobody read by one marker value
 * (`abstractUnreadValues`); reports show the original operations.
 */
export const kvModel: Model<KvState, KvInput, KvOutput> = {
  partition(history: readonly HistoryOperation<KvInput, KvOutput>[]): Partition<KvInput, KvOutput>[] {
    const byKey = new Map<string, HistoryOperation<KvInput, KvOutput>[]>();
    for (const operation of history) {
      let list = byKey.get(operation.input.key);
      if (list === undefined) byKey.set(operation.input.key, (list = []));
      list.push(operation);
    }
    return [...byKey].map(([key, operations]) => {
      const reported = dropUnobservableUnknowns(operations);
      return { label: key, operations: abstractUnreadValues(reported), reported };
    });
  },

  init: () => null,

  step(state: KvState, input: KvInput, output: KvOutput | undefined): readonly KvState[] {
    // Output kinds were matched to input kinds by checkKvLinearizability.
    switch (input.kind) {
      case 'get':
        if (output === undefined) return [state];
        return (output as { value: string | null }).value === state ? [state] : [];
      case 'put':
        return [input.value];
      case 'delete':
        return [null];
      case 'cas': {
        const matches = input.expected === state;
        if (output === undefined) return matches ? [input.value] : [state];
        if ((output as { ok: boolean }).ok) return matches ? [input.value] : [];
        return matches ? [] : [state];
      }
      default:
        return unreachable(input);
    }
  },

  // Sound for this model, case by case (u unknown, s -> x with x != s; k known,
  // applicable in s and in x): k put/delete overwrites u, so drop u; k get
  // would have to return both s and x, impossible; k successful cas would need
  // expected == s and == x, impossible; k failed cas leaves the state alone, so
  // k then u ends in x too. A put/delete right after u hides u entirely.
  lazyUnknownPlacement: {
    isBlindWrite: (input) => input.kind === 'put' || input.kind === 'delete',
    enablement: kvEnablement,
  },
  isReadOnly: (input, output) => input.kind === 'get' || (output.kind === 'cas' && !output.ok),
  inputKey: (input) => {
    switch (input.kind) {
      case 'get':
      case 'delete':
        return input.kind;
      case 'put':
        return `put\u0000${input.value}`;
      case 'cas':
        return `cas\u0000${input.expected === null ? '\u0001' : `=${input.expected}`}\u0000${input.value}`;
      default:
        return unreachable(input);
    }
  },
  equal: (a, b) => a === b,
  hash: (state) => (state === null ? 0x6b43a9b5 : hashString(state)),
  describeOperation: describeKvOperation,
  describeState: (state) => (state === null ? 'absent' : state.startsWith('\u0000unread') ? 'a value never read' : JSON.stringify(state)),
};

/**
 * Checks a key-value history for linearizability. Deterministic; spends at
 * most `options.stepBudget` search steps (default 2,000,000) over the whole
 * history and answers 'unknown' past that. Throws `AssertionError` on a
 * malformed history: return before call, output present without return (or
 * the reverse), or an output whose kind does not match its input.
 */
export function checkKvLinearizability(history: readonly Operation[], options?: { stepBudget?: number }): CheckResult {
  for (const operation of history) {
    assert(
      operation.output === undefined || operation.output.kind === operation.input.kind,
      'operation output kind does not match its input kind',
      operation,
    );
  }
  const result = checkLinearizability(kvModel, history, options);
  switch (result.verdict) {
    case 'linearizable':
      return { verdict: 'linearizable', keys: result.partitions, operations: result.operations, steps: result.steps };
    case 'not-linearizable':
      return {
        verdict: 'not-linearizable',
        key: result.partition,
        operations: result.operations as Operation[],
        explanation: result.explanation,
        steps: result.steps,
      };
    case 'unknown':
      return result;
    default:
      return unreachable(result);
  }
}

/**
 * Renders operations one per line, sorted by call time (then return time,
 * unknown last, then client), e.g.
 * `[12, 15] client 3   put("k", "v") -> ok` (times padded to one width).
 */
export function formatOperations(operations: readonly Operation[]): string {
  const sorted = sortOperationsByCall(operations);
  const width = Math.max(1, ...sorted.map((operation) => String(operation.return ?? operation.call).length));
  return sorted
    .map((operation) => {
      const call = String(operation.call).padStart(width);
      const returned = (operation.return === undefined ? '?' : String(operation.return)).padStart(width);
      const client = `client ${operation.clientId}`.padEnd(10);
      return `[${call}, ${returned}] ${client} ${describeKvOperation(operation.input, operation.output)}`;
    })
    .join('\n');
}

// Values are compared as strings, with a marker for absent (null).
const ABSENT = '\u0000absent';

/** The value an operation writes if it takes effect (ABSENT for delete); undefined for get. */
function writtenValue(input: KvInput): string | undefined {
  switch (input.kind) {
    case 'get':
      return undefined;
    case 'delete':
      return ABSENT;
    case 'put':
    case 'cas':
      return input.value;
    default:
      return unreachable(input);
  }
}

/** Facts about one key's operations used to drop and order timed-out ones. */
interface KeyAnalysis {
  /** Values some completed get returned or some cas expected. */
  readonly observed: ReadonlySet<string>;
  /** Whether a completed failed cas is "needy" (see `kvModel`). */
  isNeedyFailedCas(operation: HistoryOperation<KvInput, KvOutput>): boolean;
}

function analyzeKey(operations: readonly HistoryOperation<KvInput, KvOutput>[]): KeyAnalysis {
  const observed = new Set<string>();
  const writersByValue = new Map<string, HistoryOperation<KvInput, KvOutput>[]>();
  const knownWrites: { call: number; return: number }[] = [];
  for (const operation of operations) {
    const { input, output } = operation;
    if (input.kind === 'get') {
      if (output?.kind === 'get') observed.add(output.value ?? ABSENT);
      continue;
    }
    if (input.kind === 'cas') observed.add(input.expected ?? ABSENT);
    if (output?.kind === 'cas' && !output.ok) continue;
    const written = writtenValue(input)!;
    let writers = writersByValue.get(written);
    if (writers === undefined) writersByValue.set(written, (writers = []));
    writers.push(operation);
    if (operation.return !== undefined) knownWrites.push({ call: operation.call, return: operation.return });
  }

  // overwrittenBetween(a, b): some completed write certainly took effect after
  // time a and before time b (it was called after a and returned before b).
  knownWrites.sort((a, b) => a.call - b.call);
  const suffixMinReturn = new Float64Array(knownWrites.length + 1).fill(Number.POSITIVE_INFINITY);
  for (let i = knownWrites.length - 1; i >= 0; i--) suffixMinReturn[i] = Math.min(suffixMinReturn[i + 1]!, knownWrites[i]!.return);
  const overwrittenBetween = (after: number, before: number): boolean => {
    let low = 0;
    let high = knownWrites.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (knownWrites[middle]!.call > after) high = middle;
      else low = middle + 1;
    }
    return suffixMinReturn[low]! < before;
  };
  // Could the key still hold `value` when an operation called at `time` takes effect?
  const mayHold = (value: string, time: number): boolean => {
    if (value === ABSENT && !overwrittenBetween(Number.NEGATIVE_INFINITY, time)) return true; // the initial state
    for (const writer of writersByValue.get(value) ?? []) {
      if (writer.return === undefined || !overwrittenBetween(writer.return, time)) return true;
    }
    return false;
  };
  return {
    observed,
    isNeedyFailedCas: ({ input, output, call }) =>
      input.kind === 'cas' && output?.kind === 'cas' && !output.ok && mayHold(input.expected ?? ABSENT, call),
  };
}

/**
 * Replaces every written value that no get returned and no cas expected by
 * one fresh marker value. No operation can tell such values apart (a get
 * never returns one, a cas never expects one, a failed cas fails on each),
 * so the verdict is unchanged, while the search sees fewer distinct states
 * and can treat such timed-out writes as interchangeable (`inputKey`).
 */
function abstractUnreadValues(operations: readonly HistoryOperation<KvInput, KvOutput>[]): HistoryOperation<KvInput, KvOutput>[] {
  const { observed } = analyzeKey(operations);
  const values = new Set<string>();
  for (const { input } of operations) if (input.kind === 'put' || input.kind === 'cas') values.add(input.value);
  let marker = '\u0000unread';
  while (values.has(marker) || observed.has(marker)) marker += '\u0000';
  return operations.map((operation) => {
    const { input } = operation;
    if ((input.kind === 'put' || input.kind === 'cas') && !observed.has(input.value)) {
      return { ...operation, input: { ...input, value: marker } };
    }
    return operation;
  });
}

/** Applies the dropping rules documented on `kvModel` to one key's operations. */
function dropUnobservableUnknowns(
  operations: readonly HistoryOperation<KvInput, KvOutput>[],
): HistoryOperation<KvInput, KvOutput>[] {
  const analysis = analyzeKey(operations);
  // A needy failed cas needs some write to make it fail, possibly a timed-out
  // one: timed-out writes it may follow are kept.
  let lastNeedyFailedCasReturn = Number.NEGATIVE_INFINITY;
  for (const operation of operations) {
    if (analysis.isNeedyFailedCas(operation)) lastNeedyFailedCasReturn = Math.max(lastNeedyFailedCasReturn, operation.return!);
  }
  return operations.filter(({ input, output, call }) => {
    if (output !== undefined) return true;
    const written = writtenValue(input);
    if (written === undefined) return false;
    return analysis.observed.has(written) || lastNeedyFailedCasReturn >= call;
  });
}

/**
 * mayEnable(u, k) for one key: placing unknown u (writing v) right before k
 * can make k applicable only if k is a completed get returning v, a cas
 * expecting v (completed successfully, or unknown), or a needy completed
 * failed cas expecting something else. Puts and deletes always apply.
 */
function kvEnablement(operations: readonly HistoryOperation<KvInput, KvOutput>[]): (unknown: number, other: number) => boolean {
  const analysis = analyzeKey(operations);
  const needy = operations.map((operation) => analysis.isNeedyFailedCas(operation));
  return (unknown, other) => {
    const written = writtenValue(operations[unknown]!.input);
    if (written === undefined) return false;
    const { input, output } = operations[other]!;
    switch (input.kind) {
      case 'get':
        return output?.kind === 'get' && (output.value ?? ABSENT) === written;
      case 'put':
      case 'delete':
        return false;
      case 'cas': {
        const expected = input.expected ?? ABSENT;
        if (output?.kind === 'cas' && !output.ok) return needy[other]! && expected !== written;
        return expected === written;
      }
      default:
        return unreachable(input);
    }
  };
}

function describeKvOperation(input: KvInput, output: KvOutput | undefined): string {
  const key = JSON.stringify(input.key);
  let call: string;
  switch (input.kind) {
    case 'get':
      call = `get(${key})`;
      break;
    case 'put':
      call = `put(${key}, ${JSON.stringify(input.value)})`;
      break;
    case 'delete':
      call = `delete(${key})`;
      break;
    case 'cas':
      call = `cas(${key}, ${input.expected === null ? 'absent' : JSON.stringify(input.expected)} -> ${JSON.stringify(input.value)})`;
      break;
    default:
      return unreachable(input);
  }
  if (output === undefined) return `${call} -> unknown`;
  switch (output.kind) {
    case 'get':
      return `${call} -> ${output.value === null ? 'absent' : JSON.stringify(output.value)}`;
    case 'put':
    case 'delete':
      return `${call} -> ok`;
    case 'cas':
      return `${call} -> ${output.ok ? 'ok' : 'failed'}`;
    default:
      return unreachable(output);
  }
}
