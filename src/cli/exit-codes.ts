/**
 * The exit statuses of `impulse`: one table (`EXIT_CODE_MEANINGS`) for the
 * program, its `--help` and docs/cli.md (cli-docs.test.ts keeps the doc equal
 * to it). Scripts branch on them, so a status never changes meaning.
 */
import { isImpulseError } from '../errors.js';
import { httpStatusOf } from '../api/http-status.js';

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  conditionFailed: 3,
  notFound: 4,
  unreachable: 5,
  serverError: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Each status with the sentence `--help` and docs/cli.md show. */
export const EXIT_CODE_MEANINGS: readonly (readonly [ExitCode, string])[] = [
  [EXIT.ok, 'success'],
  [EXIT.failure, 'any other failure (the server refused the request as invalid, an unexpected error)'],
  [EXIT.usage, 'bad usage or configuration (unknown flag, bad argument or flag value)'],
  [EXIT.conditionFailed, "a write's condition did not hold; nothing was changed"],
  [EXIT.notFound, 'the key does not exist'],
  [EXIT.unreachable, 'the server could not be reached or did not answer in time'],
  [EXIT.serverError, 'the server failed or cannot serve now (a 5xx answer, health not ok)'],
];

/** A usage error the CLI itself finds (exit 2), printed as one sentence. */
export class UsageError extends Error {}

/**
 * The exit status for a command that failed with `error`. A client command
 * (`role` 'client') tells the server's answers apart; `serve` and `cluster`
 * ('server') fail to start either from their configuration (2) or not (1).
 */
export function exitCodeOf(error: unknown, role: 'client' | 'server' = 'client'): ExitCode {
  if (error instanceof UsageError) return EXIT.usage;
  if (!isImpulseError(error)) return EXIT.failure;
  if (role === 'server') return error.code === 'IMPULSE_ERR_CONFIG_INVALID' ? EXIT.usage : EXIT.failure;
  switch (error.code) {
    case 'IMPULSE_ERR_PRECONDITION_FAILED':
      return EXIT.conditionFailed;
    case 'IMPULSE_ERR_KEY_NOT_FOUND':
      return EXIT.notFound;
    case 'IMPULSE_ERR_CONFIG_INVALID':
      return EXIT.usage;
    case 'IMPULSE_ERR_CLIENT_UNREACHABLE':
    case 'IMPULSE_ERR_CLIENT_TIMEOUT':
      return EXIT.unreachable;
    default:
      return httpStatusOf(error.code) >= 500 ? EXIT.serverError : EXIT.failure;
  }
}

/** The block `impulse --help` ends with. */
export function exitCodesHelp(): string {
  return ['Exit status:', ...EXIT_CODE_MEANINGS.map(([code, meaning]) => `  ${code}  ${meaning}`)].join('\n');
}
