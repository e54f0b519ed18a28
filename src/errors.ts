/**
 * The one error catalog. Every expected failure in impulse is an `ImpulseError`
 * with a stable code (`IMPULSE_ERR_<AREA>_<NAME>`), a human message, optional
 * details a caller can act on (e.g. the leader to retry at) and an optional
 * cause. Bugs are not in here: they are `AssertionError`s (src/util/assert.ts).
 *
 * This module knows nothing of HTTP: the API layer maps codes to statuses
 * (src/api/http-status.ts), whose `Record<ErrorCode, number>` type makes the
 * compiler check that every code has a status; a test (src/api/server.test.ts,
 * "documents every error code in docs/api.md") checks the API reference.
 */

export interface ErrorSpec {
  readonly summary: string;
}

export const ERROR_CATALOG = {
  // Requests
  IMPULSE_ERR_KEY_EMPTY: { summary: 'The key is empty; keys must be at least one byte.' },
  IMPULSE_ERR_KEY_TOO_LARGE: { summary: 'The key is longer than the configured key limit.' },
  IMPULSE_ERR_KEY_ENCODING: { summary: 'The key in the path is not valid percent-encoding.' },
  IMPULSE_ERR_VALUE_TOO_LARGE: { summary: 'The value is longer than the configured value limit.' },
  IMPULSE_ERR_KEY_NOT_FOUND: { summary: 'No value is stored under the key.' },
  IMPULSE_ERR_RANGE_INVALID: { summary: 'A range query parameter is malformed or out of bounds.' },
  IMPULSE_ERR_BATCH_INVALID: { summary: 'The batch body is not a valid batch document.' },
  IMPULSE_ERR_BATCH_TOO_LARGE: { summary: 'The batch has more operations or bytes than the configured limit.' },
  IMPULSE_ERR_BATCH_CROSS_SHARD: { summary: 'The batch writes keys of more than one shard and its caller asked for no transaction across shards; nothing was changed.' },
  IMPULSE_ERR_TXN_LOCKED: { summary: 'A key of the write is locked by a transaction across shards that is not resolved yet; nothing was changed; retry.' },
  IMPULSE_ERR_TXN_ABORTED: { summary: 'The transaction across shards was aborted (a conflict, or it was abandoned and rolled back); nothing of it was applied.' },
  IMPULSE_ERR_SHARD_STALE: { summary: "The request was routed by a shard map older than the answering member's (the shard split, merged or changed replicas); nothing was changed; refresh the map and retry." },
  IMPULSE_ERR_SHARD_ROUTE_INVALID: { summary: 'The Impulse-Shard header is malformed; it is <shard id>:<epoch>.' },
  IMPULSE_ERR_ROUTE_NOT_FOUND: { summary: 'No route matches the path.' },
  IMPULSE_ERR_METHOD_NOT_ALLOWED: { summary: 'The route exists but not for this HTTP method.' },
  IMPULSE_ERR_REQUEST_TIMEOUT: { summary: 'The request (its headers or its body) did not arrive in time.' },
  IMPULSE_ERR_LENGTH_REQUIRED: { summary: 'A request with a body must declare its length (Content-Length or chunked Transfer-Encoding).' },
  IMPULSE_ERR_HEADERS_TOO_LARGE: { summary: 'The request header fields are larger than the server accepts.' },
  IMPULSE_ERR_URI_TOO_LONG: { summary: 'The request target (path and query) is longer than the server accepts.' },
  IMPULSE_ERR_EXPECTATION_FAILED: { summary: 'The Expect header asks for something other than 100-continue.' },
  IMPULSE_ERR_HTTP_MALFORMED: { summary: 'The bytes received are not a well-formed HTTP/1.1 request.' },
  IMPULSE_ERR_QUERY_INVALID: { summary: 'A query parameter of a key request is unknown or malformed.' },
  IMPULSE_ERR_CONDITION_INVALID: { summary: 'A write condition (If-Match, If-None-Match, ifRevision, ifAbsent) is malformed.' },
  IMPULSE_ERR_PRECONDITION_FAILED: { summary: 'A write condition does not hold; nothing was changed.' },
  IMPULSE_ERR_SESSION_INVALID: { summary: 'The client session headers (client id, sequence number) are malformed.' },
  IMPULSE_ERR_SESSION_EXPIRED: { summary: 'The write is a retry whose session result was already forgotten; it was not applied again.' },
  IMPULSE_ERR_COMMAND_INVALID: { summary: 'An encoded write command is malformed; it was not applied.' },
  // Authentication and authorisation (src/api/auth.ts)
  IMPULSE_ERR_AUTH_REQUIRED: { summary: 'The request carries no bearer token, or one the server does not know; nothing was read or changed.' },
  IMPULSE_ERR_AUTH_FORBIDDEN: { summary: "The token's role or key prefix does not allow this request; nothing was read or changed." },
  // Server and engine state
  IMPULSE_ERR_OVERLOADED: { summary: 'The write queue is full; retry later.' },
  IMPULSE_ERR_SHUTTING_DOWN: { summary: 'The server is shutting down and accepts no new work.' },
  IMPULSE_ERR_UNAVAILABLE: { summary: 'The cluster cannot serve the request now (no leader within the wait, or this node is too far behind); nothing changed; retry after Retry-After.' },
  IMPULSE_ERR_ENGINE_NOT_OPEN: { summary: 'The storage engine is not open (not yet opened, or already closed).' },
  IMPULSE_ERR_ENGINE_IO: { summary: 'The storage engine hit an I/O error; the operation did not take effect.' },
  IMPULSE_ERR_ENGINE_CORRUPTION: { summary: 'Stored data failed its checksum or structure check; it was not returned.' },
  IMPULSE_ERR_ENGINE_LOCKED: { summary: 'The data directory is in use by another process.' },
  IMPULSE_ERR_ENGINE_NO_SPACE: { summary: 'The disk is full (or over quota); the write did not take effect. The engine resumes on its own once space is freed.' },
  IMPULSE_ERR_ENGINE_TOO_MANY_FILES: { summary: 'The process or system is out of file descriptors; the operation did not take effect. The engine resumes on its own once descriptors are free.' },
  IMPULSE_ERR_ENGINE_READ_ONLY: { summary: 'The engine refuses writes until it is reopened (after an error that makes further writes unsafe); reads are served.' },
  IMPULSE_ERR_DATA_FORMAT_UNSUPPORTED: { summary: 'The data directory was written in a format this impulse does not read (an older or newer one); it was not touched.' },
  IMPULSE_ERR_SNAPSHOT_ABORTED: { summary: 'A snapshot was aborted (it kept too many overwritten values, or was released); take a new one.' },
  IMPULSE_ERR_SNAPSHOT_INVALID: { summary: 'A received snapshot image is malformed or incomplete; it was not installed.' },
  IMPULSE_ERR_INTERNAL: { summary: 'An unexpected internal error; the operation did not take effect.' },
  // Raft (src/raft/): returned by the core as `RaftError`, a subclass of ImpulseError
  IMPULSE_ERR_RAFT_NOT_LEADER: { summary: 'This node is not the Raft leader; retry at the leader it names, if any.' },
  IMPULSE_ERR_RAFT_TRANSFER_IN_PROGRESS: { summary: 'Leadership is being transferred; retry shortly.' },
  IMPULSE_ERR_RAFT_OVERLOADED: { summary: 'Too many uncommitted entries or pending reads on the leader; retry later.' },
  IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED: { summary: 'The membership change is not allowed now (one is pending, the learner lags, or it is invalid).' },
  IMPULSE_ERR_RAFT_READ_ABORTED: { summary: 'A linearizable read was aborted because leadership changed before it was confirmed.' },
  IMPULSE_ERR_RAFT_PROPOSAL_SUPERSEDED: { summary: 'Another entry was committed at the index of this proposal; it will never apply. Retry.' },
  IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN: { summary: 'This node can no longer tell whether the proposal applied (a snapshot replaced its log); read to find out.' },
  IMPULSE_ERR_RAFT_STOPPED: { summary: 'The Raft group stopped on this node (removed from the cluster, or its log failed); a pending write has an unknown outcome.' },
  IMPULSE_ERR_RAFT_MESSAGE_INVALID: { summary: 'A message from a peer failed validation and was dropped.' },
  // Node-to-node transport (src/transport/): logged and counted on the node, returned by
  // sendSnapshot and the RPC helper; never a crash
  IMPULSE_ERR_TRANSPORT_HANDSHAKE_REFUSED: { summary: 'A peer connection was refused at the handshake (wrong magic or version, another cluster, an unknown, own or duplicate node id).' },
  IMPULSE_ERR_TRANSPORT_HANDSHAKE_TIMEOUT: { summary: 'A peer connection did not complete its handshake in time.' },
  IMPULSE_ERR_TRANSPORT_FRAME_TOO_LARGE: { summary: 'A peer sent a frame longer than the configured maximum; the connection was closed.' },
  IMPULSE_ERR_TRANSPORT_FRAME_INVALID: { summary: 'A peer sent a frame that does not decode or has an unknown type; the connection was closed.' },
  IMPULSE_ERR_TRANSPORT_CONNECTION_LOST: { summary: 'The connection to a peer failed, went silent or was closed.' },
  IMPULSE_ERR_TRANSPORT_CLOSED: { summary: 'The transport is closed and sends nothing.' },
  IMPULSE_ERR_TRANSPORT_PEER_UNKNOWN: { summary: 'The peer is not in the address book.' },
  IMPULSE_ERR_TRANSPORT_SNAPSHOT_SEQUENCE: { summary: 'A snapshot chunk arrived out of order, twice, beyond its credit or for an unknown stream; the connection was closed.' },
  IMPULSE_ERR_TRANSPORT_SNAPSHOT_REFUSED: { summary: 'The receiver refused the snapshot stream.' },
  IMPULSE_ERR_TRANSPORT_SNAPSHOT_STALLED: { summary: 'A snapshot stream made no progress within the configured time and was aborted.' },
  IMPULSE_ERR_TRANSPORT_SNAPSHOT_BUSY: { summary: 'A snapshot stream to this peer is already in progress (one per peer and direction).' },
  IMPULSE_ERR_RPC_TIMEOUT: { summary: 'The peer did not answer the call in time.' },
  IMPULSE_ERR_RPC_OVERLOADED: { summary: 'Too many calls are in flight (to this peer or overall); retry later.' },
  // Leaderless replication
  IMPULSE_ERR_QUORUM_UNAVAILABLE: { summary: 'Fewer replicas than the quorum answered within the request time (details: needed, answered); a write may still have reached some replicas.' },
  IMPULSE_ERR_QUORUM_INVALID: { summary: 'An r or w parameter is not a number from 1 to N, "one", "quorum" or "all".' },
  IMPULSE_ERR_CONTEXT_INVALID: { summary: 'The Impulse-Context header is not a causal context this cluster issued.' },
  IMPULSE_ERR_SIBLINGS_TOO_MANY: { summary: 'The key already holds the most siblings allowed; read it and write with its context to resolve them.' },
  IMPULSE_ERR_LEADERLESS_UNSUPPORTED: { summary: 'Leaderless mode does not offer this (multi-key batches, conditions, membership changes).' },
  IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID: { summary: 'A leaderless message from a peer failed validation and was dropped.' },
  IMPULSE_ERR_LEADERLESS_MEMBERSHIP_REJECTED: { summary: 'The leaderless membership change is not possible now (another is under way, a member did not take part or is down, it would leave fewer members than replicas, or a forced removal names a member that is not down).' },
  // Configuration and client
  IMPULSE_ERR_CONFIG_INVALID: { summary: 'A configuration value is invalid.' },
  // Dashboard and relays between members (src/api/member-proxy.ts)
  IMPULSE_ERR_MEMBER_UNREACHABLE: { summary: 'Another cluster member did not answer a request relayed to it (connection refused or timed out, or an answer that is not JSON).' },
  IMPULSE_ERR_CLIENT_UNREACHABLE: { summary: 'The client could not connect to the server.' },
  IMPULSE_ERR_CLIENT_TIMEOUT: { summary: 'The server did not answer within the client timeout.' },
  IMPULSE_ERR_CLIENT_PROTOCOL: { summary: 'The server answered with something the client does not understand.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOG;

/**
 * What a caller needs to act on an error, beyond its code: where to retry, how
 * many replicas answered, ... Plain JSON values; sent to clients in the error
 * body. Never secrets (tokens, file contents).
 */
export type ErrorDetails = Readonly<Record<string, string | number | boolean | null>>;

/** An expected, typed failure. */
export class ImpulseError extends Error {
  override name = 'ImpulseError';
  /** Fields a caller can act on (see `ErrorDetails`); empty for most errors. */
  readonly details: ErrorDetails = {};

  constructor(
    readonly code: ErrorCode,
    message?: string,
    options?: { cause?: unknown; details?: ErrorDetails },
  ) {
    super(message ?? ERROR_CATALOG[code].summary, options?.cause === undefined ? undefined : { cause: options.cause });
    if (options?.details !== undefined) this.details = options.details;
  }

  /** The JSON body the API sends: `{"error": {"code", "message", ...details}}`. */
  toJSON(): { error: { code: ErrorCode; message: string } & ErrorDetails } {
    return { error: { ...this.details, code: this.code, message: this.message } };
  }
}

export function isImpulseError(error: unknown, code?: ErrorCode): error is ImpulseError {
  return error instanceof ImpulseError && (code === undefined || error.code === code);
}
