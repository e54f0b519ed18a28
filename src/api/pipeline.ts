/**
 * Connection handling of the HTTP server: everything between node:http's
 * parser and the route handlers. Route handlers see one request at a time per
 * connection and never touch a socket.
 *
 * 1. ORDER. Requests pipelined on one connection are handled one at a time: a
 *    request's handler starts once the answer to the one before it has been
 *    handed to the socket in full. A client that got `204` for a write sees it
 *    on its next request, whatever the engine does concurrently. A client that
 *    sends one request at a time pays nothing: its request starts at once.
 * 2. BOUNDS. At most `pipelineDepthMax` requests wait per connection; past
 *    that the server stops reading from the socket until half of them have
 *    been answered. (node:http parses a network read — at most 64 KiB — whole,
 *    so the requests in the read under way still join the queue.) Because a
 *    request starts only after the previous answer has left, a client that
 *    pipelines and never reads holds at most one answer in the server's memory,
 *    and nothing else on the server waits for it.
 * 3. CLOSED CONNECTIONS. When the client goes away, the requests still waiting
 *    are dropped without being started: a write among them is never applied. A
 *    request whose handler has started runs to its end — a write the server had
 *    received in full may be applied although its answer is lost, as with any
 *    write whose answer is lost in the network. No write is ever applied in part.
 * 4. CONNECTION ERRORS. What node:http reports as a `clientError` (malformed
 *    bytes, headers or URL too large, a timeout) is answered in the JSON error
 *    format and in order: after the answers owed to the complete requests
 *    before it. When the failing bytes are the body of a request already
 *    received (a timeout or a malformed chunk), that request is answered with
 *    the error. Either way the connection then closes.
 * 5. LINGERING CLOSE (as nginx's `lingering_close`). Closing a socket that still
 *    has unread bytes makes the kernel send a reset, and a reset can destroy
 *    our last answer in the client's receive buffer before the client reads it.
 *    So a closing connection sends its FIN after the last answer and keeps
 *    reading (and dropping) what the client still sends until the client
 *    closes, for at most `lingerMs` after the FIN; then the socket is destroyed
 *    and its descriptor released. node:http closes connections through
 *    `socket.destroySoon()`, which the pipeline replaces with this.
 * 6. REQUESTS OF A TURN ARE HANDLED TOGETHER (as Redis writes its replies
 *    before it sleeps). A request that finds its connection idle is not
 *    started inside node:http's parse of the socket read; it is queued, and
 *    every request queued in one event-loop turn is started in that turn's
 *    check phase (one `setImmediate` per turn, not per request), in arrival
 *    order, after the poll phase has read every connection that was ready. So
 *    the answers of a turn leave as a burst instead of one between each two
 *    reads. Answered one by one, a busy server and its clients settle into a
 *    ping-pong where each wakeup of either side carries a request or two;
 *    answered in bursts, each wakeup carries many, and the kernel and
 *    event-loop cost per request drops (docs/benchmarks.md, "GET over
 *    sockets"). Order is untouched: the connection counts as busy from the
 *    moment the request is queued, so what follows it waits as before (point
 *    1), and a queued request whose connection closes is dropped unstarted
 *    (point 3). Requests started later (pipelined ones, after the answer
 *    before them has left) start at once, as before.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import { ImpulseError } from '../errors.js';
import { assert } from '../util/assert.js';
import { EndOfTurn } from '../util/end-of-turn.js';
import { expectContinue, failBody } from './body.js';
import { httpStatusOf } from './http-status.js';
import { rawErrorResponse } from './responses.js';

export interface PipelineOptions {
  /** Requests that may wait behind the one being handled on one connection before the server stops reading from it. */
  readonly pipelineDepthMax: number;
  /** Longest request target (path and query), bytes; a longer one is answered 414. */
  readonly urlBytesMax: number;
  /** How long a closing connection keeps reading and dropping what the client sends after our FIN, ms. */
  readonly lingerMs: number;
  /** The server's header and whole-request timeouts, ms (for the 408 message only; node:http enforces them). */
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
}

export interface PipelineHandlers {
  /** Handles one request. Must answer `res` (or destroy it) eventually and must not throw. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Answers `req` with `error` in the JSON error format instead of handling it. Must not throw. */
  reject(req: IncomingMessage, res: ServerResponse, error: ImpulseError): void;
  /** Reports an answer the pipeline wrote to a bare socket (no request object): for metrics. */
  answeredRaw(status: number): void;
}

/** How a request arrived: plain, with `Expect: 100-continue`, or with an `Expect` we do not support. */
type Arrival = 'plain' | 'expect-continue' | 'expectation-failed';

interface Waiting {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly arrival: Arrival;
}

/**
 * After a decision to close, the socket is destroyed at the latest this long
 * after the decision even if our last answer never finished leaving (a client
 * that stops reading); `lingerMs` then bounds the wait after our FIN.
 */
const CLOSE_DEADLINE_MS = 60_000;

const CONNECTION = Symbol('impulse.connection');

type TrackedSocket = Socket & { [CONNECTION]?: Connection };

/** The pipeline's state of one connection. */
class Connection {
  /** The answer being produced or sent; the next waiting request starts once it has left. */
  active: ServerResponse | undefined = undefined;
  /** Whether `onActiveClosed` listens on `active`. */
  watching = false;
  /** Requests received and not yet started, oldest first. */
  readonly waiting: Waiting[] = [];
  /** The last request received (and its answer-to-be): the one whose bytes node:http is parsing. */
  lastRequest: IncomingMessage | undefined = undefined;
  lastResponse: ServerResponse | undefined = undefined;
  /** Reading is paused because too many requests wait. */
  paused = false;
  /** No new request will be started: the connection closes once what it is owed is answered. */
  condemned = false;
  /** The connection-level error to answer once the waiting requests are answered. */
  terminal: ImpulseError | undefined = undefined;
  /** The close has begun (FIN sent or about to be, or the socket is gone). */
  closing = false;
  /** Requests that arrived after the connection was condemned, dropped unanswered. */
  ignored = 0;

  constructor(
    readonly socket: Socket,
    readonly onActiveClosed: () => void,
  ) {}

  /** Whether nothing is being answered right now. */
  get idle(): boolean {
    return this.active === undefined || this.active.writableFinished;
  }
}

export class RequestPipeline {
  /** Requests queued to start in this turn's check phase (point 6 above): at most one per connection. */
  private readonly ready = new EndOfTurn<Waiting>((waiting) => this.startQueued(waiting));

  constructor(
    private readonly options: PipelineOptions,
    private readonly handlers: PipelineHandlers,
  ) {
    assert(options.pipelineDepthMax >= 1, 'pipelineDepthMax must be at least 1', options.pipelineDepthMax);
  }

  /** Wires the pipeline into `server` (node:http, or node:https whose Server is one too): call once, before it listens, on a server created without a request listener. */
  attach(server: Server): void {
    // node:https hands the HTTP layer the TLS socket once its handshake is done ('secureConnection'); 'connection' is the raw TCP socket under it.
    server.on(server instanceof TlsServer ? 'secureConnection' : 'connection', (socket: Socket) => this.track(socket));
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, 'plain'));
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, 'expect-continue'));
    server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, 'expectation-failed'));
    server.on('clientError', (error: Error, socket: Socket) => this.onClientError(error, socket));
  }

  private track(socket: Socket): void {
    const connection: Connection = new Connection(socket, () => this.advance(connection));
    (socket as TrackedSocket)[CONNECTION] = connection;
    socket.on('close', () => {
      connection.closing = true;
      connection.condemned = true;
      connection.waiting.length = 0; // never started: dropped (point 3 above)
    });
    // node:http resumes a socket it paused itself (and a body read resumes it too); keep ours paused.
    socket.on('resume', () => {
      if (connection.paused) socket.pause();
    });
    socket.destroySoon = () => this.linger(connection);
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, arrival: Arrival): void {
    const connection = (req.socket as TrackedSocket)[CONNECTION];
    assert(connection !== undefined, 'a request arrived on a connection the pipeline does not track');
    if (connection.condemned) {
      // Sent after a request or an error that closes the connection: never answered. Bounded, since the client keeps sending.
      if (++connection.ignored > this.options.pipelineDepthMax) req.socket.destroy();
      return;
    }
    connection.lastRequest = req;
    connection.lastResponse = res;
    if (connection.waiting.length === 0 && connection.idle) {
      // Busy from now on (its answer is not finished), so whatever follows it on this connection waits behind it.
      connection.active = res;
      this.ready.add({ req, res, arrival });
      return;
    }
    connection.waiting.push({ req, res, arrival });
    if (!connection.watching) this.watch(connection, connection.active!);
    if (connection.waiting.length >= this.options.pipelineDepthMax && !connection.paused) {
      connection.paused = true;
      connection.socket.pause();
    }
  }

  private start(connection: Connection, req: IncomingMessage, res: ServerResponse, arrival: Arrival): void {
    connection.active = res;
    if (arrival === 'expect-continue') expectContinue(req);
    const url = req.url ?? '/';
    if (url.length > this.options.urlBytesMax) {
      this.handlers.reject(req, res, new ImpulseError('IMPULSE_ERR_URI_TOO_LONG', `the request target is ${url.length} bytes; the limit is ${this.options.urlBytesMax}`));
    } else if (arrival === 'expectation-failed') {
      const expect = String(req.headers.expect).slice(0, 64);
      this.handlers.reject(req, res, new ImpulseError('IMPULSE_ERR_EXPECTATION_FAILED', `Expect: ${JSON.stringify(expect)} is not supported; only 100-continue is`));
    } else {
      this.handlers.handle(req, res);
    }
  }

  /** Point 6 above: starts a request queued in this turn, unless its connection has gone meanwhile. */
  private startQueued({ req, res, arrival }: Waiting): void {
    const connection = (req.socket as TrackedSocket)[CONNECTION]!;
    if (connection.closing || connection.socket.destroyed) return; // dropped unstarted (point 3 above)
    this.start(connection, req, res, arrival);
  }

  private watch(connection: Connection, res: ServerResponse): void {
    connection.watching = true;
    res.once('close', connection.onActiveClosed);
  }

  /** The active answer has left (or its socket is gone): start the next waiting request. */
  private advance(connection: Connection): void {
    connection.watching = false;
    if (connection.closing || connection.socket.destroyed) return;
    connection.active = undefined;
    while (connection.waiting.length > 0) {
      const next = connection.waiting.shift()!;
      this.start(connection, next.req, next.res, next.arrival);
      if (!next.res.writableFinished) {
        this.watch(connection, next.res);
        break;
      }
    }
    if (connection.paused && connection.waiting.length <= this.options.pipelineDepthMax >> 1) {
      connection.paused = false;
      connection.socket.resume();
    }
    if (connection.waiting.length === 0 && connection.terminal !== undefined) this.answerTerminalWhenIdle(connection);
  }

  private onClientError(error: Error, socket: Socket): void {
    const connection = (socket as TrackedSocket)[CONNECTION];
    // Once condemned (and while lingering), further errors — the client keeps sending into a dead parser — change nothing.
    if (connection?.condemned === true) return;
    const code = (error as { code?: unknown }).code;
    if (connection === undefined || code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) {
      socket.destroy();
      return;
    }
    connection.condemned = true;
    const failure = describeClientError(error, this.options);
    const req = connection.lastRequest;
    if (req !== undefined && !req.complete) {
      // The failing bytes are the body of a request we hold: that request's answer is the error.
      const res = connection.lastResponse!;
      if (res.writableEnded) this.linger(connection); // already answered (its body was being drained): nothing more to say
      else failBody(req, res, failure);
      return;
    }
    connection.terminal = failure;
    if (connection.waiting.length === 0) this.answerTerminalWhenIdle(connection);
  }

  private answerTerminalWhenIdle(connection: Connection): void {
    if (!connection.idle) {
      if (!connection.watching) this.watch(connection, connection.active!);
      return;
    }
    const failure = connection.terminal!;
    connection.terminal = undefined;
    this.handlers.answeredRaw(httpStatusOf(failure.code));
    connection.socket.write(rawErrorResponse(failure));
    this.linger(connection);
  }

  /** Point 5 above: FIN after the last answer, read and drop until the client closes or `lingerMs` passes, then destroy. */
  private linger(connection: Connection): void {
    if (connection.closing) return;
    connection.closing = true;
    connection.condemned = true;
    connection.waiting.length = 0;
    const socket = connection.socket;
    if (socket.destroyed) return;
    const destroyAfterFlush = (): void => Socket.prototype.destroySoon.call(socket);
    if (socket.readableEnded) {
      destroyAfterFlush(); // the client has closed its side: nothing left to read
      return;
    }
    const deadline = setTimeout(() => socket.destroy(), CLOSE_DEADLINE_MS);
    deadline.unref();
    let lingerTimer: NodeJS.Timeout | undefined;
    socket.once('finish', () => {
      lingerTimer = setTimeout(() => socket.destroy(), this.options.lingerMs);
      lingerTimer.unref();
    });
    socket.once('end', destroyAfterFlush);
    socket.once('close', () => {
      clearTimeout(deadline);
      if (lingerTimer !== undefined) clearTimeout(lingerTimer);
    });
    socket.end();
    connection.paused = false;
    socket.resume();
    // A request body nobody reads must flow too (into nowhere), or node:http stops reading the socket for it.
    const pending = connection.lastRequest;
    if (pending !== undefined && !pending.complete) pending.resume();
  }
}

/** The JSON answer to a `clientError` from node:http. */
function describeClientError(error: Error, options: PipelineOptions): ImpulseError {
  const parserError = error as Error & { code?: unknown; reason?: unknown; rawPacket?: unknown; bytesParsed?: unknown };
  switch (parserError.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new ImpulseError(
        'IMPULSE_ERR_REQUEST_TIMEOUT',
        `the request did not arrive in time (headers within ${options.headersTimeoutMs} ms, the whole request within ${options.requestTimeoutMs} ms)`,
      );
    case 'HPE_HEADER_OVERFLOW':
      return overflowInRequestLine(parserError.rawPacket, parserError.bytesParsed)
        ? new ImpulseError('IMPULSE_ERR_URI_TOO_LONG', `the request line is longer than the ${options.urlBytesMax}-byte target limit allows`)
        : new ImpulseError('IMPULSE_ERR_HEADERS_TOO_LARGE', 'the request line and header fields are larger than the server accepts');
    default: {
      const reason = typeof parserError.reason === 'string' ? parserError.reason : typeof parserError.code === 'string' ? parserError.code : 'unparseable';
      return new ImpulseError('IMPULSE_ERR_HTTP_MALFORMED', `malformed HTTP request: ${reason}`);
    }
  }
}

/**
 * Whether node:http's header overflow struck inside a request line rather
 * than a header field. node:http counts the request line and the fields
 * against one limit and reports only the packet it was parsing and how far it
 * got; the line that overflowed starts after the last line break before that
 * point. A request line starts with a method and a space; a header field
 * cannot (its name ends at a colon, spaces are not allowed before it). When
 * that line began in an earlier packet it cannot be told apart, and the answer
 * is 431.
 */
function overflowInRequestLine(packet: unknown, bytesParsed: unknown): boolean {
  if (!Buffer.isBuffer(packet)) return false;
  const end = typeof bytesParsed === 'number' ? Math.min(bytesParsed, packet.length) : packet.length;
  const lineStart = end === 0 ? 0 : packet.lastIndexOf(0x0a, end - 1) + 1;
  return /^[A-Z]{1,20} /.test(packet.subarray(lineStart, Math.min(end, lineStart + 24)).toString('latin1'));
}
