/**
 * Introspection: COMMAND (what redis-cli and client libraries ask to learn the
 * command set) and INFO (impulse's own figures in Redis's section format:
 * `# Section` lines, then `field:value` lines, CRLF-separated).
 */
import type { ServiceStatus } from '../../service/kv-service.js';
import type { CommandContext, CommandSpec } from '../command.js';
import { isKeyword } from '../command.js';
import { type ReplyValue, bulkReply, integerReply, valueReply } from '../encoder.js';
import { unknownSubcommand } from '../errors.js';

const NO_KEYS: readonly [number, number, number] = [0, 0, 0];

/** COMMAND INFO's entry (Redis 7's ten fields; ACL categories, tips, key specs and subcommands empty). */
function commandEntry(spec: CommandSpec): ReplyValue {
  return [spec.name, spec.arity, spec.flags, spec.keys[0], spec.keys[1], spec.keys[2], [], [], [], []];
}

function commandDocs(spec: CommandSpec): ReplyValue {
  return new Map<string, ReplyValue>([
    ['summary', spec.summary],
    ['since', '1.0.0'],
    ['group', spec.group],
  ]);
}

function lookup(context: CommandContext, names: readonly Buffer[]): (CommandSpec | undefined)[] {
  return names.map((name) => context.server.commands.get(name.toString('latin1').toLowerCase()));
}

const command: CommandSpec = {
  name: 'command', arity: -1, flags: [], keys: NO_KEYS, group: 'server', summary: 'Describes the commands impulse serves (COUNT, INFO, DOCS, LIST).',
  run: (context, args) => {
    const { proto } = context.client;
    const all = [...context.server.commands.values()];
    const [, subcommand] = args;
    if (subcommand === undefined) return valueReply(proto, all.map(commandEntry));
    if (isKeyword(subcommand, 'COUNT')) return integerReply(all.length);
    if (isKeyword(subcommand, 'LIST')) return valueReply(proto, all.map((spec) => spec.name));
    if (isKeyword(subcommand, 'INFO')) {
      const specs = args.length > 2 ? lookup(context, args.slice(2)) : all;
      return valueReply(proto, specs.map((spec) => (spec === undefined ? null : commandEntry(spec))));
    }
    if (isKeyword(subcommand, 'DOCS')) {
      const specs = args.length > 2 ? lookup(context, args.slice(2)) : all;
      const docs = new Map<string, ReplyValue>();
      for (const spec of specs) if (spec !== undefined) docs.set(spec.name, commandDocs(spec));
      return valueReply(proto, docs);
    }
    return unknownSubcommand(subcommand, 'command');
  },
};

type Section = [name: string, fields: readonly [string, string | number][]];

function sections(context: CommandContext, status: ServiceStatus): Section[] {
  const stats = context.server.stats();
  const replication = status.replication ?? {};
  const memory = process.memoryUsage();
  return [
    ['Server', [
      ['redis_version', context.server.redisVersion],
      ['redis_mode', 'standalone'],
      ['impulse_version', context.server.version],
      ['os', `${process.platform} ${process.arch}`],
      ['process_id', process.pid],
      ['tcp_port', context.server.port()],
      ['uptime_in_seconds', context.server.uptimeSeconds()],
      ['node_version', process.version],
    ]],
    ['Clients', [
      ['connected_clients', stats.connectedClients],
    ]],
    ['Memory', [
      ['used_memory', memory.heapUsed],
      ['used_memory_rss', memory.rss],
    ]],
    ['Persistence', [
      ['loading', 0],
      ['engine', status.engine],
      ['durable', status.durable ? 1 : 0],
      ['sync', status.sync],
      ['applied_index', status.appliedIndex],
      ['durable_applied_index', status.durableAppliedIndex],
      ['disk_bytes', status.diskBytes ?? -1],
    ]],
    ['Stats', [
      ['total_connections_received', stats.connectionsTotal],
      ['total_commands_processed', stats.commandsTotal],
      ['rejected_connections', stats.rejectedConnections],
      ['client_output_buffer_disconnects', stats.outputDisconnects],
    ]],
    ['Replication', [
      // Every node accepts writes (a member forwards them to its leader), so every node is a "master" to a Redis client.
      ['role', 'master'],
      ['impulse_mode', status.mode],
      ...Object.entries(replication).filter(([, value]) => typeof value === 'number' || typeof value === 'string').map(([key, value]) => [`raft_${key}`, value as string | number] as [string, string | number]),
    ]],
    ['Keyspace', status.keyCount === null ? [] : [['db0', `keys=${status.keyCount},expires=0,avg_ttl=0`]]],
  ];
}

/** INFO's text for the sections asked for (none, "default", "all", "everything": all of them). */
export function infoText(all: readonly Section[], asked: readonly string[]): string {
  const wanted = asked.map((name) => name.toLowerCase());
  const everything = wanted.length === 0 || wanted.some((name) => ['all', 'default', 'everything'].includes(name));
  const chosen = all.filter(([name]) => everything || wanted.includes(name.toLowerCase()));
  return chosen.map(([name, fields]) => [`# ${name}`, ...fields.map(([field, value]) => `${field}:${value}`)].join('\r\n')).join('\r\n\r\n') + '\r\n';
}

const info: CommandSpec = {
  name: 'info', arity: -1, flags: [], keys: NO_KEYS, group: 'server', summary: "impulse's figures in Redis's INFO format.",
  run: async (context, args) => {
    const status = await context.server.status();
    return bulkReply(infoText(sections(context, status), args.slice(1).map((arg) => arg.toString('latin1'))));
  },
};

export const SERVER_COMMANDS: readonly CommandSpec[] = [command, info];
