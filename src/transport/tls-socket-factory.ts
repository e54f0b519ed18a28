/**
 * Mutual TLS between cluster members (issue #16, docs/security.md): a
 * `SocketFactory` over node:tls. Both sides present a certificate and both
 * require the other's to chain to the cluster CA; a plain-TCP peer, a peer
 * with a certificate from another CA, an expired one or none at all never
 * reaches the impulse handshake.
 *
 * Identity: a certificate names the node ids it may act as, as DNS
 * subjectAltNames (or the subject CN) of the form `impulse-node-<id>`
 * (`NODE_NAME_PREFIX`). The transport checks them against the handshake
 * (`certifiedNodeIds`): an acceptor refuses a HELLO whose `from` id the
 * dialer's certificate does not name, and a dialer refuses a WELCOME from a
 * node whose certificate does not name the id it meant to reach. So a stolen
 * client certificate, or a member's certificate, cannot pose as another member.
 * Host names are not checked between members (addresses change; ids do not).
 *
 * Refusals are logged at warn with the reason node:tls gives (e.g.
 * CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE) and the certificate's
 * subject, never with key material.
 */
import { isIP, type Server, type Socket } from 'node:net';
import { type PeerCertificate, type SecureContext, type TLSSocket, connect as tlsConnect, createSecureContext, createServer as createTlsServer } from 'node:tls';
import type { Logger } from 'pino';
import type { NodeId } from '../raft/types.js';
import { isNodeId } from './handshake.js';
import { type HostPort, type Listener, type SocketFactory, whenReady } from './socket-factory.js';

/** A certificate names node id N as `impulse-node-N` (DNS subjectAltName or CN). */
export const NODE_NAME_PREFIX = 'impulse-node-';

/** PEM contents: this node's certificate and key, and the cluster CA peers must chain to. */
export interface PeerTlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer;
}

export interface TlsSocketFactoryOptions {
  readonly material: PeerTlsMaterial;
  readonly logger: Logger;
  /** An accepted connection whose TLS handshake has not finished by then is closed, ms. Default 3,000. */
  readonly handshakeTimeoutMs?: number;
}

export class TlsSocketFactory implements SocketFactory {
  private context: SecureContext;
  private material: PeerTlsMaterial;
  private readonly servers = new Set<ReturnType<typeof createTlsServer>>();
  /** TLS handshakes refused or failed on accepted connections (by the reason node:tls gives; its code, or "other"). */
  readonly refusedByReason = new Map<string, number>();
  /** Peer TLS handshakes completed with a verified certificate: accepted (inbound) and dialled (outbound). */
  readonly handshakes = { inbound: 0, outbound: 0 };
  /** Dials whose TLS handshake failed (the peer's certificate refused, a reset, a timeout), by node:tls code or "other". */
  readonly dialFailuresByReason = new Map<string, number>();

  constructor(private readonly options: TlsSocketFactoryOptions) {
    this.material = options.material;
    this.context = createSecureContext(contextOptions(options.material));
  }

  /**
   * Replaces this node's certificate, key and CA (a reload). New connections,
   * both directions, use them; open ones keep theirs. Throws when the key does
   * not match the certificate (then nothing changes).
   */
  setMaterial(material: PeerTlsMaterial): void {
    const context = createSecureContext(contextOptions(material));
    this.context = context;
    this.material = material;
    for (const server of this.servers) server.setSecureContext(serverOptions(material));
  }

  connect(address: HostPort, signal: AbortSignal): Promise<Socket> {
    const socket = tlsConnect({
      host: address.host,
      port: address.port,
      secureContext: this.context,
      // SNI takes a host name, never an address.
      ...(isIP(address.host) === 0 ? { servername: address.host } : {}),
      rejectUnauthorized: true,
      // The chain is checked (rejectUnauthorized); who the peer is, is checked against the handshake, not the host name.
      checkServerIdentity: () => undefined,
      minVersion: 'TLSv1.2',
    });
    socket.setNoDelay(true);
    return whenReady(socket, 'secureConnect', signal, (error) => {
      const reason = error.code ?? 'other';
      this.dialFailuresByReason.set(reason, (this.dialFailuresByReason.get(reason) ?? 0) + 1);
      return new Error(`TLS: ${error.code ?? 'error'}: ${error.message}`, { cause: error });
    }).then((ready) => {
      this.handshakes.outbound++;
      return ready;
    });
  }

  listen(host: string, port: number, onConnection: (socket: Socket) => void): Promise<Listener> {
    return new Promise((resolve, reject) => {
      // rejectUnauthorized false: the handshake completes, and the check below logs why a peer is refused before closing.
      const server = createTlsServer({ ...serverOptions(this.material), handshakeTimeout: this.options.handshakeTimeoutMs ?? 3_000 });
      server.on('secureConnection', (socket: TLSSocket) => {
        if (!socket.authorized) return this.refuse(socket, String(socket.authorizationError ?? 'NO_CERTIFICATE'), subjectOf(socket.getPeerCertificate()));
        this.handshakes.inbound++;
        socket.setNoDelay(true);
        onConnection(socket);
      });
      server.on('tlsClientError', (error: Error & { code?: string }, socket: TLSSocket) => this.refuse(socket, error.code ?? 'other', undefined));
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        this.servers.add(server);
        const bound = (server as Server).address();
        const address = typeof bound === 'object' && bound !== null ? { host: bound.address, port: bound.port } : { host, port };
        resolve({
          address,
          close: () =>
            new Promise<void>((done) => {
              this.servers.delete(server);
              server.close(() => done());
            }),
        });
      });
    });
  }

  /**
   * The figures in the Prometheus text format (for the node's /metrics):
   *   impulse_peer_tls_handshakes_total{direction}       verified handshakes, inbound and outbound
   *   impulse_peer_tls_refusals_total{reason}            accepted connections refused in or right after the handshake
   *   impulse_peer_tls_dial_failures_total{reason}       dials that failed before a verified handshake
   * Reasons are node:tls / OpenSSL codes (CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE,
   * ERR_TLS_HANDSHAKE_TIMEOUT, ...): a fixed vocabulary, whatever a peer sends.
   */
  renderMetrics(): string {
    const lines = [
      '# HELP impulse_peer_tls_handshakes_total Peer (member-to-member) TLS handshakes completed with a verified certificate, by direction.',
      '# TYPE impulse_peer_tls_handshakes_total counter',
      `impulse_peer_tls_handshakes_total{direction="inbound"} ${this.handshakes.inbound}`,
      `impulse_peer_tls_handshakes_total{direction="outbound"} ${this.handshakes.outbound}`,
      '# HELP impulse_peer_tls_refusals_total Peer connections refused in the TLS handshake or for their certificate, by reason.',
      '# TYPE impulse_peer_tls_refusals_total counter',
      ...[...this.refusedByReason].map(([reason, count]) => `impulse_peer_tls_refusals_total{reason="${labelValue(reason)}"} ${count}`),
      '# HELP impulse_peer_tls_dial_failures_total Dials to peers that failed before a verified TLS handshake (an unreachable peer included: ECONNREFUSED), by reason.',
      '# TYPE impulse_peer_tls_dial_failures_total counter',
      ...[...this.dialFailuresByReason].map(([reason, count]) => `impulse_peer_tls_dial_failures_total{reason="${labelValue(reason)}"} ${count}`),
    ];
    return lines.join('\n') + '\n';
  }

  /** The node ids the peer's (verified) certificate names; `[]` when none. See the file comment. */
  certifiedNodeIds(socket: Socket): readonly NodeId[] {
    const certificate = (socket as TLSSocket).getPeerCertificate?.();
    return certificate === undefined ? [] : nodeIdsOf(certificate);
  }

  private refuse(socket: TLSSocket, reason: string, subject: string | undefined): void {
    this.refusedByReason.set(reason, (this.refusedByReason.get(reason) ?? 0) + 1);
    this.options.logger.warn({ remote: socket.remoteAddress, reason, ...(subject !== undefined ? { subject } : {}) }, `refused a peer connection: TLS ${describeReason(reason)}`);
    socket.destroy();
  }
}

/** The node ids a certificate names: DNS subjectAltNames and the CN of the form impulse-node-<id>. */
export function nodeIdsOf(certificate: PeerCertificate): NodeId[] {
  const names: string[] = [];
  for (const entry of (certificate.subjectaltname ?? '').split(',')) {
    const match = /^\s*DNS:(.+?)\s*$/.exec(entry);
    if (match !== null) names.push(match[1]!);
  }
  const commonName = certificate.subject?.CN;
  if (typeof commonName === 'string') names.push(commonName);
  const ids = new Set<NodeId>();
  for (const name of names) {
    if (!name.startsWith(NODE_NAME_PREFIX)) continue;
    const text = name.slice(NODE_NAME_PREFIX.length);
    if (!/^[1-9][0-9]{0,15}$/.test(text)) continue;
    const id = Number(text);
    if (isNodeId(id)) ids.add(id);
  }
  return [...ids];
}

function contextOptions(material: PeerTlsMaterial): { cert: Buffer; key: Buffer; ca: Buffer; minVersion: 'TLSv1.2' } {
  return { cert: material.cert, key: material.key, ca: material.ca, minVersion: 'TLSv1.2' };
}

function serverOptions(material: PeerTlsMaterial): ReturnType<typeof contextOptions> & { requestCert: true; rejectUnauthorized: false } {
  return { ...contextOptions(material), requestCert: true, rejectUnauthorized: false };
}

/** A reason as a Prometheus label value: codes are [A-Z0-9_]; anything else is replaced. */
function labelValue(reason: string): string {
  return /^[A-Za-z0-9_]{1,64}$/.test(reason) ? reason : 'other';
}

function subjectOf(certificate: PeerCertificate | undefined): string | undefined {
  const commonName = certificate?.subject?.CN;
  return typeof commonName === 'string' ? `CN=${commonName}` : undefined;
}

/** A sentence for the common refusals; the code itself otherwise. */
function describeReason(reason: string): string {
  switch (reason) {
    case 'CERT_HAS_EXPIRED':
      return 'certificate has expired (CERT_HAS_EXPIRED)';
    case 'CERT_NOT_YET_VALID':
      return 'certificate is not yet valid (CERT_NOT_YET_VALID)';
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
      return `certificate does not chain to the cluster CA (${reason})`;
    case 'NO_CERTIFICATE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
      return `peer presented no usable certificate (${reason})`;
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_HTTP_REQUEST':
      return `handshake failed: not TLS (a plain-TCP peer?) (${reason})`;
    case 'ERR_TLS_HANDSHAKE_TIMEOUT':
      return 'handshake timed out (ERR_TLS_HANDSHAKE_TIMEOUT)';
    default:
      return `handshake failed (${reason})`;
  }
}
