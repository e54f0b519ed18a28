/**
 * Tokens on the Redis protocol: the same token file, roles and key prefixes as
 * HTTP (src/security/auth.ts, docs/security.md), in Redis's ACL wording.
 *
 *   AUTH <token>                 the token alone (redis-cli -a, ioredis `password`)
 *   AUTH <name> <token>          Redis's `AUTH user pass`: `name` is the token's
 *                                name in the token file, or `default` (clients
 *                                that always send a user name send that one)
 *   HELLO 3 AUTH <name> <token>  the same, and RESP3, in one command
 *
 * With a token file, a connection may run only AUTH, HELLO and QUIT until it
 * has authenticated (`-NOAUTH Authentication required.`); a wrong token or
 * name is `-WRONGPASS ...`. After that, the token's role decides: commands
 * flagged `write` need `write` (a `read` token gets `-NOPERM`), every other
 * command any role; a prefix-limited token may name only keys under its
 * prefix (SCAN: a MATCH whose literal prefix lies inside it), else
 * `-NOPERM ... keys ...`. Nothing in the RESP command set needs `admin`.
 *
 * Until it authenticates, a connection is held to small commands
 * (`PRE_AUTH_LIMITS`, as Redis limits unauthenticated clients), so a stranger
 * cannot make the node buffer large arguments; the full limits apply from the
 * command after a successful AUTH. A reload of the token file applies to open
 * connections at their next command: a removed token is unauthenticated, a
 * changed role or prefix takes effect (`Authorizer.refresh`).
 */
import { type Credential, type KeyBounds, keyAllowed, rangeAllowed, roleAllows } from '../security/auth.js';
import type { AuthRefusal, CommandContext, CommandSpec } from './command.js';
import { errorReply } from './encoder.js';
import type { ParserLimits } from './parser.js';

export const NOAUTH = errorReply('NOAUTH Authentication required.');
export const WRONGPASS = errorReply('WRONGPASS invalid username-password pair or user is disabled.');
export const HELLO_NOAUTH = errorReply(
  'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time',
);
export const KEYS_NOPERM = errorReply('NOPERM this user has no permissions to access one of the keys used as arguments');

/** The user name any token may be presented with (Redis's default user). */
const DEFAULT_USER = 'default';

/** Limits of a connection that has not authenticated (Redis: 10 arguments, 16 KiB each, for unauthenticated clients). */
export const PRE_AUTH_LIMITS: ParserLimits = {
  argsMax: 10,
  argBytesMax: 16 * 1024,
  commandBytesMax: 64 * 1024,
  inlineBytesMax: 16 * 1024,
  bulkBytesProtocolMax: 16 * 1024,
};

/** The connection's credential as it stands after any reload; undefined when not (or no longer) authenticated. */
export function currentCredential(context: CommandContext): Credential | undefined {
  const { auth } = context.server;
  const held = context.client.credential;
  if (auth === undefined || held === undefined) return undefined;
  const credential = auth.refresh(held);
  if (credential === undefined) delete context.client.credential;
  else context.client.credential = credential;
  return credential;
}

/** Whether the connection must authenticate before its next command (a token file, and no valid credential). */
export function mustAuthenticate(context: CommandContext): boolean {
  return context.server.auth !== undefined && currentCredential(context) === undefined;
}

/**
 * The refusal of a command by the token check, or undefined when it may run.
 * `spec` is known and its arity checked.
 */
export function accessRefusal(context: CommandContext, spec: CommandSpec, args: readonly Buffer[]): Buffer | undefined {
  if (context.server.auth === undefined || spec.flags.includes('no-auth')) return undefined;
  const credential = currentCredential(context);
  if (credential === undefined) return refused(context, 'noauth', NOAUTH);
  const { principal } = credential;
  if (spec.flags.includes('write') && !roleAllows(principal, 'write')) {
    return refused(context, 'noperm', errorReply(`NOPERM this user has no permissions to run the '${spec.name}' command`));
  }
  if (principal.prefix !== undefined) {
    for (const key of keyArguments(spec, args)) if (!keyAllowed(principal, key)) return refused(context, 'noperm', KEYS_NOPERM);
  }
  return undefined;
}

/**
 * AUTH's check: authenticates the connection with `token` (and `user`, when
 * given); the error reply when they do not match a token of the file. Only
 * for a server with a token file.
 */
export function authenticate(context: CommandContext, user: Buffer | undefined, token: Buffer): Buffer | undefined {
  const credential = context.server.auth!.identify(token.toString('utf8'));
  const name = user?.toString('utf8');
  if (credential === undefined || (name !== undefined && name !== DEFAULT_USER && name !== credential.principal.name)) {
    return refused(context, 'wrongpass', WRONGPASS);
  }
  context.client.credential = credential;
  return undefined;
}

/** SCAN's check: the NOPERM reply when the connection's token may not read all of `range`; undefined when it may. */
export function rangeRefusal(context: CommandContext, range: KeyBounds): Buffer | undefined {
  const credential = currentCredential(context);
  if (credential === undefined || rangeAllowed(credential.principal, range)) return undefined;
  return refused(context, 'noperm', KEYS_NOPERM);
}

function refused(context: CommandContext, reason: AuthRefusal, reply: Buffer): Buffer {
  context.server.authRefused(reason);
  return reply;
}

/** The key arguments of a command by its key spec (first, last, step; last -1 is the last argument). */
function keyArguments(spec: CommandSpec, args: readonly Buffer[]): Buffer[] {
  const [first, last, step] = spec.keys;
  if (first === 0) return [];
  const end = last < 0 ? args.length + last : last;
  const keys: Buffer[] = [];
  for (let i = first; i <= end && i < args.length; i += step) keys.push(args[i]!);
  return keys;
}
