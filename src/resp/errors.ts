/**
 * Error replies. Redis's own wording where a Redis client would see the same
 * mistake from Redis (clients and people match on it), and impulse's errors
 * from the catalog as `<PREFIX> <message> (<code>)`:
 *   - TRYAGAIN for what a retry may cure (no leader yet, overloaded, shutting
 *     down), the prefix Redis Cluster uses for "retry later";
 *   - ERR for everything else.
 */
import { type ErrorCode, isImpulseError } from '../errors.js';
import { errorReply } from './encoder.js';

export const SYNTAX_ERROR = errorReply('ERR syntax error');
export const NOT_INTEGER = errorReply('ERR value is not an integer or out of range');

export function wrongArity(name: string): Buffer {
  return errorReply(`ERR wrong number of arguments for '${name.toLowerCase()}' command`);
}

/** Redis 7's wording: the name up to 128 bytes, then quoted arguments while they total under 128 bytes. */
export function unknownCommand(args: readonly Buffer[]): Buffer {
  let shown = '';
  for (let i = 1; i < args.length && shown.length < 128; i++) shown += `'${text(args[i]!.subarray(0, 128 - shown.length))}' `;
  return errorReply(`ERR unknown command '${text(args[0]!.subarray(0, 128))}', with args beginning with: ${shown}`, 'latin1');
}

export function unknownSubcommand(subcommand: Buffer, command: string): Buffer {
  return errorReply(`ERR unknown subcommand '${text(subcommand.subarray(0, 128))}'. Try ${command.toUpperCase()} HELP.`, 'latin1');
}

/** Bytes as Redis prints them into an error line (one character per byte; CR and LF become spaces in `errorReply`). */
function text(bytes: Buffer): string {
  return bytes.toString('latin1');
}

const RETRYABLE = new Set<ErrorCode>([
  'IMPULSE_ERR_UNAVAILABLE',
  'IMPULSE_ERR_OVERLOADED',
  'IMPULSE_ERR_SHUTTING_DOWN',
  'IMPULSE_ERR_RAFT_NOT_LEADER',
  'IMPULSE_ERR_RAFT_TRANSFER_IN_PROGRESS',
  'IMPULSE_ERR_RAFT_OVERLOADED',
  'IMPULSE_ERR_RAFT_READ_ABORTED',
  'IMPULSE_ERR_RPC_OVERLOADED',
]);

/** The error reply for a failure; `expected` is false for a bug (the caller logs it). */
export function failureReply(error: unknown): { reply: Buffer; expected: boolean } {
  if (!isImpulseError(error)) return { reply: errorReply('ERR internal error; the operation did not take effect (IMPULSE_ERR_INTERNAL)'), expected: false };
  const prefix = RETRYABLE.has(error.code) ? 'TRYAGAIN' : 'ERR';
  return { reply: errorReply(`${prefix} ${error.message} (${error.code})`), expected: true };
}
