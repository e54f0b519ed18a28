/**
 * The client commands' security flags (put, get, scan, status, member, ...):
 * a bearer token and TLS files, each also from the environment so that a
 * token need not appear in the process list (`ps` shows arguments).
 *
 *   IMPULSE_TOKEN=… impulse --endpoint https://10.0.0.1:7070 --ca certs/ca.crt get k
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { ClientOptions } from '../client/client.js';
import { configInvalid } from '../util/config-values.js';

export interface ClientSecurityFlags {
  token?: string;
  ca?: string;
  cert?: string;
  key?: string;
}

export function addClientSecurityOptions(command: Command): Command {
  const env = process.env;
  return command
    .option('--token <token>', 'bearer token for client commands (env IMPULSE_TOKEN; prefer the variable: arguments are visible to other users)', env['IMPULSE_TOKEN'])
    .option('--ca <file>', 'CA certificate (PEM) an https:// endpoint must chain to (env IMPULSE_CA)', env['IMPULSE_CA'])
    .option('--cert <file>', 'client certificate (PEM) for a server that requires one (env IMPULSE_CERT)', env['IMPULSE_CERT'])
    .option('--key <file>', "the client certificate's key (PEM) (env IMPULSE_KEY)", env['IMPULSE_KEY']);
}

/** The client options the flags give; throws IMPULSE_ERR_CONFIG_INVALID (exit 2) for an unreadable file or a lone --cert/--key. */
export function clientSecurityOptions(flags: ClientSecurityFlags): Pick<ClientOptions, 'token' | 'ca' | 'cert' | 'key'> {
  if ((flags.cert === undefined) !== (flags.key === undefined)) throw configInvalid('--cert and --key go together');
  return {
    ...(flags.token !== undefined && flags.token.length > 0 ? { token: flags.token } : {}),
    ...(flags.ca !== undefined ? { ca: readPem('--ca', flags.ca) } : {}),
    ...(flags.cert !== undefined ? { cert: readPem('--cert', flags.cert), key: readPem('--key', flags.key!) } : {}),
  };
}

function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw configInvalid(`${flag}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}
