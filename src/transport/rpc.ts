/**
 * Request/response over any `Transport` (TCP or the simulator's network), for
 * the leaderless coordinator and request forwarding.
 *
 *   const rpc = new RpcEndpoint({ transport, clock, random, logger });
 *   rpc.serve('forward', (from, body, reply) => reply(null, answer));
 *   rpc.call(2, 'forward', body, 500, (error, response) => ...);
 *   const response = await rpc.callAsync(2, 'forward', body, 500);
 *
 * The node runtime routes every message on a channel used for RPC to
 * `rpc.onMessage` (such channels carry nothing else). A request and its
 * response travel as ordinary messages on the call's channel, group 0, with
 * the body `[kind, id, payload]`: kind 0 a request, 1 a response, 2 an error
 * response whose payload is `{code, message, details}`.
 *
 * Guarantees: `done` is called exactly once, never synchronously inside
 * `call`: with the response, the remote error (its catalog code and details
 * kept, e.g. IMPULSE_ERR_RAFT_NOT_LEADER with the leader), IMPULSE_ERR_RPC_TIMEOUT
 * after `timeoutMs` on the Clock, IMPULSE_ERR_RPC_OVERLOADED at once when the
 * calls in flight to that peer or overall are at their bound, or
 * IMPULSE_ERR_TRANSPORT_CLOSED after `close()`. Responses to unknown or
 * expired calls, or from another node than the one called, are ignored and
 * counted. Delivery is the transport's: a lost request or response is a
 * timeout. Deterministic under the simulator: timers come from the Clock,
 * ids from the seeded Random, deferrals are microtasks.
 */
import type { Logger } from 'pino';
import { ERROR_CATALOG, type ErrorCode, type ErrorDetails, ImpulseError, isImpulseError } from '../errors.js';
import type { NodeId } from '../raft/types.js';
import { assert } from '../util/assert.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Random } from '../util/random.js';
import type { PeerMessage, Transport } from './transport.js';

export type RpcDone = (error: ImpulseError | null, response?: unknown) => void;
/** Answers a request: call `reply` once (later calls are ignored). Throwing answers IMPULSE_ERR_INTERNAL. */
export type RpcHandler = (from: NodeId, body: unknown, reply: RpcDone) => void;

export interface RpcOptions {
  readonly transport: Pick<Transport, 'send'>;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  /** Calls awaiting an answer, overall (default 4096) and per peer (default 1024). */
  readonly callsInFlightMax?: number;
  readonly callsInFlightPerPeerMax?: number;
}

export interface RpcStats {
  readonly inFlight: number;
  readonly calls: number;
  readonly timeouts: number;
  readonly overloaded: number;
  /** Responses for no call in flight (expired, unknown, or from another node than the one called). */
  readonly lateResponses: number;
  /** RPC messages whose envelope was malformed (ignored). */
  readonly malformed: number;
  /** Handlers that threw (answered IMPULSE_ERR_INTERNAL). */
  readonly handlerErrors: number;
}

/** Longest timeout accepted (10 minutes): longer is a bug in the caller. */
export const RPC_TIMEOUT_MS_MAX = 600_000;

const REQUEST = 0;
const RESPONSE = 1;
const ERROR = 2;

interface PendingCall {
  readonly to: NodeId;
  readonly channel: string;
  readonly done: RpcDone;
  readonly timer: TimerHandle;
}

export class RpcEndpoint {
  private readonly pending = new Map<number, PendingCall>();
  private readonly inFlightByPeer = new Map<NodeId, number>();
  private readonly handlers = new Map<string, RpcHandler>();
  private readonly callsInFlightMax: number;
  private readonly callsInFlightPerPeerMax: number;
  private nextId: number;
  private closed = false;
  private counts = { calls: 0, timeouts: 0, overloaded: 0, lateResponses: 0, malformed: 0, handlerErrors: 0 };

  constructor(private readonly options: RpcOptions) {
    this.callsInFlightMax = options.callsInFlightMax ?? 4096;
    this.callsInFlightPerPeerMax = options.callsInFlightPerPeerMax ?? 1024;
    assert(this.callsInFlightMax >= 1 && this.callsInFlightPerPeerMax >= 1, 'rpc in-flight bounds', this.callsInFlightMax, this.callsInFlightPerPeerMax);
    // A random first id: a response meant for a previous incarnation of this process is unlikely to match a new call.
    this.nextId = options.random.int(2 ** 32);
  }

  /** Answers requests on `channel` with `handler` (one handler per channel). */
  serve(channel: string, handler: RpcHandler): void {
    assert(!this.handlers.has(channel), 'rpc: a handler for the channel exists already', channel);
    this.handlers.set(channel, handler);
  }

  /** Sends `body` to `to` on `channel`; `done` gets the answer (see the guarantees above). `timeoutMs` in (0, 600000]. */
  call(to: NodeId, channel: string, body: unknown, timeoutMs: number, done: RpcDone): void {
    assert(timeoutMs > 0 && timeoutMs <= RPC_TIMEOUT_MS_MAX, 'rpc: timeoutMs out of range', timeoutMs);
    if (this.closed) return this.failSoon(done, new ImpulseError('IMPULSE_ERR_TRANSPORT_CLOSED', 'the RPC endpoint is closed'));
    const peerInFlight = this.inFlightByPeer.get(to) ?? 0;
    if (this.pending.size >= this.callsInFlightMax || peerInFlight >= this.callsInFlightPerPeerMax) {
      this.counts.overloaded++;
      const scope = peerInFlight >= this.callsInFlightPerPeerMax ? `to node ${to}` : 'overall';
      return this.failSoon(done, new ImpulseError('IMPULSE_ERR_RPC_OVERLOADED', `too many calls in flight ${scope}`, { details: { peer: to } }));
    }
    const id = this.allocateId();
    const timer = this.options.clock.setTimer(timeoutMs, () => {
      if (this.settle(id) === undefined) return;
      this.counts.timeouts++;
      done(new ImpulseError('IMPULSE_ERR_RPC_TIMEOUT', `node ${to} did not answer on ${channel} within ${timeoutMs} ms`, { details: { peer: to, timeoutMs } }));
    });
    this.pending.set(id, { to, channel, done, timer });
    this.inFlightByPeer.set(to, peerInFlight + 1);
    this.counts.calls++;
    this.options.transport.send(to, { channel, group: 0, body: [REQUEST, id, body] });
  }

  /** `call` as a promise: resolves with the response, rejects with the ImpulseError. */
  callAsync(to: NodeId, channel: string, body: unknown, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => this.call(to, channel, body, timeoutMs, (error, response) => (error === null ? resolve(response) : reject(error))));
  }

  /** Feed every message of the RPC channels here (from the transport's onMessage). */
  onMessage(from: NodeId, message: PeerMessage): void {
    const envelope = message.body;
    if (!Array.isArray(envelope) || envelope.length !== 3 || !Number.isInteger(envelope[1])) return this.malformed(from, message.channel);
    const [kind, id, payload] = envelope as [unknown, number, unknown];
    if (kind === REQUEST) return this.answer(from, message.channel, id, payload);
    if (kind !== RESPONSE && kind !== ERROR) return this.malformed(from, message.channel);
    const call = this.pending.get(id);
    if (call === undefined || call.to !== from || call.channel !== message.channel) {
      this.counts.lateResponses++;
      return;
    }
    const error = kind === ERROR ? remoteError(payload, from) : null;
    if (kind === ERROR && error === null) return this.malformed(from, message.channel);
    this.settle(id);
    call.done(error, error === null ? payload : undefined);
  }

  /** Fails every call in flight with IMPULSE_ERR_TRANSPORT_CLOSED; later calls fail the same way. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const id of [...this.pending.keys()]) {
      const call = this.settle(id)!;
      this.failSoon(call.done, new ImpulseError('IMPULSE_ERR_TRANSPORT_CLOSED', 'the RPC endpoint closed'));
    }
  }

  stats(): RpcStats {
    return { inFlight: this.pending.size, ...this.counts };
  }

  private answer(from: NodeId, channel: string, id: number, body: unknown): void {
    const handler = this.handlers.get(channel);
    let replied = false;
    const reply: RpcDone = (error, response) => {
      if (replied || this.closed) return;
      replied = true;
      const payload = error === null ? response : { code: error.code, message: error.message, details: error.details };
      this.options.transport.send(from, { channel, group: 0, body: [error === null ? RESPONSE : ERROR, id, payload] });
    };
    if (handler === undefined) return reply(new ImpulseError('IMPULSE_ERR_INTERNAL', `no RPC handler for channel ${channel} on this node`));
    try {
      handler(from, body, reply);
    } catch (error) {
      this.counts.handlerErrors++;
      this.options.logger.error({ err: error, peer: from, channel }, 'rpc handler threw');
      reply(isImpulseError(error) ? error : new ImpulseError('IMPULSE_ERR_INTERNAL', 'the RPC handler failed'));
    }
  }

  /** Removes a call in flight; returns it, or undefined when it was already settled. */
  private settle(id: number): PendingCall | undefined {
    const call = this.pending.get(id);
    if (call === undefined) return undefined;
    this.pending.delete(id);
    call.timer.cancel();
    const left = (this.inFlightByPeer.get(call.to) ?? 1) - 1;
    if (left === 0) this.inFlightByPeer.delete(call.to);
    else this.inFlightByPeer.set(call.to, left);
    return call;
  }

  private allocateId(): number {
    do this.nextId = (this.nextId + 1) >>> 0;
    while (this.pending.has(this.nextId));
    return this.nextId;
  }

  private failSoon(done: RpcDone, error: ImpulseError): void {
    queueMicrotask(() => done(error));
  }

  private malformed(from: NodeId, channel: string): void {
    this.counts.malformed++;
    this.options.logger.debug({ peer: from, channel }, 'rpc: malformed envelope ignored');
  }
}

/** The ImpulseError an error response stands for; null when the payload is not one. */
function remoteError(payload: unknown, from: NodeId): ImpulseError | null {
  if (typeof payload !== 'object' || payload === null) return null;
  const { code, message, details } = payload as Record<string, unknown>;
  if (typeof code !== 'string' || typeof message !== 'string') return null;
  const known = Object.hasOwn(ERROR_CATALOG, code) ? (code as ErrorCode) : 'IMPULSE_ERR_INTERNAL';
  return new ImpulseError(known, `node ${from}: ${message.slice(0, 500)}`, { details: plainDetails(details) });
}

/** Keeps only the fields of `details` that are plain scalar values (at most 16). */
function plainDetails(details: unknown): ErrorDetails {
  if (typeof details !== 'object' || details === null) return {};
  const kept: Record<string, string | number | boolean | null> = {};
  for (const [key, value] of Object.entries(details).slice(0, 16)) {
    if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') kept[key] = value;
  }
  return kept;
}
