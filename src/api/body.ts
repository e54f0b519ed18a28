/**
 * Reading request bodies, and what happens to a body the server does not read.
 *
 *   - A body-carrying request must declare its length (Content-Length or
 *     chunked): without one, HTTP/1.1 gives the request no body and whatever
 *     the client sent after the headers would be parsed as the next request.
 *     `readBody` refuses it with 411 and the answer closes the connection.
 *   - A declared length over the limit is refused before one byte is read —
 *     and, for `Expect: 100-continue`, before `100 Continue` is sent, so a
 *     well-behaved client never sends the body at all.
 *   - `settleUnreadBody` runs on every answer: when the client may still be
 *     sending a body nobody will read, the rest is read and dropped (up to
 *     `drainBytesMax`, keeping the connection) or the answer closes the
 *     connection (which then lingers: src/api/pipeline.ts). Either way the
 *     client reads our answer instead of a reset.
 *
 * The connection layer (pipeline.ts) marks requests through `expectContinue`
 * and `failBody`; route handlers only call `readBody`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ImpulseError } from '../errors.js';

export interface BodyLimit {
  /** Largest body accepted, bytes. */
  readonly bytesMax: number;
  /** The code for a body over `bytesMax` (413 for values and batches; a cluster route's oversized request is a 400 config error). */
  readonly tooLarge: 'IMPULSE_ERR_VALUE_TOO_LARGE' | 'IMPULSE_ERR_BATCH_TOO_LARGE' | 'IMPULSE_ERR_CONFIG_INVALID';
  /** What the body is, for messages ("value", "batch body"). */
  readonly what: string;
}

const BODY = Symbol('impulse.body');

/** Per-request body state; only requests that need one carry it (the common request allocates nothing). */
interface BodyState {
  /** The client sent `Expect: 100-continue` and no `100 Continue` has gone out yet. */
  continuePending: boolean;
  /** The connection failed this request's body (timeout, malformed framing): reading rejects with this. */
  failure: ImpulseError | undefined;
  /** Rejects the read in progress, if one is. */
  abort: ((error: ImpulseError) => void) | undefined;
  /** Body bytes read so far. */
  bytesRead: number;
}

type RequestWithBody = IncomingMessage & { [BODY]?: BodyState };

function stateOf(req: IncomingMessage): BodyState {
  const request = req as RequestWithBody;
  return (request[BODY] ??= { continuePending: false, failure: undefined, abort: undefined, bytesRead: 0 });
}

/** Marks `req` as waiting for `100 Continue`: `readBody` sends it when the body is wanted, and an answer without it closes the connection. */
export function expectContinue(req: IncomingMessage): void {
  stateOf(req).continuePending = true;
}

/**
 * The connection failed `req`'s body (it timed out, or its framing is
 * malformed): a read in progress rejects with `error`, a later read rejects at
 * once, and the answer closes the connection.
 */
export function failBody(req: IncomingMessage, res: ServerResponse, error: ImpulseError): void {
  const state = stateOf(req);
  if (state.failure !== undefined) return;
  state.failure = error;
  closeAfterAnswer(res);
  state.abort?.(error);
}

/**
 * Reads `req`'s body, at most `limit.bytesMax` bytes. Rejects with 411 when no
 * length is declared, with `limit.tooLarge` (413) when the declared or the
 * received length passes the limit, and with the connection's error when it
 * fails the body (408 on a timeout). `res` is the request's answer-to-be.
 */
export function readBody(req: IncomingMessage, res: ServerResponse, limit: BodyLimit): Promise<Buffer> {
  const state = (req as RequestWithBody)[BODY];
  if (state?.failure !== undefined) return Promise.reject(state.failure);
  const declaredText = req.headers['content-length'];
  if (declaredText === undefined && req.headers['transfer-encoding'] === undefined) {
    closeAfterAnswer(res);
    return Promise.reject(new ImpulseError('IMPULSE_ERR_LENGTH_REQUIRED', `${req.method ?? 'a request'} with a body needs Content-Length (or chunked Transfer-Encoding); nothing was stored`));
  }
  if (declaredText !== undefined && Number(declaredText) > limit.bytesMax) {
    return Promise.reject(new ImpulseError(limit.tooLarge, `${limit.what} is ${declaredText} bytes; the limit is ${limit.bytesMax}`));
  }
  if (state?.continuePending === true) {
    state.continuePending = false;
    res.writeContinue();
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const onData = (chunk: Buffer): void => {
      length += chunk.length;
      if (length > limit.bytesMax) {
        finish();
        reject(new ImpulseError(limit.tooLarge, `${limit.what} is over the limit of ${limit.bytesMax} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      finish();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length));
    };
    // node:http fails the request with an error when the client goes away mid-body; the pipeline calls this too.
    const onFailure = (error: Error): void => {
      finish();
      reject(error instanceof ImpulseError ? error : new ImpulseError('IMPULSE_ERR_REQUEST_TIMEOUT', `the body did not arrive: ${error.message}`, { cause: error }));
    };
    const finish = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onFailure);
      if (!req.complete) req.pause(); // what is left is settled with the answer (settleUnreadBody)
      const current = (req as RequestWithBody)[BODY];
      if (current !== undefined) {
        current.abort = undefined;
        current.bytesRead = length;
      }
    };
    // Only a body still arriving can be failed by the connection (pipeline.ts: timeout, malformed chunk).
    if (!req.complete) stateOf(req).abort = onFailure;
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onFailure);
  });
}

/**
 * Runs as an answer to `res` starts. When the client may still be sending a
 * body that nobody will read, either read and drop the rest (at most
 * `drainBytesMax` bytes, so the connection stays usable) or make the answer
 * close the connection (the close lingers: pipeline.ts). A request that waits
 * for `100 Continue` and gets a final answer instead also closes: whether the
 * client then sends its body is up to it, so the bytes that follow cannot be
 * parsed with confidence.
 */
export function settleUnreadBody(res: ServerResponse, drainBytesMax: number): void {
  const req = res.req;
  if (req.complete || req.readableFlowing === true) return;
  const state = (req as RequestWithBody)[BODY];
  if (state !== undefined && (state.continuePending || state.failure !== undefined)) {
    closeAfterAnswer(res);
    return;
  }
  const declaredText = req.headers['content-length'];
  if (declaredText === undefined && req.headers['transfer-encoding'] === undefined) return; // no body
  const rest = declaredText === undefined ? Number.POSITIVE_INFINITY : Number(declaredText) - (state?.bytesRead ?? 0);
  if (rest > drainBytesMax) closeAfterAnswer(res);
  else req.resume(); // flowing with no listener: the bytes are read and dropped
}

function closeAfterAnswer(res: ServerResponse): void {
  if (!res.headersSent) res.setHeader('connection', 'close');
}
