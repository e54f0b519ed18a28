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
 *
 * TLS: an https client URL is checked against the system's roots and, when
 * given, `ca` (the cluster's private CA: members' certificates from
 * `impulse certs` or an internal PKI); host names are checked as any client
 * would. node:http(s) rather than fetch, which takes no CA of its own.
 */
import { type IncomingMessage, type RequestOptions, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
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
  /** A private CA (PEM) trusted besides the system's roots for https members. */
  readonly ca?: Buffer;
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
  private readonly ca: (string | Buffer)[] | undefined;
  private inFlight = 0;

  constructor(options: MemberProxyOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 1_500;
    this.inFlightMax = options.inFlightMax ?? 16;
    this.answerBytesMax = options.answerBytesMax ?? 1024 * 1024;
    // Giving `ca` replaces node's roots: keep them, and add the private one.
    this.ca = options.ca === undefined ? undefined : [...rootCertificates, options.ca];
  }

  /** GETs `/{view}` of member `id` at `clientUrl` (an http(s) URL without a path), with the caller's `authorization` header, if any. */
  async relay(id: number, clientUrl: string, view: MemberView, authorization?: string): Promise<RelayedAnswer> {
    // Only what a client URL can be.
    if (!/^https?:\/\/[^/?#]+\/*$/.test(clientUrl)) throw unreachable(id, clientUrl, 'its client URL is not an http(s) URL without a path');
    if (this.inFlight >= this.inFlightMax) {
      throw new ImpulseError('IMPULSE_ERR_OVERLOADED', `${this.inFlight} requests to other members are in flight; retry later`, { details: { retryAfterSeconds: 1 } });
    }
    this.inFlight++;
    try {
      const headers: Record<string, string> = authorization !== undefined ? { authorization } : {};
      const answer = await this.get(new URL(`${clientUrl.replace(/\/+$/, '')}/${view}`), headers, id, clientUrl);
      if (!answer.contentType.startsWith('application/json')) {
        throw unreachable(id, clientUrl, `it answered ${answer.status} with ${answer.contentType || 'no content type'}, not JSON`);
      }
      return { status: answer.status, body: answer.body };
    } finally {
      this.inFlight--;
    }
  }

  /** One GET within `timeoutMs` (connection included) and `answerBytesMax`; every failure an IMPULSE_ERR_MEMBER_UNREACHABLE naming the member. */
  private get(url: URL, headers: Record<string, string>, id: number, clientUrl: string): Promise<{ status: number; contentType: string; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const options: RequestOptions & { ca?: (string | Buffer)[] } = { method: 'GET', headers, timeout: this.timeoutMs, ...(this.ca !== undefined ? { ca: this.ca } : {}) };
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(url, options, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > this.answerBytesMax) {
            req.destroy();
            reject(new ImpulseError('IMPULSE_ERR_MEMBER_UNREACHABLE', `node ${id} answered more than ${this.answerBytesMax} bytes`, { details: { id } }));
          } else chunks.push(chunk);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'] ?? '', body: Buffer.concat(chunks) }));
        res.on('error', (error) => reject(unreachable(id, clientUrl, describeError(error))));
      });
      const deadline = setTimeout(() => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      req.on('close', () => clearTimeout(deadline));
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (error) => reject(unreachable(id, clientUrl, describeError(error))));
      req.end();
    });
  }
}

function unreachable(id: number, clientUrl: string, reason: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_MEMBER_UNREACHABLE', `node ${id} at ${clientUrl}: ${reason}`, { details: { id } });
}

/** A connection error as "connection failed (ECONNREFUSED)"; a TLS refusal names node:tls's code (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE). */
function describeError(error: Error & { code?: unknown }): string {
  return typeof error.code === 'string' ? `connection failed (${error.code})` : error.message;
}
