/**
 * The security flags of `impulse serve` (docs/security.md), in a block of their
 * own: bearer tokens, TLS for clients, mutual TLS between cluster members, and
 * the safe default (protected mode).
 *
 * PROTECTED MODE (as Redis's): a node refuses to listen for clients on an
 * address other than loopback unless clients must authenticate (a token file,
 * or TLS client certificates), and a cluster member refuses to listen for
 * peers on such an address without mutual TLS; `--insecure-listen` overrides
 * both, for networks the operator secures otherwise.
 */
import { isIP } from 'node:net';
import { type Command, Option } from 'commander';
import { TLS_HANDSHAKES_MAX_DEFAULT } from '../security/tls.js';
import { configInvalid as invalid, integerValue } from '../util/config-values.js';

export interface SecurityFlags {
  tokenFile?: string;
  metricsOpen?: boolean;
  insecureListen?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  peerTlsCa?: string;
  peerTlsCert?: string;
  peerTlsKey?: string;
  tlsHandshakesMax?: string;
}

/** TLS files of a listener (paths; read at start and on every reload). */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** Clients (or peers) must present a certificate chaining to this CA. */
  readonly caFile?: string;
}

export interface SecurityConfig {
  /** The token file (auth.ts format); absent: no tokens. */
  readonly tokenFile?: string;
  /** /metrics and /status answer without a token. */
  readonly metricsOpen: boolean;
  /** Protected mode is off (--insecure-listen). */
  readonly insecureListen: boolean;
  /** HTTPS for clients; `caFile` is --tls-client-ca (client certificates required). */
  readonly clientTls?: TlsFiles;
  /** Mutual TLS between members: `caFile` (the cluster CA) is always present. */
  readonly peerTls?: Required<TlsFiles>;
  /** Client TLS handshakes in progress at once, per listener (HTTPS, RESP); beyond, new connections are closed unhandshaken. */
  readonly tlsHandshakesMax: number;
}

/** Adds the security flags to `serve`. */
export function addSecurityOptions(command: Command): Command {
  return command
    .option('--token-file <file>', 'bearer tokens, one "name role token [prefix]" per line (roles: read, write, admin); reloaded on SIGHUP')
    .option('--metrics-open', '/metrics and /status answer without a token')
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM); reloaded on SIGHUP or when the file changes')
    .option('--tls-key <file>', "the certificate's private key (PEM)")
    .option('--tls-client-ca <file>', 'require client certificates that chain to this CA (PEM)')
    .option('--tls-handshakes-max <n>', `client TLS handshakes in progress at once, per listener; more connections are closed at once (default ${TLS_HANDSHAKES_MAX_DEFAULT})`)
    .option('--peer-tls-ca <file>', 'mutual TLS between members: peers must present a certificate from this cluster CA naming their node id')
    .option('--peer-tls-cert <file>', "this member's peer certificate (default: --tls-cert); must name impulse-node-<id>")
    .option('--peer-tls-key <file>', 'its private key (default: --tls-key)')
    .addOption(new Option('--insecure-listen', 'allow a non-loopback --host or --peer-host without client authentication or peer TLS (protected mode off)'));
}

/**
 * Validates the security flags. `host` is the client listen address;
 * `peerHost` the peer listen address of a cluster member (undefined on a
 * single node). Throws IMPULSE_ERR_CONFIG_INVALID (exit 2) with one sentence.
 */
export function parseSecurityConfig(flags: SecurityFlags, host: string, peerHost: string | undefined): SecurityConfig {
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) throw invalid('--tls-cert and --tls-key go together');
  if (flags.tlsClientCa !== undefined && flags.tlsCert === undefined) throw invalid('--tls-client-ca needs --tls-cert and --tls-key (client certificates are checked in the TLS handshake)');
  const clientTls: TlsFiles | undefined =
    flags.tlsCert === undefined ? undefined : { certFile: flags.tlsCert, keyFile: flags.tlsKey!, ...(flags.tlsClientCa !== undefined ? { caFile: flags.tlsClientCa } : {}) };
  let peerTls: Required<TlsFiles> | undefined;
  if (flags.peerTlsCa !== undefined) {
    if (peerHost === undefined) throw invalid('--peer-tls-ca is for cluster members (it needs --node-id)');
    const certFile = flags.peerTlsCert ?? flags.tlsCert;
    const keyFile = flags.peerTlsKey ?? flags.tlsKey;
    if (certFile === undefined || keyFile === undefined) throw invalid('--peer-tls-ca needs a certificate and key: --peer-tls-cert and --peer-tls-key, or --tls-cert and --tls-key');
    peerTls = { caFile: flags.peerTlsCa, certFile, keyFile };
  } else if (flags.peerTlsCert !== undefined || flags.peerTlsKey !== undefined) {
    throw invalid('--peer-tls-cert and --peer-tls-key need --peer-tls-ca (the CA peers are checked against)');
  }
  const insecureListen = flags.insecureListen === true;
  if (!insecureListen) {
    if (!isLoopback(host) && flags.tokenFile === undefined && clientTls?.caFile === undefined) {
      throw invalid(
        `refusing to listen on ${host} where anyone who reaches it could read and write every key: give --token-file or --tls-client-ca, or pass --insecure-listen if the network is secured otherwise`,
      );
    }
    if (peerHost !== undefined && !isLoopback(peerHost) && peerTls === undefined) {
      throw invalid(`refusing to accept peers on ${peerHost} without mutual TLS (anyone who reaches it could join the Raft conversation): give --peer-tls-ca, or pass --insecure-listen if the network is secured otherwise`);
    }
  }
  const tlsHandshakesMax = flags.tlsHandshakesMax === undefined ? TLS_HANDSHAKES_MAX_DEFAULT : integerValue('--tls-handshakes-max', flags.tlsHandshakesMax, 1, 100_000);
  if (flags.tlsHandshakesMax !== undefined && clientTls === undefined) throw invalid('--tls-handshakes-max needs --tls-cert (it bounds TLS handshakes)');
  return {
    ...(flags.tokenFile !== undefined ? { tokenFile: flags.tokenFile } : {}),
    metricsOpen: flags.metricsOpen === true,
    tlsHandshakesMax,
    insecureListen,
    ...(clientTls !== undefined ? { clientTls } : {}),
    ...(peerTls !== undefined ? { peerTls } : {}),
  };
}

/** Whether `host` names only this machine: localhost, 127.0.0.0/8 or ::1. A name other than localhost counts as not (it may resolve anywhere). */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || /^(0{0,4}:){7}0{0,3}1$/.test(bare) || /^::ffff:127\./i.test(bare);
  return false;
}
