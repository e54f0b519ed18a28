/**
 * The one error catalog. Every expected failure in impulse is an `ImpulseError`
 * with a stable code (`IMPULSE_ERR_<AREA>_<NAME>`), a human message, the HTTP
 * status the API answers with, and an optional cause. Bugs are not in here:
 * they are `AssertionError`s (src/util/assert.ts).
 *
 * A test (src/errors.test.ts) keeps this catalog and docs/api.md in sync: every
 * code below must appear in the API reference.
 */

export interface ErrorSpec {
  readonly status: number;
  readonly summary: string;
}

export const ERROR_CATALOG = {
  // Requests
  IMPULSE_ERR_KEY_EMPTY: { status: 400, summary: 'The key is empty; keys must be at least one byte.' },
  IMPULSE_ERR_KEY_TOO_LARGE: { status: 413, summary: 'The key is longer than the configured key limit.' },
  IMPULSE_ERR_KEY_ENCODING: { status: 400, summary: 'The key in the path is not valid percent-encoding.' },
  IMPULSE_ERR_VALUE_TOO_LARGE: { status: 413, summary: 'The value is longer than the configured value limit.' },
  IMPULSE_ERR_KEY_NOT_FOUND: { status: 404, summary: 'No value is stored under the key.' },
  IMPULSE_ERR_RANGE_INVALID: { status: 400, summary: 'A range query parameter is malformed or out of bounds.' },
  IMPULSE_ERR_BATCH_INVALID: { status: 400, summary: 'The batch body is not a valid batch document.' },
  IMPULSE_ERR_BATCH_TOO_LARGE: { status: 413, summary: 'The batch has more operations or bytes than the configured limit.' },
  IMPULSE_ERR_ROUTE_NOT_FOUND: { status: 404, summary: 'No route matches the path.' },
  IMPULSE_ERR_METHOD_NOT_ALLOWED: { status: 405, summary: 'The route exists but not for this HTTP method.' },
  IMPULSE_ERR_REQUEST_TIMEOUT: { status: 408, summary: 'The request body did not arrive in time.' },
  // Server and engine state
  IMPULSE_ERR_OVERLOADED: { status: 503, summary: 'The write queue is full; retry later.' },
  IMPULSE_ERR_SHUTTING_DOWN: { status: 503, summary: 'The server is shutting down and accepts no new work.' },
  IMPULSE_ERR_ENGINE_NOT_OPEN: { status: 503, summary: 'The storage engine is not open (not yet opened, or already closed).' },
  IMPULSE_ERR_ENGINE_IO: { status: 500, summary: 'The storage engine hit an I/O error; the operation did not take effect.' },
  IMPULSE_ERR_ENGINE_CORRUPTION: { status: 500, summary: 'Stored data failed its checksum or structure check; it was not returned.' },
  IMPULSE_ERR_ENGINE_LOCKED: { status: 500, summary: 'The data directory is in use by another process.' },
  IMPULSE_ERR_INTERNAL: { status: 500, summary: 'An unexpected internal error; the operation did not take effect.' },
  // Raft (src/raft/): returned by the core as `RaftError`, a subclass of ImpulseError
  IMPULSE_ERR_RAFT_NOT_LEADER: { status: 503, summary: 'This node is not the Raft leader; retry at the leader it names, if any.' },
  IMPULSE_ERR_RAFT_TRANSFER_IN_PROGRESS: { status: 503, summary: 'Leadership is being transferred; retry shortly.' },
  IMPULSE_ERR_RAFT_OVERLOADED: { status: 503, summary: 'Too many uncommitted entries or pending reads on the leader; retry later.' },
  IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED: { status: 409, summary: 'The membership change is not allowed now (one is pending, the learner lags, or it is invalid).' },
  IMPULSE_ERR_RAFT_READ_ABORTED: { status: 503, summary: 'A linearizable read was aborted because leadership changed before it was confirmed.' },
  // Configuration and client
  IMPULSE_ERR_CONFIG_INVALID: { status: 400, summary: 'A configuration value is invalid.' },
  IMPULSE_ERR_CLIENT_UNREACHABLE: { status: 503, summary: 'The client could not connect to the server.' },
  IMPULSE_ERR_CLIENT_TIMEOUT: { status: 504, summary: 'The server did not answer within the client timeout.' },
  IMPULSE_ERR_CLIENT_PROTOCOL: { status: 502, summary: 'The server answered with something the client does not understand.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOG;

/** An expected, typed failure. `status` comes from the catalog. */
export class ImpulseError extends Error {
  override name = 'ImpulseError';
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message?: string,
    options?: { cause?: unknown },
  ) {
    super(message ?? ERROR_CATALOG[code].summary, options);
    this.status = ERROR_CATALOG[code].status;
  }

  /** The JSON body the API sends: `{"error": {"code", "message"}}`. */
  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export function isImpulseError(error: unknown, code?: ErrorCode): error is ImpulseError {
  return error instanceof ImpulseError && (code === undefined || error.code === code);
}
