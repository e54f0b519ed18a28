/**
 * Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, CLIENT,
 * READONLY / READWRITE. They touch only the connection's own state.
 *
 * AUTH: with a token file, `AUTH [name] <token>` checks a token of the file
 * (access.ts). Without one, it answers as Redis does when the default user
 * has no password ("nopass"): `AUTH <password>` is an error saying no
 * password is configured, `AUTH default <anything>` succeeds, any other user
 * is WRONGPASS. HELLO's AUTH option follows the same rules.
 */
import type { ClientState, CommandContext, CommandSpec } from '../command.js';
import { integerArg, isKeyword } from '../command.js';
import { type ProtocolVersion, OK, PONG, bulkReply, errorReply, integerReply, nullReply, valueReply } from '../encoder.js';
import { NOT_INTEGER, SYNTAX_ERROR, unknownSubcommand, wrongArity } from '../errors.js';
import { HELLO_NOAUTH, WRONGPASS, authenticate, mustAuthenticate } from '../access.js';

const NO_KEYS: readonly [number, number, number] = [0, 0, 0];
const NAME_BYTES_MAX = 1024;

const ping: CommandSpec = {
  name: 'ping', arity: -1, flags: ['fast'], keys: NO_KEYS, group: 'connection', summary: 'PONG, or the message given.',
  run: (_context, args) => {
    if (args.length > 2) return wrongArity('ping');
    return args.length === 2 ? bulkReply(args[1]!) : PONG;
  },
};

const echo: CommandSpec = {
  name: 'echo', arity: 2, flags: ['fast'], keys: NO_KEYS, group: 'connection', summary: 'Returns the message.',
  run: (_context, args) => bulkReply(args[1]!),
};

const select: CommandSpec = {
  name: 'select', arity: 2, flags: ['fast'], keys: NO_KEYS, group: 'connection', summary: 'Selects database 0, the only one.',
  run: (_context, args) => {
    const index = integerArg(args[1]!);
    if (index === undefined) return NOT_INTEGER;
    return index === 0 ? OK : errorReply('ERR DB index is out of range');
  },
};

const quit: CommandSpec = {
  name: 'quit', arity: -1, flags: ['fast', 'no-auth'], keys: NO_KEYS, group: 'connection', summary: 'Closes the connection after OK.',
  // The connection takes nothing after QUIT and closes once this reply is written (connection.ts).
  run: () => OK,
};

/** AUTH's check (`username` absent: `AUTH <password>`); undefined when the credentials pass. */
function authFailure(context: CommandContext, username: Buffer | undefined, password: Buffer): Buffer | undefined {
  if (context.server.auth !== undefined) return authenticate(context, username, password);
  // Redis's rule for a default user without a password.
  if (username === undefined) {
    return errorReply('ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?');
  }
  return username.toString('utf8') === 'default' ? undefined : WRONGPASS;
}

const auth: CommandSpec = {
  name: 'auth', arity: -2, flags: ['fast', 'no-auth'], keys: NO_KEYS, group: 'connection', summary: 'Authenticates with a token of the token file ([name] token); without one, user "default" always passes.',
  run: (context, args) => {
    if (args.length > 3) return SYNTAX_ERROR;
    return authFailure(context, args.length === 3 ? args[1] : undefined, args[args.length - 1]!) ?? OK;
  },
};

/** CLIENT SETNAME's rule: printable ASCII without spaces (or empty, to clear). */
function nameError(name: Buffer): Buffer | undefined {
  if (name.length > NAME_BYTES_MAX) return errorReply(`ERR client names are at most ${NAME_BYTES_MAX} bytes`);
  for (const byte of name) if (byte < 0x21 || byte > 0x7e) return errorReply('ERR Client names cannot contain spaces, newlines or special characters.');
  return undefined;
}

function helloReply(client: ClientState, context: CommandContext): Buffer {
  const fields = new Map<string, string | number | readonly never[]>([
    ['server', 'redis'],
    ['version', context.server.redisVersion],
    ['proto', client.proto],
    ['id', client.id],
    ['mode', 'standalone'],
    ['role', 'master'],
    ['modules', []],
    ['impulse_version', context.server.version],
  ]);
  return valueReply(client.proto, fields);
}

const hello: CommandSpec = {
  name: 'hello', arity: -1, flags: ['fast', 'no-auth'], keys: NO_KEYS, group: 'connection', summary: 'Picks RESP2 or RESP3; optional AUTH and SETNAME.',
  run: (context, args) => {
    let proto: ProtocolVersion = context.client.proto;
    if (args.length >= 2) {
      const version = integerArg(args[1]!);
      if (version === undefined) return errorReply('ERR Protocol version is not an integer or out of range');
      if (version !== 2 && version !== 3) return errorReply('NOPROTO unsupported protocol version');
      proto = version;
    }
    let name: Buffer | undefined;
    let authenticated = false;
    for (let i = 2; i < args.length; i++) {
      if (isKeyword(args[i], 'AUTH') && i + 2 < args.length) {
        const failure = authFailure(context, args[i + 1]!, args[i + 2]!);
        if (failure !== undefined) return failure;
        authenticated = true;
        i += 2;
      } else if (isKeyword(args[i], 'SETNAME') && i + 1 < args.length) {
        name = args[++i]!;
        const failure = nameError(name);
        if (failure !== undefined) return failure;
      } else {
        return errorReply(`ERR Syntax error in HELLO option '${args[i]!.toString('latin1')}'`, 'latin1');
      }
    }
    if (!authenticated && mustAuthenticate(context)) return HELLO_NOAUTH;
    context.client.proto = proto;
    if (name !== undefined) context.client.name = name.toString('latin1');
    return helloReply(context.client, context);
  },
};

const CLIENT_HELP = [
  'CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
  'GETNAME', '    Return the name of the current connection.',
  'SETNAME <name>', '    Assign the name <name> to the current connection.',
  'ID', '    Return the ID of the current connection.',
  'INFO', '    Return information about the current client connection.',
  'SETINFO <LIB-NAME|LIB-VER> <value>', '    Accepted and ignored.',
  'HELP', '    Print this help.',
];

function clientInfoLine(client: ClientState): string {
  return `id=${client.id} addr=${client.address} name=${client.name} db=0 resp=${client.proto}\n`;
}

const client: CommandSpec = {
  name: 'client', arity: -2, flags: [], keys: NO_KEYS, group: 'connection', summary: 'SETNAME, GETNAME, ID, INFO, SETINFO, HELP.',
  run: (context, args) => {
    const [, subcommand] = args;
    const state = context.client;
    const arity = (count: number): Buffer | undefined => (args.length === count ? undefined : errorReply(`ERR wrong number of arguments for 'client|${subcommand!.toString('latin1').toLowerCase()}' command`, 'latin1'));
    if (isKeyword(subcommand, 'SETNAME')) {
      const failure = arity(3) ?? nameError(args[2]!);
      if (failure !== undefined) return failure;
      state.name = args[2]!.toString('latin1');
      return OK;
    }
    if (isKeyword(subcommand, 'GETNAME')) return arity(2) ?? (state.name === '' ? nullReply(state.proto) : bulkReply(Buffer.from(state.name, 'latin1')));
    if (isKeyword(subcommand, 'ID')) return arity(2) ?? integerReply(state.id);
    if (isKeyword(subcommand, 'INFO')) return arity(2) ?? bulkReply(Buffer.from(clientInfoLine(state), 'latin1'));
    if (isKeyword(subcommand, 'SETINFO')) return arity(4) ?? (isKeyword(args[2], 'LIB-NAME') || isKeyword(args[2], 'LIB-VER') ? OK : errorReply(`ERR Unrecognized option '${args[2]!.toString('latin1')}'`, 'latin1'));
    if (isKeyword(subcommand, 'HELP')) return valueReply(state.proto, CLIENT_HELP);
    return unknownSubcommand(subcommand!, 'client');
  },
};

const readonly: CommandSpec = {
  name: 'readonly', arity: 1, flags: ['fast'], keys: NO_KEYS, group: 'cluster', summary: 'Reads on this connection become serializable (may be stale on a follower).',
  run: (context) => {
    context.client.consistency = 'serializable';
    return OK;
  },
};

const readwrite: CommandSpec = {
  name: 'readwrite', arity: 1, flags: ['fast'], keys: NO_KEYS, group: 'cluster', summary: 'Reads on this connection become linearizable again (the default).',
  run: (context) => {
    context.client.consistency = 'linearizable';
    return OK;
  },
};

export const CONNECTION_COMMANDS: readonly CommandSpec[] = [ping, echo, select, quit, auth, hello, client, readonly, readwrite];
