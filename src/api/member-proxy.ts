/**
 * `GET /cluster/nodes/{id}/{view}`: another member's `/status`, `/health` or
 * `/cluster`, fetched by this member from the client URL the membership
 * publishes. It lets the dashboard of one member (src/ui/) watch all of them
 * from one origin (no CORS), and tells a member that does not answer apart
 * from one that answers badly: a member that refuses the connection, times
 * out or answers something that is not JSON gives
 * `502 IMPULSE_ERR_MEMBER_UNREACHABLE` naming it, at once or after
 * `timeoutMs` — never a hung request.
 *
 * Bounds: one relay waits at most `timeoutMs`; at most `inFlightMax` relays
 * run at once (more are refused with 503 OVERLOADED, so a stuck member cannot
 * pile up sockets and memory here); an answer is read up to `answerBytesMax`.
 * The member's own status code and JSON body pass through unchanged (a
 * member without a leader answers /health with 503, and that is the news).
 */
import { ImpulseError } from '../errors.js';

export const MEMBER_VIEWS = ['status', 'health', 'cluster'] as const;
export type MemberView = (typeof MEMBER_VIEWS)[number];

export interface MemberProxyOptions {
  /** How long one relayed request may take, connection included, ms. Default 1,500. */
  readonly timeoutMs?: number;
  /** Relays in flight at once. Default 16. */
  readonly inFlightMax?: number;
  /** Longest answer relayed, bytes. Default 1 MiB. */
  readonly answerBytesMax?: number;
}

/** A relayed answer: the member's status code and its JSON body, as bytes. */
export interface RelayedAnswer {
  readonly status: number;
  readonly body: Buffer;
}

export interface MemberRoute {
  readonly id: number;
  readonly view: MemberView;
}

/** The member route `path` names, or undefined when it is not one. A malformed id or view is a 404 like any unknown path. */
export function matchMemberRoute(path: string): MemberRoute | undefined {
  const match = /^\/cluster\/nodes\/([1-9][0-9]{0,9})\/([a-z]{1,16})$/.exec(path);
  if (match === null) return undefined;
  const view = match[2] as MemberView;
  if (!MEMBER_VIEWS.includes(view)) return undefined;
  return { id: Number(match[1]), view };
}

export class MemberProxy {
  private readonly timeoutMs: number;
  private readonly inFlightMax: number;
  private readonly answerBytesMax: number;
  private inFlight = 0;

  constructor(options: MemberProxyOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 1_500;
    this.inFlightMax = options.inFlightMax ?? 16;
    this.answerBytesMax = options.answerBytesMax ?? 1024 * 1024;
  }

  /** GETs `/{view}` of member `id` at `clientUrl` (an http(s) URL without a path), with the caller's `authorization` header, if any. */
  async relay(id: number, clientUrl: string, view: MemberView, authorization?: string): Promise<RelayedAnswer> {
    // Only what a client URL can be: fetch would also read data: and blob: URLs.
    if (!/^https?:\/\/[^/?#]+\/*$/.test(clientUrl)) throw unreachable(id, clientUrl, 'its client URL is not an http(s) URL without a path');
    if (this.inFlight >= this.inFlightMax) {
      throw new ImpulseError('IMPULSE_ERR_OVERLOADED', `${this.inFlight} requests to other members are in flight; retry later`, { details: { retryAfterSeconds: 1 } });
    }
    this.inFlight++;
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      const headers: Record<string, string> = authorization !== undefined ? { authorization } : {};
      const response = await fetch(`${clientUrl.replace(/\/+$/, '')}/${view}`, { signal, redirect: 'error', headers });
      const body = await this.readAnswer(response, id);
      if (!(response.headers.get('content-type') ?? '').startsWith('application/json')) {
        throw unreachable(id, clientUrl, `it answered ${response.status} with ${response.headers.get('content-type') ?? 'no content type'}, not JSON`);
      }
      return { status: response.status, body };
    } catch (error) {
      if (error instanceof ImpulseError) throw error;
      const reason = signal.aborted ? `no answer within ${this.timeoutMs} ms` : describeFetchError(error);
      throw unreachable(id, clientUrl, reason);
    } finally {
      this.inFlight--;
    }
  }

  private async readAnswer(response: Response, id: number): Promise<Buffer> {
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    if (response.body === null) return Buffer.alloc(0);
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return Buffer.concat(chunks);
      bytes += value.length;
      if (bytes > this.answerBytesMax) {
        await reader.cancel();
        throw new ImpulseError('IMPULSE_ERR_MEMBER_UNREACHABLE', `node ${id} answered more than ${this.answerBytesMax} bytes`, { details: { id } });
      }
      chunks.push(value);
    }
  }
}

function unreachable(id: number, clientUrl: string, reason: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_MEMBER_UNREACHABLE', `node ${id} at ${clientUrl}: ${reason}`, { details: { id } });
}

/** undici reports "fetch failed" and hides the reason (ECONNREFUSED, ...) in `cause`. */
function describeFetchError(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return `connection failed (${cause.code})`;
  if (typeof cause?.message === 'string') return cause.message;
  return error instanceof Error ? error.message : String(error);
}
