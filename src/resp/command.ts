/**
 * What a command is and what it may see. A command's `run` gets the
 * arguments (arity already checked) and the context, and returns its reply:
 * a Buffer at once, or a promise of one. It may throw or reject with an
 * `ImpulseError` (the connection turns it into an error reply); syntax
 * mistakes it answers itself with Redis's error wording (errors.ts).
 */
import type { KvOp } from '../kv/command.js';
import type { Authorizer, Credential } from '../security/auth.js';
import type { KvService, ReadConsistency, ServiceStatus } from '../service/kv-service.js';
import type { ProtocolVersion } from './encoder.js';
import type { PutCoalescer } from './put-coalescer.js';
import type { ScanCursors } from './scan-cursors.js';

/** One connection's state that commands read and change. */
export interface ClientState {
  /** Unique per node and process, from 1 (CLIENT ID). */
  readonly id: number;
  /** `ip:port` of the client. */
  readonly address: string;
  /** Set by HELLO; 2 until then. */
  proto: ProtocolVersion;
  /** CLIENT SETNAME / HELLO SETNAME; '' when none. */
  name: string;
  /** Reads on this connection: linearizable, or serializable after READONLY (as on a Redis Cluster replica). */
  consistency: ReadConsistency;
  /** Set by a successful AUTH (or HELLO ... AUTH) when the server checks tokens; access.ts. */
  credential?: Credential;
}

/** Why a command was refused by the token check (counted in /metrics). */
export type AuthRefusal = 'wrongpass' | 'noauth' | 'noperm';

/** Counters the server keeps, for INFO. */
export interface RespStats {
  readonly connectedClients: number;
  readonly connectionsTotal: number;
  readonly rejectedConnections: number;
  readonly commandsTotal: number;
  readonly outputDisconnects: number;
}

/** What commands may learn about the node and the RESP server. */
export interface ServerView {
  readonly service: KvService;
  /** impulse's version. */
  readonly version: string;
  /** The Redis version impulse answers as (HELLO, INFO): the command set follows Redis 7.0. */
  readonly redisVersion: string;
  readonly cursors: ScanCursors;
  /** Largest page one SCAN reads (its COUNT is capped to it). */
  readonly scanCountMax: number;
  /** Most retries of a read-then-conditional-write command (SET GET/XX, DEL) when the key changes in between. */
  readonly conditionalRetriesMax: number;
  /** The token table and roles when the node has a token file; absent: no AUTH needed (access.ts). */
  readonly auth?: Authorizer;
  /** Counts a refusal by the token check. */
  authRefused(reason: AuthRefusal): void;
  /** Plain writes (CommandSpec.puts) of all connections, sent as one command per turn of the event loop. */
  readonly putCoalescer: PutCoalescer;
  /** The command table: by lower-case name (COMMAND), and by a request's name bytes (`find`). */
  readonly commands: CommandTable;
  /** The TCP port the RESP server listens on. */
  port(): number;
  uptimeSeconds(): number;
  stats(): RespStats;
  status(): Promise<ServiceStatus>;
}

export interface CommandContext {
  readonly client: ClientState;
  readonly server: ServerView;
}

export type CommandReply = Buffer | Promise<Buffer>;

export interface CommandSpec {
  /** Lower case, as COMMAND reports it. */
  readonly name: string;
  /** Redis's convention: n = exactly n arguments (name included), -n = at least n. */
  readonly arity: number;
  /**
   * COMMAND's flags (write, readonly, fast, ...). `readonly` also tells the
   * connection the command may overlap other readonly ones (connection.ts).
   */
  readonly flags: readonly string[];
  /** First key argument, last (-1: the last argument), step; 0 0 0 when the command takes no keys. */
  readonly keys: readonly [number, number, number];
  /** COMMAND DOCS: group and one-line summary. */
  readonly group: string;
  readonly summary: string;
  run(context: CommandContext, args: Buffer[]): CommandReply;
  /**
   * For a plain write whose reply is OK (SET k v, MSET): its puts, so that
   * consecutive ones of a pipeline can go to the service as one command
   * (connection.ts). Undefined, or returning undefined: run on its own.
   */
  readonly puts?: (args: Buffer[]) => KvOp[] | undefined;
}

/**
 * The commands by lower-case name, plus `find`: the command a request names,
 * looked up from its bytes, case-insensitively, without making a string (a
 * string per command, lower-cased and hashed, was a visible share of a
 * command's cost). Names are bucketed by length; a bucket holds a few names.
 */
export class CommandTable extends Map<string, CommandSpec> {
  /** Buckets by name length: an array index, not a Map lookup (names are short, so the array is too). */
  private readonly byLength: { readonly name: Buffer; readonly spec: CommandSpec }[][] = [];

  constructor(specs: readonly CommandSpec[]) {
    super(specs.map((spec) => [spec.name, spec]));
    for (const spec of specs) {
      const name = Buffer.from(spec.name, 'latin1');
      while (this.byLength.length <= name.length) this.byLength.push([]);
      this.byLength[name.length]!.push({ name, spec });
    }
  }

  /** The command named by `name` (any ASCII case), or undefined. */
  find(name: Buffer): CommandSpec | undefined {
    const bucket = this.byLength[name.length];
    if (bucket === undefined) return undefined;
    for (const entry of bucket) {
      if (equalsLowerCase(name, entry.name)) return entry.spec;
    }
    return undefined;
  }
}

/** Whether `bytes` equals `lower` (lower-case ASCII, same length) when its ASCII capitals are lowered. */
function equalsLowerCase(bytes: Buffer, lower: Buffer): boolean {
  for (let i = 0; i < lower.length; i++) {
    const byte = bytes[i]!;
    if ((byte >= 0x41 && byte <= 0x5a ? byte + 0x20 : byte) !== lower[i]) return false;
  }
  return true;
}

/** Whether `args` fits `spec.arity`. */
export function arityFits(spec: CommandSpec, count: number): boolean {
  return spec.arity >= 0 ? count === spec.arity : count >= -spec.arity;
}

/** An argument compared case-insensitively with an ASCII keyword (given in upper case). */
export function isKeyword(arg: Buffer | undefined, keyword: string): boolean {
  if (arg === undefined || arg.length !== keyword.length) return false;
  for (let i = 0; i < keyword.length; i++) {
    const byte = arg[i]!;
    if ((byte >= 0x61 && byte <= 0x7a ? byte - 0x20 : byte) !== keyword.charCodeAt(i)) return false;
  }
  return true;
}

/** A strict base-10 integer argument (Redis's string2ll), or undefined. */
export function integerArg(arg: Buffer): number | undefined {
  const text = arg.toString('latin1');
  if (!/^-?[0-9]{1,18}$/.test(text) || /^-?0[0-9]/.test(text) || text === '-0') return undefined;
  return Number(text);
}
