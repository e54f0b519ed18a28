/**
 * What a failed attempt of a replicated request means for its retry:
 *
 *   - `no-effect`: nothing happened (not the leader, a transfer in progress,
 *     another entry won the index, a read aborted by an election, the leader
 *     unknown to the transport): try again at the leader, within the deadline.
 *   - `unknown`: the write may still apply (a timeout, leadership changed
 *     while it was pending, the remote group stopped under it). Retried only
 *     when the command carries a client session, whose deduplication makes a
 *     second proposal harmless (Raft dissertation §6.3); otherwise reported as
 *     IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN — never as a failure.
 *   - `final`: the answer (a failed condition, a malformed command, overload).
 */
import { type ErrorCode, ImpulseError, isImpulseError } from '../errors.js';

export type AttemptFailure = 'no-effect' | 'unknown' | 'final';

const NO_EFFECT: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'IMPULSE_ERR_RAFT_NOT_LEADER',
  'IMPULSE_ERR_RAFT_TRANSFER_IN_PROGRESS',
  'IMPULSE_ERR_RAFT_PROPOSAL_SUPERSEDED',
  'IMPULSE_ERR_RAFT_READ_ABORTED',
  'IMPULSE_ERR_TRANSPORT_PEER_UNKNOWN',
  'IMPULSE_ERR_UNAVAILABLE',
]);

const UNKNOWN: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['IMPULSE_ERR_RPC_TIMEOUT', 'IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN', 'IMPULSE_ERR_RAFT_STOPPED']);

export function classifyFailure(error: unknown): AttemptFailure {
  if (!isImpulseError(error)) return 'final';
  if (NO_EFFECT.has(error.code)) return 'no-effect';
  if (UNKNOWN.has(error.code)) return 'unknown';
  return 'final';
}

/** The state machine's own answers to an applied command (a retry under the same session gets them too). */
const APPLY_ANSWERS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['IMPULSE_ERR_PRECONDITION_FAILED', 'IMPULSE_ERR_SESSION_EXPIRED', 'IMPULSE_ERR_COMMAND_INVALID']);

/** Whether `error` is what applying the command answered (as opposed to a refusal to try). */
export function isOutcomeOfApplying(error: unknown): boolean {
  return isImpulseError(error) && APPLY_ANSWERS.has(error.code);
}

/** Seconds a client should wait before retrying a 503 from the cluster (sent as `Retry-After`). */
export const RETRY_AFTER_SECONDS = 1;

export function unavailable(message: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_UNAVAILABLE', message, { details: { retryAfterSeconds: RETRY_AFTER_SECONDS } });
}

export function outcomeUnknown(why: string, cause?: unknown): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN', `the write may or may not have been applied: ${why}; read the key to find out, or retry with the same client session (Impulse-Client-Id and -Seq), which applies it at most once`, {
    ...(cause !== undefined ? { cause } : {}),
  });
}
