/**
 * The checks of a chaos run, each a pure function of the history (and, for
 * convergence and recovery, of what the runner measured). A failed check
 * names the keys and the operations involved (by history index, so a reader
 * finds them in history.jsonl).
 *
 *   linearizable    register: the whole history, final reads included, is
 *                   linearizable (testkit/check, per key). Raft mode only;
 *                   a leaderless register gets causal-checks.ts instead.
 *   no-lost-writes  register: no acknowledged write is overwritten by
 *                   nothing — the final value of each key must come from a
 *                   write that did not finish before an acknowledged write
 *                   began, and exist at all if any write was acknowledged.
 *                   set: every acknowledged add is in the final read, and
 *                   nothing is there that nobody tried to add.
 *   bank-total      bank: every successful read of all accounts sums to the
 *                   opening total, with no negative balance.
 *   convergence     after healing, every replica's content digest is equal at
 *                   one applied index.
 *   recovery        after the final heal, a write succeeded within the bound.
 */
import { type KvInput, type KvOutput, type Operation, checkKvLinearizability } from '../check/linearizability.js';
import { checkCausalLostWrites, checkQuorumReads } from './causal-checks.js';
import type { HistoryOp } from './history.js';
import { BANK_ACCOUNTS, BANK_INITIAL_BALANCE, type WorkloadName } from './workloads.js';

export interface CheckOutcome {
  readonly name: string;
  readonly ok: boolean;
  readonly summary: string;
  /** What failed: keys and operations, one line each (at most DETAIL_LINES_MAX). */
  readonly details: readonly string[];
}

const DETAIL_LINES_MAX = 40;

export function formatOp(op: HistoryOp): string {
  const written = op.value === null || op.value === undefined ? '' : ` ${JSON.stringify(op.value)}`;
  const expected = op.expected !== undefined ? ` if ${JSON.stringify(op.expected)}` : op.supersedes !== undefined && op.supersedes.length > 0 ? ` over ${JSON.stringify(op.supersedes)}` : '';
  const out = op.op === 'get' || op.op === 'read' ? ` → ${JSON.stringify(op.out)}` : '';
  return `#${op.index} p${op.process} n${op.node} ${op.op} ${op.key}${written}${expected}${out} [${op.call}, ${op.ret ?? '?'}] ${op.status}${op.error !== undefined ? ` (${op.error})` : ''}`;
}

export function outcome(name: string, problems: string[], okSummary: string, failSummary: string): CheckOutcome {
  const ok = problems.length === 0;
  const details = problems.slice(0, DETAIL_LINES_MAX);
  if (problems.length > DETAIL_LINES_MAX) details.push(`… and ${problems.length - DETAIL_LINES_MAX} more`);
  return { name, ok, summary: ok ? okSummary : failSummary, details };
}

/** The register operations as the linearizability checker's input (failed ops dropped; a failed cas kept as "did not apply"). */
export function toCheckerOperations(history: readonly HistoryOp[]): { operations: Operation[]; origin: Map<Operation, HistoryOp> } {
  const operations: Operation[] = [];
  const origin = new Map<Operation, HistoryOp>();
  for (const op of history) {
    let input: KvInput;
    let output: KvOutput | undefined;
    if (op.op === 'get') {
      if (op.status !== 'ok') continue;
      input = { kind: 'get', key: op.key };
      output = { kind: 'get', value: op.out as string | null };
    } else if (op.op === 'put') {
      if (op.status === 'fail') continue;
      input = { kind: 'put', key: op.key, value: op.value as string };
      output = op.status === 'ok' ? { kind: 'put' } : undefined;
    } else if (op.op === 'cas') {
      const conditionFailed = op.status === 'fail' && op.error === 'IMPULSE_ERR_PRECONDITION_FAILED';
      if (op.status === 'fail' && !conditionFailed) continue;
      input = { kind: 'cas', key: op.key, expected: op.expected ?? null, value: op.value as string };
      output = op.status === 'unknown' ? undefined : { kind: 'cas', ok: op.status === 'ok' };
    } else continue;
    const operation: Operation = { clientId: op.process, input, call: op.call, return: output === undefined ? undefined : (op.ret ?? undefined), output };
    operations.push(operation);
    origin.set(operation, op);
  }
  return { operations, origin };
}

export function checkLinearizable(history: readonly HistoryOp[]): CheckOutcome {
  const { operations, origin } = toCheckerOperations(history);
  const result = checkKvLinearizability(operations);
  if (result.verdict === 'linearizable') return { name: 'linearizable', ok: true, summary: `linearizable: ${result.operations} operations on ${result.keys} keys`, details: [] };
  if (result.verdict === 'unknown') return { name: 'linearizable', ok: false, summary: `linearizability undecided: ${result.reason}`, details: [] };
  const lines = nearFailure(result.operations, result.explanation).map((operation) => {
    const op = origin.get(operation);
    return op !== undefined ? formatOp(op) : JSON.stringify(operation);
  });
  return outcome('linearizable', [`key ${result.key}: ${result.explanation}`, ...lines], '', `NOT linearizable on key ${result.key}: ${result.explanation}`);
}

/**
 * The operations of the failing key around the point where the search got
 * stuck (the explanation ends with the interval of the operation that could
 * not take effect): those that overlap the second before it, so a reader sees
 * the competing writes and reads rather than the key's first operations.
 */
function nearFailure(operations: readonly Operation[], explanation: string): Operation[] {
  const match = /\[([0-9.]+), ([0-9.]+|\?|undefined)\][^[]*$/.exec(explanation);
  if (match === null) return operations.slice(0, DETAIL_LINES_MAX);
  const call = Number(match[1]);
  const near = operations.filter((operation) => operation.call <= call + 0.05 && (operation.return === undefined || operation.return >= call - 1));
  return near.slice(-DETAIL_LINES_MAX + 1);
}

/** The final reads: the ok gets/reads issued after `finalFromS` (the runner marks where they begin). */
function finalReads(history: readonly HistoryOp[], finalFromS: number, kind: 'get' | 'read'): HistoryOp[] {
  return history.filter((op) => op.op === kind && op.status === 'ok' && op.call >= finalFromS);
}

export function checkRegisterLostWrites(history: readonly HistoryOp[], finalFromS: number): CheckOutcome {
  const problems: string[] = [];
  const writesByKey = new Map<string, HistoryOp[]>();
  for (const op of history) {
    if ((op.op === 'put' || op.op === 'cas') && op.status !== 'fail') {
      const list = writesByKey.get(op.key) ?? [];
      list.push(op);
      writesByKey.set(op.key, list);
    }
  }
  const finals = finalReads(history, finalFromS, 'get');
  const finalByKey = new Map(finals.map((op) => [op.key, op]));
  for (const [key, writes] of writesByKey) {
    const final = finalByKey.get(key);
    const acknowledged = writes.filter((write) => write.status === 'ok');
    if (final === undefined) {
      if (acknowledged.length > 0) problems.push(`key ${key}: no successful final read, so its ${acknowledged.length} acknowledged writes cannot be checked`);
      continue;
    }
    const value = final.out as string | null;
    if (value === null) {
      if (acknowledged.length > 0) problems.push(`key ${key}: absent at the end although ${acknowledged.length} writes were acknowledged, e.g. ${formatOp(acknowledged[acknowledged.length - 1]!)}; final read ${formatOp(final)}`);
      continue;
    }
    const writer = writes.find((write) => write.value === value);
    if (writer === undefined) {
      problems.push(`key ${key}: the final value ${JSON.stringify(value)} was never written by a write that may have happened; final read ${formatOp(final)}`);
      continue;
    }
    // An acknowledged write that began after the final value's write had finished must have overwritten it.
    const lost = acknowledged.filter((write) => write !== writer && writer.ret !== null && writer.ret < write.call);
    for (const write of lost) problems.push(`key ${key}: acknowledged write LOST: ${formatOp(write)}; the final value came from the earlier ${formatOp(writer)}`);
  }
  return outcome('no-lost-writes', problems, `no acknowledged write lost (${writesByKey.size} keys)`, `${problems.length} problems with acknowledged writes`);
}

export function checkSet(history: readonly HistoryOp[], finalFromS: number): CheckOutcome {
  const adds = history.filter((op) => op.op === 'add');
  const final = finalReads(history, finalFromS, 'read').at(-1);
  if (final === undefined) return outcome('no-lost-writes', ['the set was never read successfully at the end'], '', 'no final read of the set');
  const present = new Set(final.out as string[]);
  const problems: string[] = [];
  for (const add of adds) if (add.status === 'ok' && !present.has(add.value as string)) problems.push(`element ${String(add.value)} LOST: ${formatOp(add)}`);
  const attempted = new Set(adds.filter((add) => add.status !== 'fail').map((add) => add.value as string));
  for (const element of present) if (!attempted.has(element)) problems.push(`element ${element} present but never (possibly) added`);
  const ok = adds.filter((add) => add.status === 'ok').length;
  const unknownPresent = adds.filter((add) => add.status === 'unknown' && present.has(add.value as string)).length;
  return outcome('no-lost-writes', problems, `all ${ok} acknowledged adds present (${present.size} elements; ${unknownPresent} of unknown outcome made it)`, `${problems.length} lost or phantom elements`);
}

export function checkBank(history: readonly HistoryOp[]): CheckOutcome {
  const expected = BANK_ACCOUNTS * BANK_INITIAL_BALANCE;
  const problems: string[] = [];
  let reads = 0;
  for (const op of history) {
    if (op.op !== 'read' || op.status !== 'ok') continue;
    reads++;
    const balances = op.out as Record<string, number>;
    const total = Object.values(balances).reduce((sum, balance) => sum + balance, 0);
    const negative = Object.entries(balances).filter(([, balance]) => balance < 0);
    if (Object.keys(balances).length !== BANK_ACCOUNTS) problems.push(`read saw ${Object.keys(balances).length} of ${BANK_ACCOUNTS} accounts: ${formatOp(op)}`);
    else if (total !== expected) problems.push(`total ${total} instead of ${expected}: ${formatOp(op)}`);
    if (negative.length > 0) problems.push(`negative balance ${negative.map(([key, balance]) => `${key}=${balance}`).join(' ')}: ${formatOp(op)}`);
  }
  if (reads === 0) problems.push('no successful read of the accounts at all');
  return outcome('bank-total', problems, `total ${expected} in all ${reads} reads`, `${problems.length} reads broke the bank`);
}

/**
 * Which checks a workload gets in a replication mode: Raft's register is
 * linearizable; a leaderless register is causal (causal-checks.ts), its reads
 * checked against acknowledged puts when its quorums overlap (R + W > N, with
 * every member an owner so that no stand-in holds a write).
 */
export function checkHistory(workload: WorkloadName, history: readonly HistoryOp[], finalFromS: number, mode: 'raft' | { readonly leaderless: { readonly overlappingQuorums: boolean } }): CheckOutcome[] {
  switch (workload) {
    case 'register':
      if (mode !== 'raft') return [checkCausalLostWrites(history, finalFromS), ...(mode.leaderless.overlappingQuorums ? [checkQuorumReads(history)] : [])];
      return [checkLinearizable(history), checkRegisterLostWrites(history, finalFromS)];
    case 'set':
      return [checkSet(history, finalFromS)];
    case 'bank':
      return [checkBank(history)];
  }
}

export function checkConvergence(digests: ReadonlyMap<number, { appliedIndex: number; digest: string } | string>): CheckOutcome {
  const problems: string[] = [];
  const values = [...digests.entries()];
  for (const [node, digest] of values) if (typeof digest === 'string') problems.push(`node ${node}: ${digest}`);
  const settled = values.filter((entry): entry is [number, { appliedIndex: number; digest: string }] => typeof entry[1] !== 'string');
  const distinct = new Set(settled.map(([, digest]) => `${digest.appliedIndex}:${digest.digest}`));
  if (distinct.size > 1) problems.push(...settled.map(([node, digest]) => `node ${node}: applied ${digest.appliedIndex}, digest ${digest.digest}`));
  return outcome('convergence', problems, `all ${settled.length} replicas identical (digest ${settled[0]?.[1].digest.slice(0, 12) ?? '-'} at index ${settled[0]?.[1].appliedIndex ?? '-'})`, 'replicas differ or did not settle');
}

export function checkRecovery(recoveryMs: number | undefined, boundMs: number): CheckOutcome {
  if (recoveryMs === undefined) return outcome('recovery', [`no write succeeded within ${boundMs} ms of the final heal`], '', `no write within ${boundMs} ms of the final heal`);
  return outcome('recovery', recoveryMs <= boundMs ? [] : [`first write ${Math.round(recoveryMs)} ms after the final heal (bound ${boundMs} ms)`], `first write ${Math.round(recoveryMs)} ms after the final heal (bound ${boundMs} ms)`, `recovery took ${Math.round(recoveryMs)} ms (bound ${boundMs} ms)`);
}
