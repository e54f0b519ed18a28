/**
 * The client commands of `impulse`: put, get, del, scan, batch, status,
 * health, member, leader. Each talks to a running node (`--endpoint`), prints
 * its result in text or JSON (`-o json|text`, a program-wide flag) and fails
 * with one sentence and an exit status from exit-codes.ts.
 */
import { readFile } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import type { BatchOp, ImpulseClient, ReadConsistency, ScanOptions } from '../client/client.js';
import { parseBatch } from '../api/kv-handlers.js';
import { ImpulseError, isImpulseError } from '../errors.js';
import type { KvOp } from '../kv/command.js';
import { type ClusterView } from '../protocol/cluster-view.js';
import type { ShardsView } from '../protocol/shard-view.js';
import { formatClusterView, formatShardsView, joinCommand, leaderlessMemberMessage } from './cluster-output.js';
import { EXIT, UsageError } from './exit-codes.js';
import { type OutputFormat, bytesArgument, printJson, show } from './output.js';

/** What every client command needs from the program: a client for `--endpoint`, and the output format. */
export interface ClientContext {
  client(): ImpulseClient;
  format(json?: boolean): OutputFormat;
}

/** Most entries one range request asks for (the server's page maximum). */
const PAGE_LIMIT_MAX = 1000;

export function registerClientCommands(program: Command, context: ClientContext): void {
  registerKeyCommands(program, context);
  registerScan(program, context);
  registerBatch(program, context);
  registerNodeCommands(program, context);
  registerMemberCommands(program, context);
}

/** Runs `work` with a client for the program's endpoint, closed afterwards. */
export async function withClient<T>(context: ClientContext, work: (c: ImpulseClient) => Promise<T>): Promise<T> {
  const c = context.client();
  try {
    return await work(c);
  } finally {
    c.close();
  }
}

/** A write's confirmation: `OK` in text, `{"ok":true,"revision":n}` in JSON; the revision also to stderr when asked. */
function confirmWrite(format: OutputFormat, revision: number, printRevision: boolean | undefined): void {
  if (format === 'json') printJson({ ok: true, revision });
  else process.stdout.write('OK\n');
  if (printRevision) process.stderr.write(`revision ${revision}\n`);
}

function registerKeyCommands(program: Command, context: ClientContext): void {
  program
    .command('put')
    .description('store a value under a key (the value from the argument, or from stdin when omitted); prints OK')
    .argument('<key>', 'the key (base64:... for binary keys, as scan prints them)')
    .argument('[value]', 'the value; omitted: read from stdin')
    .option('--if-revision <n>', 'only if the key has exactly this revision (exit 3 when it has not)')
    .option('--if-absent', 'only if the key does not exist (exit 3 when it does)')
    .option('--allow-empty', 'store an empty value when stdin is empty (refused otherwise)')
    .option('--revision', "print the write's revision to stderr")
    .action(async (key: string, value: string | undefined, flags: { ifRevision?: string; ifAbsent?: boolean; allowEmpty?: boolean; revision?: boolean }) => {
      if (flags.ifRevision !== undefined && flags.ifAbsent) throw new UsageError('give --if-revision or --if-absent, not both');
      const conditions = { ...(flags.ifRevision !== undefined ? { ifRevision: revisionFlag(flags.ifRevision) } : {}), ...(flags.ifAbsent ? { ifAbsent: true } : {}) };
      const keyBytes = bytesArgument(key);
      const valueBytes = value !== undefined ? Buffer.from(value, 'utf8') : await readStdinValue(flags.allowEmpty === true);
      const { revision } = await withClient(context, (c) => c.put(keyBytes, valueBytes, conditions));
      confirmWrite(context.format(), revision, flags.revision);
    });

  program
    .command('get')
    .description('print the value stored under a key (raw bytes in text; exit 4 when the key does not exist)')
    .argument('<key>', 'the key (base64:... for binary keys)')
    .option('--revision', "print the key's revision to stderr")
    .addOption(new Option('--consistency <level>', 'linearizable, or serializable (may be stale under replication)').choices(['linearizable', 'serializable']))
    .action(async (key: string, flags: { revision?: boolean; consistency?: ReadConsistency }) => {
      const keyBytes = bytesArgument(key);
      const found = await withClient(context, (c) => c.getWithRevision(keyBytes, flags.consistency !== undefined ? { consistency: flags.consistency } : {}));
      if (found === undefined) {
        process.stderr.write(`impulse: key ${JSON.stringify(show(keyBytes))} not found\n`);
        process.exitCode = EXIT.notFound;
        return;
      }
      if (flags.revision) process.stderr.write(`revision ${found.revision}\n`);
      if (context.format() === 'json') {
        printJson({ key: show(keyBytes), value: show(found.value), revision: found.revision });
        return;
      }
      process.stdout.write(found.value);
      if (process.stdout.isTTY) process.stdout.write('\n');
    });

  program
    .command('del')
    .description('delete a key (succeeds when it is absent too, unless --if-revision is given); prints OK')
    .argument('<key>', 'the key (base64:... for binary keys)')
    .option('--if-revision <n>', 'only if the key has exactly this revision (exit 3 when it has not)')
    .option('--revision', "print the delete's revision to stderr")
    .action(async (key: string, flags: { ifRevision?: string; revision?: boolean }) => {
      const keyBytes = bytesArgument(key);
      const { revision } = await withClient(context, (c) => c.del(keyBytes, flags.ifRevision !== undefined ? { ifRevision: revisionFlag(flags.ifRevision) } : {}));
      confirmWrite(context.format(), revision, flags.revision);
    });
}

interface ScanFlags {
  start?: string;
  end?: string;
  prefix?: string;
  limit: string;
  all?: boolean;
  reverse?: boolean;
  json?: boolean;
  consistency?: ReadConsistency;
}

function registerScan(program: Command, context: ClientContext): void {
  program
    .command('scan')
    .description('list keys in order, one "key<TAB>value" line each (binary shown as base64:...); says on stderr when it stopped at --limit')
    .option('--start <key>', 'first key (inclusive)')
    .option('--end <key>', 'stop before this key (exclusive)')
    .option('--prefix <prefix>', 'only keys with this prefix')
    .option('--limit <n>', 'most entries to print', '100')
    .option('--all', 'every entry of the range, page after page (no --limit)')
    .option('--reverse', 'descending order')
    .option('--json', 'the same as -o json: one JSON object per line, with the revision')
    .addOption(new Option('--consistency <level>', 'linearizable, or serializable').choices(['linearizable', 'serializable']))
    .action(async (flags: ScanFlags) => {
      const entriesMax = flags.all ? Number.POSITIVE_INFINITY : Number(flags.limit);
      if (!flags.all && (!Number.isSafeInteger(entriesMax) || entriesMax < 1)) throw new UsageError('--limit must be a positive integer');
      const format = context.format(flags.json);
      const options: ScanOptions = {
        ...(flags.start !== undefined ? { start: bytesArgument(flags.start, '--start') } : {}),
        ...(flags.end !== undefined ? { end: bytesArgument(flags.end, '--end') } : {}),
        ...(flags.prefix !== undefined ? { prefix: bytesArgument(flags.prefix, '--prefix') } : {}),
        ...(flags.reverse ? { reverse: true } : {}),
        ...(flags.consistency !== undefined ? { consistency: flags.consistency } : {}),
      };
      const { printed, more } = await withClient(context, (c) => printRange(c, options, entriesMax, format));
      if (more) process.stderr.write(`impulse: stopped after ${printed} entries (--limit ${entriesMax}); more follow: raise --limit or give --all\n`);
    });
}

/** Prints up to `entriesMax` entries of the range; `more` when the range goes on past them (one entry more is asked for to know). */
async function printRange(c: ImpulseClient, options: ScanOptions, entriesMax: number, format: OutputFormat): Promise<{ printed: number; more: boolean }> {
  let printed = 0;
  for await (const { key, value, revision } of c.scanAll({ ...options, limit: Math.min(PAGE_LIMIT_MAX, entriesMax + 1) }, entriesMax + 1)) {
    if (printed === entriesMax) return { printed, more: true };
    process.stdout.write(format === 'json' ? JSON.stringify({ key: show(key), value: show(value), revision }) + '\n' : `${show(key)}\t${show(value)}\n`);
    printed++;
  }
  return { printed, more: false };
}

function registerBatch(program: Command, context: ClientContext): void {
  program
    .command('batch')
    .description('apply operations from a file (or stdin) as one atomic batch: all or none; prints OK')
    .argument('[file]', 'the operations; omitted or "-": stdin')
    .option('--revision', "print the batch's revision to stderr")
    .addHelpText(
      'after',
      `
The operations are lines, one each (blank lines and lines starting with # are skipped):
  put <key> <value>      values run to the end of the line; keys and values may be base64:...
  del <key>
or the JSON document of POST /kv/batch (docs/api.md), e.g.
  {"ops": [{"op": "put", "key": "a", "value": "1", "ifAbsent": true}, {"op": "delete", "key": "b"}]}`,
    )
    .action(async (file: string | undefined, flags: { revision?: boolean }) => {
      const text = file === undefined || file === '-' ? (await readStdin()).toString('utf8') : await readFile(file, 'utf8');
      const ops = parseBatchText(text);
      const { revision } = await withClient(context, (c) => c.batch(ops));
      confirmWrite(context.format(), revision, flags.revision);
    });
}

/** The operations of a batch file: the line format, or the API's JSON document (see `impulse batch --help`). */
export function parseBatchText(text: string): BatchOp[] {
  const trimmed = text.trim();
  const ops = trimmed.startsWith('{') ? parseBatchDocument(trimmed) : parseBatchLines(text);
  if (ops.length === 0) throw new UsageError('the batch has no operations');
  return ops;
}

function parseBatchLines(text: string): BatchOp[] {
  const ops: BatchOp[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const match = /^\s*(put|del)\s+(\S+)(?:\s(.*))?$/.exec(line);
    if (match === null) throw new UsageError(`batch line ${index + 1}: expected "put <key> <value>" or "del <key>"`);
    const [, op, key, value] = match;
    if (op === 'put') {
      if (value === undefined) throw new UsageError(`batch line ${index + 1}: put needs a value`);
      ops.push({ op: 'put', key: bytesArgument(key!), value: bytesArgument(value, 'value') });
    } else {
      if (value !== undefined && value.trim() !== '') throw new UsageError(`batch line ${index + 1}: del takes only a key`);
      ops.push({ op: 'delete', key: bytesArgument(key!) });
    }
  });
  return ops;
}

/**
 * The API's batch document, read by the server's own parser (strict JSON, strict base64, the same
 * fields and conditions), so the CLI refuses exactly what the server would — before sending it.
 */
function parseBatchDocument(text: string): BatchOp[] {
  let ops: KvOp[];
  try {
    ops = parseBatch(Buffer.from(text, 'utf8'), Number.MAX_SAFE_INTEGER); // the server applies its own --batch-ops-max
  } catch (error) {
    if (isImpulseError(error)) throw new UsageError(`the batch document is not valid: ${error.message}`);
    throw error;
  }
  return ops.map((op): BatchOp => {
    const condition = op.condition ?? {};
    return op.type === 'put' ? { op: 'put', key: op.key, value: op.value, ...condition } : { op: 'delete', key: op.key, ...condition };
  });
}

function registerNodeCommands(program: Command, context: ClientContext): void {
  program
    .command('status')
    .description("print the node's status as JSON (indented in text, one line with -o json)")
    .action(async () => {
      const status = await withClient(context, (c) => c.status());
      process.stdout.write((context.format() === 'json' ? JSON.stringify(status) : JSON.stringify(status, null, 2)) + '\n');
    });

  program
    .command('health')
    .description('whether the node serves: prints its health (exit 0 when ok, 6 when not, 5 when unreachable)')
    .action(async () => {
      const { ok, report } = await withClient(context, (c) => c.healthReport());
      if (context.format() === 'json') printJson(report);
      else process.stdout.write(`${String(report['status'] ?? (ok ? 'ok' : 'not ok'))}${typeof report['reason'] === 'string' ? `: ${report['reason']}` : ''}\n`);
      if (!ok) process.exitCode = EXIT.serverError;
    });

  const printShards = (view: ShardsView): void => {
    if (context.format() === 'json') printJson(view);
    else process.stdout.write(formatShardsView(view));
  };
  const shards = program
    .command('shards')
    .description('the shard map (ranges, epochs, replicas, leaders, sizes) as the endpoint sees it')
    .action(async () => {
      const view = await withClient(context, (c) => c.shards());
      printShards(view);
    });
  shards
    .command('split <key>')
    .description('split the shard holding <key> at <key> (UTF-8, or base64:...): the shard keeps the keys below it, a new shard takes the rest')
    .action(async (key: string) => {
      const bytes = bytesArgument(key);
      const view = await withClient(context, (c) => c.splitShard(bytes));
      printShards(view);
    });
  shards
    .command('merge <shard>')
    .description('merge the right neighbour of shard <shard> (an id) into it; both must be on the same members. Returns once the merge is under way')
    .action(async (shard: string) => {
      const id = shardIdArgument(shard);
      const view = await withClient(context, (c) => c.mergeShards(id));
      printShards(view);
    });
  shards
    .command('cancel-merge <shard>')
    .description('roll back the merge into shard <shard> (an id): its right neighbour serves its range again, unless shard <shard> took it in already (then the merge finishes)')
    .action(async (shard: string) => {
      const id = shardIdArgument(shard);
      const view = await withClient(context, (c) => c.cancelMerge(id));
      printShards(view);
    });
}

/** A shard id given on the command line (the left shard of a merge): an integer >= 2. */
function shardIdArgument(shard: string): number {
  const id = Number(shard);
  if (!/^[0-9]{1,15}$/.test(shard) || id < 2) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `a shard id is an integer >= 2, not "${shard}"`);
  return id;
}

function registerMemberCommands(program: Command, context: ClientContext): void {
  const printView = (view: ClusterView, text: string): void => {
    if (context.format() === 'json') printJson(view);
    else process.stdout.write(text);
  };
  const member = program.command('member').description('list and change the members of a cluster (any member takes the request)');
  member
    .command('list')
    .description('the members, their roles and progress, as the endpoint sees them')
    .option('--json', 'the same as -o json: the cluster view as JSON')
    .action(async (flags: { json?: boolean }) => {
      const view = await withClient(context, (c) => c.cluster());
      process.stdout.write(context.format(flags.json) === 'json' ? JSON.stringify(view, null, 2) + '\n' : formatClusterView(view));
    });
  member
    .command('add')
    .description('add a member as a learner; prints the command that starts it')
    .argument('<id>', "the new member's id (never one used before)")
    .argument('<peer-url>', 'host:port where it will listen for peers')
    .option('--client-url <url>', 'its client URL (it publishes it itself once it runs)')
    .action(async (id: string, peerUrl: string, flags: { clientUrl?: string }) => {
      const nodeId = memberIdArgument(id);
      const view = await withClient(context, (c) => c.addMember({ id: nodeId, peerUrl, ...(flags.clientUrl !== undefined ? { clientUrl: flags.clientUrl } : {}) }));
      printView(view, leaderlessMemberMessage(view, 'add', nodeId) ?? `added node ${nodeId} as a learner of cluster ${view.clusterId}; start it with:\n\n  ${joinCommand(view, nodeId, peerUrl, flags.clientUrl)}\n\nthen, once it has caught up: impulse member promote ${nodeId}\n`);
    });
  member
    .command('promote')
    .description('make a learner a voter (refused until it has caught up)')
    .argument('<id>')
    .action(async (id: string) => {
      const view = await withClient(context, (c) => c.promoteMember(memberIdArgument(id)));
      printView(view, `node ${id} is a voter\n`);
    });
  member
    .command('remove')
    .description('remove a member (transfer leadership away from it first if it leads)')
    .argument('<id>')
    .option('--force', 'leaderless: remove a member that is down for good, without its part of the change; its ranges are refilled from the surviving replicas')
    .action(async (id: string, flags: { force?: boolean }) => {
      const view = await withClient(context, (c) => c.removeMember(memberIdArgument(id), flags.force === true ? { force: true } : {}));
      printView(view, leaderlessMemberMessage(view, flags.force === true ? 'force-remove' : 'remove', Number(id)) ?? `node ${id} was removed; stop it and delete its data directory\n`);
    });
  program
    .command('leader')
    .description('leadership')
    .command('transfer')
    .description('hand leadership to a voter; waits until it leads')
    .argument('<id>')
    .action(async (id: string) => {
      const view = await withClient(context, (c) => c.transferLeader(memberIdArgument(id)));
      printView(view, `node ${view.leader ?? '?'} leads (term ${view.term})\n`);
    });
}

function memberIdArgument(text: string): number {
  if (!/^[1-9][0-9]{0,9}$/.test(text) || Number(text) > 2 ** 31 - 1) throw new UsageError('a member id is an integer from 1 to 2147483647');
  return Number(text);
}

function revisionFlag(text: string): number {
  if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) < 1) throw new UsageError('--if-revision must be a positive integer');
  return Number(text);
}

async function readStdin(): Promise<Buffer> {
  if (process.stdin.isTTY) throw new UsageError('give the input as an argument or a file, or pipe it on stdin');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A value piped on stdin; an empty one is refused unless allowed (an empty pipe is usually a mistake upstream). */
export async function readStdinValue(allowEmpty: boolean): Promise<Buffer> {
  const value = await readStdin();
  if (value.length === 0 && !allowEmpty) throw new UsageError('stdin was empty: give a value, or --allow-empty to store an empty value');
  return value;
}
