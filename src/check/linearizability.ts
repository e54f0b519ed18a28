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
import { assert, unreachable } from '../util/assert.js';
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
 *   cas expected, when no failed cas completed after the write's call.
 *   Proof: take a linearization that places such a write u; remove u. Until
 *   the next write, the operations placed after u saw u's value, so none of
 *   them is a completed get or a cas expecting it (there are none), nor a
 *   failed cas (none can follow u): they are valid without u too, and after
 *   the next write nothing differs. Dropping them keeps histories with many
 *   timeouts cheap to check.
 */
export const kvModel: Model<KvState, KvInput, KvOutput> = {
  partition(history: readonly HistoryOperation<KvInput, KvOutput>[]): Partition<KvInput, KvOutput>[] {
    const byKey = new Map<string, HistoryOperation<KvInput, KvOutput>[]>();
    for (const operation of history) {
      let list = byKey.get(operation.input.key);
      if (list === undefined) byKey.set(operation.input.key, (list = []));
      list.push(operation);
    }
    return [...byKey].map(([key, operations]) => ({ label: key, operations: dropUnobservableUnknowns(operations) }));
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
  lazyUnknownPlacement: { isBlindWrite: (input) => input.kind === 'put' || input.kind === 'delete' },
  equal: (a, b) => a === b,
  hash: (state) => (state === null ? 0x6b43a9b5 : hashString(state)),
  describeOperation: describeKvOperation,
  describeState: (state) => (state === null ? 'absent' : JSON.stringify(state)),
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
 * `[    12,     15] client 3  put("k", "v") -> ok`.
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

/** Applies the dropping rules documented on `kvModel` to one key's operations. */
function dropUnobservableUnknowns(
  operations: readonly HistoryOperation<KvInput, KvOutput>[],
): HistoryOperation<KvInput, KvOutput>[] {
  // Values are compared as strings with a marker for absent (null).
  const ABSENT = '\u0000absent';
  const observed = new Set<string>();
  let lastFailedCasReturn = Number.NEGATIVE_INFINITY;
  for (const { input, output, return: returned } of operations) {
    if (input.kind === 'get' && output?.kind === 'get') observed.add(output.value ?? ABSENT);
    if (input.kind === 'cas') {
      observed.add(input.expected ?? ABSENT);
      if (output?.kind === 'cas' && !output.ok) lastFailedCasReturn = Math.max(lastFailedCasReturn, returned!);
    }
  }
  return operations.filter(({ input, output, call }) => {
    if (output !== undefined) return true;
    if (input.kind === 'get') return false;
    const written = input.kind === 'delete' ? ABSENT : input.value;
    return observed.has(written) || lastFailedCasReturn >= call;
  });
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
