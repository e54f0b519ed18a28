/**
 * The security files of a running `impulse serve`: the token file and the TLS
 * certificates, read at start and reloaded without a restart — on SIGHUP
 * (everything) and when a certificate, key or CA file changes (polled every
 * `FILE_POLL_MS`). A reload that fails (a missing file, a key that does not
 * match its certificate, a malformed token file) is logged and changes
 * nothing: the node keeps serving with what it had.
 */
import { readFile } from 'node:fs/promises';
import { unwatchFile, watchFile } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { Authorizer, TokenTable } from '../security/auth.js';
import type { TlsMaterial } from '../security/tls.js';
import { ImpulseError } from '../errors.js';
import type { PeerTlsMaterial } from '../transport/tls-socket-factory.js';
import { isLoopback, type SecurityConfig, type TlsFiles } from './security-config.js';

/** How often watched certificate files are checked for changes, ms. */
const FILE_POLL_MS = 2_000;

/** Reads a listener's PEM files and checks that the key belongs to the certificate. */
export async function readTlsMaterial(files: TlsFiles): Promise<TlsMaterial> {
  const [cert, key, ca] = await Promise.all([readSecurityFile(files.certFile), readSecurityFile(files.keyFile), files.caFile === undefined ? undefined : readSecurityFile(files.caFile)]);
  try {
    createSecureContext({ cert, key, ...(ca !== undefined ? { ca } : {}) });
  } catch (error) {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `TLS files ${files.certFile} and ${files.keyFile} are not a usable certificate and key: ${(error as Error).message}`);
  }
  return { cert, key, ...(ca !== undefined ? { ca } : {}) };
}

/** The peer transport's files: like `readTlsMaterial`, with the cluster CA required. */
export async function readPeerTlsMaterial(files: Required<TlsFiles>): Promise<PeerTlsMaterial> {
  const material = await readTlsMaterial(files);
  return { cert: material.cert, key: material.key, ca: material.ca! };
}

/** The token table of the token file, or undefined without one. */
export async function readTokens(config: SecurityConfig): Promise<TokenTable | undefined> {
  if (config.tokenFile === undefined) return undefined;
  return TokenTable.parse((await readSecurityFile(config.tokenFile)).toString('utf8'), config.tokenFile);
}

/** The server's authorisation policy from the token file, or undefined without one. */
export async function loadAuthorizer(config: SecurityConfig): Promise<Authorizer | undefined> {
  const tokens = await readTokens(config);
  return tokens === undefined ? undefined : new Authorizer(tokens, config.metricsOpen);
}

/** Start-up warnings a careful operator wants to see (never the tokens). */
export function securityWarnings(config: SecurityConfig, host: string): string[] {
  const warnings: string[] = [];
  if (config.tokenFile !== undefined && config.clientTls === undefined && !isLoopback(host)) {
    warnings.push('bearer tokens travel in clear text over plain HTTP: give --tls-cert and --tls-key');
  }
  if (config.insecureListen) warnings.push('--insecure-listen: protected mode is off');
  return warnings;
}

export interface ReloadTargets {
  readonly config: SecurityConfig;
  readonly logger: Logger;
  readonly authorizer?: Authorizer;
  /** Installs new client TLS material (ImpulseServer.setTls). */
  readonly clientTls?: (material: TlsMaterial) => void;
  /** Installs new peer TLS material (TlsSocketFactory.setMaterial). */
  readonly peerTls?: (material: PeerTlsMaterial) => void;
}

/**
 * Reloads everything now; resolves once done. Each part either takes effect
 * whole or not at all (logged).
 */
export async function reloadSecurity(targets: ReloadTargets, why: string): Promise<void> {
  const { config, logger } = targets;
  const parts: Array<[string, () => Promise<void>]> = [];
  if (targets.authorizer !== undefined) parts.push(['tokens', async () => targets.authorizer!.reload((await readTokens(config))!)]);
  if (targets.clientTls !== undefined && config.clientTls !== undefined) parts.push(['client TLS', async () => targets.clientTls!(await readTlsMaterial(config.clientTls!))]);
  if (targets.peerTls !== undefined && config.peerTls !== undefined) parts.push(['peer TLS', async () => targets.peerTls!(await readPeerTlsMaterial(config.peerTls!))]);
  if (parts.length === 0) logger.info({ why }, 'nothing to reload: no token file or TLS files (logs go to stdout: no log file to reopen)');
  for (const [what, reload] of parts) {
    try {
      await reload();
      logger.info({ what, why }, 'reloaded');
    } catch (error) {
      logger.error({ what, why, reason: (error as Error).message }, 'reload failed; keeping the previous configuration');
    }
  }
}

/**
 * Reloads on SIGHUP and whenever a certificate, key or CA file changes.
 * Returns a function that stops watching.
 */
export function watchSecurity(targets: ReloadTargets): () => void {
  const onHangup = (): void => void reloadSecurity(targets, 'SIGHUP');
  process.on('SIGHUP', onHangup);
  const { clientTls, peerTls } = targets.config;
  const files = [...new Set([clientTls?.certFile, clientTls?.keyFile, clientTls?.caFile, peerTls?.certFile, peerTls?.keyFile, peerTls?.caFile].filter((file): file is string => file !== undefined))];
  for (const file of files) {
    watchFile(file, { interval: FILE_POLL_MS, persistent: false }, (current, previous) => {
      if (current.mtimeMs !== previous.mtimeMs || current.size !== previous.size || current.ino !== previous.ino) void reloadSecurity(targets, `${file} changed`);
    });
  }
  return () => {
    process.off('SIGHUP', onHangup);
    for (const file of files) unwatchFile(file);
  };
}

async function readSecurityFile(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}
