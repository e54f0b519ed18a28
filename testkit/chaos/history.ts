/**
 * The history of a chaos run: one JSON object per operation and line
 * (`history.jsonl`), in a form other checkers can read:
 *
 *   {"index":12,"process":3,"op":"cas","key":"r/1","value":"3-17","expected":"0-4","out":null,
 *    "call":4.213,"ret":4.260,"status":"ok","node":2}
 *
 *   op        put | get | cas | del | add (set element) | read (a whole set or the bank) | transfer
 *   key       the key (for transfer and read: the workload's name for what they cover)
 *   value     what was written (null for reads; a transfer's {from,to,amount})
 *   expected  a cas's expected value (null: the key must be absent)
 *   supersedes  leaderless puts: the values the put's causal context covers ([] when blind)
 *   out       what a read returned (null when absent; leaderless: every sibling, sorted, [] when
 *             absent); for cas, whether it applied
 *   call,ret  seconds since the start of the workload; ret null when the outcome is unknown
 *   status    ok | fail (it certainly did not happen) | unknown (it may have happened, or may still)
 *   node      the member (node id) the client sent it to
 *   error     for fail and unknown: the error code
 *
 * Recording rules (Jepsen's): a timeout, a connection that broke after the
 * request left, or IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN is `unknown`, never
 * `fail`; a refused connection, a 503 (no leader, unavailable, overloaded) or
 * a failed condition (412) is `fail`. A read that failed is `fail` too (it
 * changed nothing). A process whose write ended `unknown` is retired and its
 * worker continues as a new process (a new client session), because the old
 * one may still have that write in flight.
 */
import type { ErrorCode } from '../../src/errors.js';
import { ImpulseError } from '../../src/errors.js';

export type OpKind = 'put' | 'get' | 'cas' | 'del' | 'add' | 'read' | 'transfer';
export type OpStatus = 'ok' | 'fail' | 'unknown';

export interface HistoryOp {
  readonly index: number;
  readonly process: number;
  readonly op: OpKind;
  readonly key: string;
  readonly value: unknown;
  readonly expected?: string | null;
  /** Leaderless register puts: the values of the read whose causal context the put sent ([] for a blind put): what it replaces. */
  readonly supersedes?: readonly string[];
  readonly out: unknown;
  readonly call: number;
  readonly ret: number | null;
  readonly status: OpStatus;
  readonly node: number;
  readonly error?: string;
}

/** Error codes after which a write certainly did not happen. */
const CERTAIN_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'IMPULSE_ERR_UNAVAILABLE',
  'IMPULSE_ERR_OVERLOADED',
  'IMPULSE_ERR_RAFT_OVERLOADED',
  'IMPULSE_ERR_RAFT_NOT_LEADER',
  'IMPULSE_ERR_RAFT_TRANSFER_IN_PROGRESS',
  'IMPULSE_ERR_PRECONDITION_FAILED',
]);

/** How a failed request counts: `fail` or `unknown` (see the module comment), and its code. */
export function classifyError(error: unknown, isWrite: boolean): { status: OpStatus; code: string } {
  if (!(error instanceof ImpulseError)) return { status: isWrite ? 'unknown' : 'fail', code: (error as Error)?.message ?? String(error) };
  if (!isWrite) return { status: 'fail', code: error.code };
  if (CERTAIN_FAILURES.has(error.code)) return { status: 'fail', code: error.code };
  if (error.code === 'IMPULSE_ERR_CLIENT_UNREACHABLE' && /ECONNREFUSED/.test(error.message)) return { status: 'fail', code: 'ECONNREFUSED' };
  // 4xx validation errors cannot happen with the workloads' own requests; if one does, it did not apply.
  if (/^IMPULSE_ERR_(KEY|VALUE|BATCH|CONDITION)_/.test(error.code)) return { status: 'fail', code: error.code };
  return { status: 'unknown', code: error.code };
}

/** Collects operations in memory (a run's history is bounded by its duration and op rate) and writes JSON lines. */
export class HistoryRecorder {
  readonly ops: HistoryOp[] = [];
  private readonly originMs: number;

  constructor(originMs: number = performance.now()) {
    this.originMs = originMs;
  }

  /** Seconds since the origin, to the microsecond. */
  now(): number {
    return Math.round(performance.now() - this.originMs) / 1000;
  }

  /** Milliseconds since the origin. */
  nowMs(): number {
    return performance.now() - this.originMs;
  }

  record(op: Omit<HistoryOp, 'index'>): HistoryOp {
    const recorded = { index: this.ops.length, ...op };
    this.ops.push(recorded);
    return recorded;
  }

  toJsonLines(): string {
    return this.ops.map((op) => JSON.stringify(op)).join('\n') + (this.ops.length > 0 ? '\n' : '');
  }
}

/** Parses history.jsonl back (for checkers run on a saved history). Throws on a malformed line, naming it. */
export function parseHistory(text: string): HistoryOp[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, i) => {
      const op = JSON.parse(line) as HistoryOp;
      if (typeof op.op !== 'string' || typeof op.call !== 'number' || !['ok', 'fail', 'unknown'].includes(op.status)) throw new Error(`history line ${i + 1} is not an operation: ${line.slice(0, 120)}`);
      return op;
    });
}
