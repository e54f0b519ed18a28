/**
 * TLS for the client listeners of a node (HTTPS and the Redis protocol port):
 * the certificate files' contents, the node:tls options made from them, and
 * `TlsHandshakeGuard`, which every client TLS listener puts in front of its
 * connections:
 *   - a handshake that has not finished after `handshakeTimeoutMs` is cut
 *     (node:tls's `handshakeTimeout`; its default, 120 s, lets stalled
 *     sockets pile up);
 *   - at most `handshakesMax` handshakes are in progress at once; a connection
 *     beyond that is closed at once, before any TLS work is spent on it, and
 *     counted. A flood of slow or stalled handshakes then costs a bounded
 *     number of sockets and buffers; connections that completed their
 *     handshake are not affected (they are no longer counted);
 *   - failed handshakes (garbage, a refused client certificate, a timeout)
 *     close that socket only, and are counted by node:tls's error code.
 * The figures go into /metrics (`renderTlsHandshakes`), labelled by listener.
 */
import type { Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';

/** PEM contents of a TLS listener's files. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Client certificates must chain to this CA (and are then required). */
  readonly ca?: Buffer;
}

/** node:tls server options for `tls`: a client CA makes client certificates required. */
export function secureContextOptions(tls: TlsMaterial): { cert: Buffer; key: Buffer; ca?: Buffer; requestCert: boolean; rejectUnauthorized: boolean; minVersion: 'TLSv1.2' } {
  return { cert: tls.cert, key: tls.key, ...(tls.ca !== undefined ? { ca: tls.ca } : {}), requestCert: tls.ca !== undefined, rejectUnauthorized: tls.ca !== undefined, minVersion: 'TLSv1.2' };
}

/** Default of `--tls-handshake-timeout-ms`: a client's handshake must finish within 10 s. */
export const TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT = 10_000;
/** Default of `--tls-handshakes-max`: handshakes in progress at once, per listener. */
export const TLS_HANDSHAKES_MAX_DEFAULT = 256;

/**
 * node:tls error codes kept as they are in the failure label; any other code
 * is counted as "other", so the label's values stay a small fixed set
 * whatever a client sends.
 */
const KNOWN_CODES = new Set([
  'ERR_TLS_HANDSHAKE_TIMEOUT',
  'ECONNRESET',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_HTTP_REQUEST',
  'ERR_SSL_UNSUPPORTED_PROTOCOL',
  'ERR_SSL_NO_SHARED_CIPHER',
  'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_CERTIFICATE_VERIFY_FAILED',
  'ERR_SSL_UNEXPECTED_EOF_WHILE_READING',
]);

/** The failure label of a node:tls error code. */
export function failureCodeLabel(code: string | undefined): string {
  return code !== undefined && KNOWN_CODES.has(code) ? code : 'other';
}

export interface TlsHandshakeGuardOptions {
  /** The listener's label in /metrics ("http", "resp"). */
  readonly listener: string;
  readonly logger: Logger;
  /** Handshakes in progress at once, at most (≥ 1). Default `TLS_HANDSHAKES_MAX_DEFAULT`. */
  readonly handshakesMax?: number;
}

/** Handshake bookkeeping of one TLS listener (see the file comment). */
export class TlsHandshakeGuard {
  readonly listener: string;
  readonly handshakesMax: number;
  /** Handshakes that completed. */
  completed = 0;
  /** Connections closed at once because `handshakesMax` handshakes were in progress. */
  rejected = 0;
  /** Failed handshakes by `failureCodeLabel`. */
  readonly failures = new Map<string, number>();
  private readonly logger: Logger;
  private warnedAtCap = false;
  /** Accepted TCP sockets whose handshake has not completed (see `rawSocketOf`). */
  private readonly handshaking = new Set<Socket>();
  /** Sockets closed by `admit` at the cap (their TLS socket still reports a reset). */
  private readonly capped = new WeakSet<Socket>();

  constructor(options: TlsHandshakeGuardOptions) {
    this.listener = options.listener;
    this.logger = options.logger;
    this.handshakesMax = options.handshakesMax ?? TLS_HANDSHAKES_MAX_DEFAULT;
    if (!Number.isInteger(this.handshakesMax) || this.handshakesMax < 1) throw new RangeError(`handshakesMax must be a positive integer, not ${this.handshakesMax}`);
  }

  /** Failed handshakes in all. */
  get failed(): number {
    let sum = 0;
    for (const count of this.failures.values()) sum += count;
    return sum;
  }

  /**
   * Watches `server`'s connections. Call before the server listens. The
   * server's own 'secureConnection' handler serves what completes; a
   * failure's socket is destroyed here.
   */
  attach(server: TlsServer): void {
    // Runs before node:tls wraps the socket: a connection over the cap costs no TLS work.
    server.prependListener('connection', (socket: Socket) => this.admit(socket));
    server.prependListener('secureConnection', (socket: TLSSocket) => {
      const raw = rawSocketOf(socket);
      if (raw !== undefined && this.handshaking.delete(raw)) this.completed++;
    });
    server.on('tlsClientError', (error: Error & { code?: string }, socket: TLSSocket) => {
      socket.destroy();
      const raw = rawSocketOf(socket);
      if (raw !== undefined && this.capped.has(raw)) return; // closed by `admit`: counted as rejected
      const code = failureCodeLabel(error.code);
      this.failures.set(code, (this.failures.get(code) ?? 0) + 1);
      this.logger.debug({ listener: this.listener, remote: socket.remoteAddress, code: error.code, reason: error.message }, 'TLS handshake failed');
    });
  }

  /** Handshakes in progress: accepted TCP sockets whose TLS socket has not yet completed its handshake. */
  get inProgress(): number {
    return this.handshaking.size;
  }

  /** Closes every connection still in its handshake (a listener shutting down: they have nothing to finish). */
  abortHandshakes(): void {
    for (const socket of this.handshaking) socket.destroy();
  }

  private admit(socket: Socket): void {
    if (this.handshaking.size >= this.handshakesMax) {
      this.rejected++;
      this.capped.add(socket);
      if (!this.warnedAtCap) {
        this.warnedAtCap = true;
        this.logger.warn({ listener: this.listener, handshakesMax: this.handshakesMax }, 'too many TLS handshakes in progress: closing new connections until some finish (impulse_tls_handshakes_rejected_total)');
      }
      socket.destroy();
      return;
    }
    if (this.handshaking.size === 0) this.warnedAtCap = false;
    this.handshaking.add(socket);
    // A handshake that fails or times out ends with the socket's close.
    socket.once('close', () => this.handshaking.delete(socket));
  }

}

/** The figures of a node's TLS listeners in the Prometheus text format, one family at a time; '' without listeners. */
export function renderTlsHandshakes(guards: readonly TlsHandshakeGuard[]): string {
  if (guards.length === 0) return '';
  const lines: string[] = [];
  const family = (name: string, type: string, help: string, samples: (guard: TlsHandshakeGuard, label: string) => string[]): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const guard of guards) lines.push(...samples(guard, `listener="${guard.listener}"`));
  };
  family('impulse_tls_handshakes_total', 'counter', 'Client TLS handshakes completed, by listener.', (guard, label) => [`impulse_tls_handshakes_total{${label}} ${guard.completed}`]);
  family('impulse_tls_handshakes_in_progress', 'gauge', 'Client TLS handshakes in progress, by listener.', (guard, label) => [`impulse_tls_handshakes_in_progress{${label}} ${guard.inProgress}`]);
  family('impulse_tls_handshakes_rejected_total', 'counter', 'Client connections closed unhandshaken because --tls-handshakes-max handshakes were in progress, by listener.', (guard, label) => [
    `impulse_tls_handshakes_rejected_total{${label}} ${guard.rejected}`,
  ]);
  family('impulse_tls_handshake_failures_total', 'counter', 'Client TLS handshakes that failed or timed out, by listener and node:tls error code.', (guard, label) =>
    [...guard.failures].map(([code, count]) => `impulse_tls_handshake_failures_total{${label},code="${code}"} ${count}`),
  );
  return lines.join('\n') + '\n';
}

/**
 * The TCP socket a server-side TLSSocket wraps. node:tls keeps it as
 * `_parent` (Node 20 and 24 alike; tls.test.ts checks it). Were it ever
 * missing, a completed handshake would leave the count only when its
 * connection closes: the cap would then bound open connections instead,
 * which is stricter, never looser.
 */
function rawSocketOf(socket: TLSSocket): Socket | undefined {
  return (socket as TLSSocket & { _parent?: Socket })._parent;
}
