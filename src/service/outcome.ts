/**
 * From the state machine's result for one applied command to what a client
 * gets: a revision, or the error that says why nothing changed. Shared by
 * every service (the local one here, the Raft one in the cluster runtime).
 */
import { isUtf8 } from 'node:buffer';
import { ImpulseError } from '../errors.js';
import type { ApplyResult } from '../kv/state-machine.js';
import type { WriteOutcome } from './kv-service.js';

/** The outcome of `result`; throws its error (IMPULSE_ERR_PRECONDITION_FAILED for a failed condition). */
export function outcomeOf(result: ApplyResult): WriteOutcome {
  if (result.ok) return { revision: result.revision };
  if ('error' in result) throw result.error;
  const { op, key, revision } = result.failed;
  const text = isUtf8(key) ? key.toString('utf8') : undefined;
  const shown = text !== undefined ? JSON.stringify(text.length > 64 ? `${text.slice(0, 61)}...` : text) : `0x${key.subarray(0, 32).toString('hex')}`;
  throw new ImpulseError(
    'IMPULSE_ERR_PRECONDITION_FAILED',
    `the condition of op ${op} does not hold: key ${shown} ${revision === null ? 'does not exist' : `has revision ${revision}`}; nothing was changed`,
    { details: { op, key: text ?? key.toString('base64'), ...(text === undefined ? { keyEncoding: 'base64' } : {}), revision } },
  );
}
