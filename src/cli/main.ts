#!/usr/bin/env node
/**
 * `impulse`: the one binary. `serve` runs a node (alone, or as a cluster
 * member with --node-id); `cluster` runs a local cluster; `put`, `get`, `del`,
 * `scan`, `status`, `member` and `leader` are clients of a running node
 * (`--endpoint`). Every failure
 * prints one sentence to stderr and exits non-zero (2 for bad usage or config,
 * 3 when a write's condition did not hold).
 */
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { ImpulseClient, type ReadConsistency } from '../client/client.js';
import { isImpulseError } from '../errors.js';
import { ENGINE_NAMES } from '../storage/registry.js';
import { VERSION } from '../version.js';
import { DEFAULT_PEER_PORT, DEFAULT_RAFT_TIMING_CONFIG } from '../cluster/config.js';
import { type ClusterLaunchFlags, launchCluster } from './cluster-launcher.js';
import { formatClusterView, joinCommand } from './cluster-output.js';
import { DEFAULT_ENGINE, DEFAULT_HOST, DEFAULT_PORT, type ServeFlags, parseServeConfig } from './config.js';
import { serve } from './serve.js';

const program = new Command();
program.name('impulse').description('impulse: a distributed key-value store').version(VERSION).showHelpAfterError();

program
  .command('serve')
  .description('run one impulse node')
  .option('--port <port>', 'TCP port', String(DEFAULT_PORT))
  .option('--host <host>', 'address to listen on', DEFAULT_HOST)
  .addOption(new Option('--engine <engine>', 'storage engine').choices(ENGINE_NAMES).default(DEFAULT_ENGINE))
  .option('--data-dir <dir>', 'data directory (the engine uses <dir>/<engine>)', 'data')
  .addOption(new Option('--sync <mode>', 'fsync: acknowledged writes are on disk; none: left to the OS').choices(['fsync', 'none']).default('fsync'))
  .option('--key-bytes-max <bytes>', 'longest key', '4096')
  .option('--value-bytes-max <bytes>', 'longest value', String(16 * 1024 * 1024))
  .option('--batch-ops-max <count>', 'most operations in one batch', '10000')
  .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', 'info')
  .option('--resp-port <port>', 'also serve the Redis protocol (RESP2/RESP3) on this port, on --host (off unless given; docs/resp.md)')
  .option('--node-id <id>', 'run as a member of a Raft cluster with this id (docs/cluster.md)')
  .option('--peer-port <port>', `port for peer traffic between members (default ${DEFAULT_PEER_PORT})`)
  .option('--peer-host <host>', 'address to listen on for peers (default: --host)')
  .option('--advertise-peer <host:port>', 'the peer address other members dial (default: this member\'s --initial-cluster entry)')
  .option('--advertise-client <url>', 'the client URL this member publishes (default: http://<host>:<port>)')
  .option('--initial-cluster <members>', 'the voters of a new cluster, id=host:port,... (with --join: the current members)')
  .option('--cluster-token <token>', 'tells clusters started from the same --initial-cluster apart (default "impulse")')
  .option('--cluster-id <id>', 'the cluster to join (16 hex digits, printed by `impulse member add`)')
  .option('--join', 'start empty and wait to be added to an existing cluster (`impulse member add`)')
  .option('--tick-ms <ms>', `Raft tick (default ${DEFAULT_RAFT_TIMING_CONFIG.tickMs})`)
  .option('--election-ticks <ticks>', `election timeout in ticks, randomized up to twice that (default ${DEFAULT_RAFT_TIMING_CONFIG.electionTicks})`)
  .option('--heartbeat-ticks <ticks>', `heartbeat interval in ticks (default ${DEFAULT_RAFT_TIMING_CONFIG.heartbeatTicks})`)
  .option('--snapshot-entries <n>', `compact the Raft log every n applied entries (default ${DEFAULT_RAFT_TIMING_CONFIG.snapshotEntries})`)
  .option('--snapshot-catch-up-entries <n>', `entries kept behind a compaction for slow followers (default ${DEFAULT_RAFT_TIMING_CONFIG.snapshotCatchUpEntries})`)
  .action(async (flags: ServeFlags) => {
    await serve(parseServeConfig(flags));
  });

program
  .command('cluster')
  .description('run a local cluster: N members on this machine (Ctrl-C stops them all)')
  .option('--nodes <n>', 'how many members', '3')
  .addOption(new Option('--engine <engine>', 'storage engine').choices(ENGINE_NAMES.filter((name) => name !== 'memory')))
  .option('--data-dir <dir>', 'data under <dir>/node-N', join('data', 'cluster'))
  .option('--port <port>', 'client port of member 1 (member N: port + N - 1)', '7071')
  .option('--peer-port <port>', 'peer port of member 1 (member N: port + N - 1)', '7171')
  .option('--host <host>', 'address to listen on', DEFAULT_HOST)
  .option('--log-level <level>', "the members' log level", 'warn')
  .option('--restart', 'start a member again when it dies unexpectedly')
  .option('--resp-port <port>', 'also serve the Redis protocol: member 1 on this port (member N: port + N - 1)')
  .option('--serve-args <args>', 'extra flags for every `impulse serve`, space-separated')
  .action(async (flags: ClusterLaunchFlags) => {
    await launchCluster(flags);
  });

const member = program.command('member').description('list and change the members of a cluster (any member takes the request)');

member
  .command('list')
  .description('the members, their roles and progress, as the endpoint sees them')
  .option('--json', 'the cluster view as JSON')
  .action(async (flags: { json?: boolean }) => {
    await withClient(async (c) => {
      const view = await c.cluster();
      process.stdout.write(flags.json ? JSON.stringify(view, null, 2) + '\n' : formatClusterView(view));
    });
  });

member
  .command('add')
  .description('add a member as a learner; prints the command that starts it')
  .argument('<id>', 'the new member\'s id (never one used before)')
  .argument('<peer-url>', 'host:port where it will listen for peers')
  .option('--client-url <url>', 'its client URL (it publishes it itself once it runs)')
  .action(async (id: string, peerUrl: string, flags: { clientUrl?: string }) => {
    await withClient(async (c) => {
      const view = await c.addMember({ id: memberIdArgument(id), peerUrl, ...(flags.clientUrl !== undefined ? { clientUrl: flags.clientUrl } : {}) });
      process.stdout.write(`added node ${id} as a learner of cluster ${view.clusterId}; start it with:\n\n  ${joinCommand(view, memberIdArgument(id), peerUrl, flags.clientUrl)}\n\nthen, once it has caught up: impulse member promote ${id}\n`);
    });
  });

member
  .command('promote')
  .description('make a learner a voter (refused until it has caught up)')
  .argument('<id>')
  .action(async (id: string) => {
    await withClient(async (c) => {
      await c.promoteMember(memberIdArgument(id));
      process.stdout.write(`node ${id} is a voter\n`);
    });
  });

member
  .command('remove')
  .description('remove a member (transfer leadership away from it first if it leads)')
  .argument('<id>')
  .action(async (id: string) => {
    await withClient(async (c) => {
      await c.removeMember(memberIdArgument(id));
      process.stdout.write(`node ${id} was removed; stop it and delete its data directory\n`);
    });
  });

program
  .command('leader')
  .description('leadership')
  .command('transfer')
  .description('hand leadership to a voter; waits until it leads')
  .argument('<id>')
  .action(async (id: string) => {
    await withClient(async (c) => {
      const view = await c.transferLeader(memberIdArgument(id));
      process.stdout.write(`node ${view.leader ?? '?'} leads (term ${view.term})\n`);
    });
  });

function client(): ImpulseClient {
  const options = program.opts<{ endpoint: string; timeout: string }>();
  const timeoutMs = Number(options.timeout);
  return new ImpulseClient({ endpoint: options.endpoint, timeoutMs: Number.isFinite(timeoutMs) && timeoutMs > 0 ? timeoutMs : 10_000 });
}

program
  .option('--endpoint <url>', 'server for client commands (env IMPULSE_ENDPOINT)', process.env['IMPULSE_ENDPOINT'] ?? `http://${DEFAULT_HOST}:${DEFAULT_PORT}`)
  .option('--timeout <ms>', 'client request timeout in milliseconds', '10000');

program
  .command('put')
  .description('store a value under a key (value from the argument, or stdin when omitted)')
  .argument('<key>')
  .argument('[value]')
  .option('--if-revision <n>', 'only if the key has exactly this revision (exit 3 when it has not)')
  .option('--if-absent', 'only if the key does not exist (exit 3 when it does)')
  .option('--revision', "print the write's revision to stderr")
  .action(async (key: string, value: string | undefined, flags: { ifRevision?: string; ifAbsent?: boolean; revision?: boolean }) => {
    if (flags.ifRevision !== undefined && flags.ifAbsent) throw new UsageError('give --if-revision or --if-absent, not both');
    const conditions = { ...(flags.ifRevision !== undefined ? { ifRevision: revisionFlag(flags.ifRevision) } : {}), ...(flags.ifAbsent ? { ifAbsent: true } : {}) };
    const c = client();
    try {
      const { revision } = await c.put(key, value ?? (await readStdin()), conditions);
      if (flags.revision) process.stderr.write(`revision ${revision}\n`);
    } finally {
      c.close();
    }
  });

program
  .command('get')
  .description('print the value stored under a key (raw bytes to stdout)')
  .argument('<key>')
  .option('--revision', "print the key's revision to stderr")
  .addOption(new Option('--consistency <level>', 'linearizable, or serializable (may be stale under replication)').choices(['linearizable', 'serializable']))
  .action(async (key: string, flags: { revision?: boolean; consistency?: ReadConsistency }) => {
    const c = client();
    try {
      const found = await c.getWithRevision(key, flags.consistency !== undefined ? { consistency: flags.consistency } : {});
      if (found === undefined) {
        process.stderr.write(`impulse: key ${JSON.stringify(key)} not found\n`);
        process.exitCode = 1;
        return;
      }
      if (flags.revision) process.stderr.write(`revision ${found.revision}\n`);
      process.stdout.write(found.value);
      if (process.stdout.isTTY) process.stdout.write('\n');
    } finally {
      c.close();
    }
  });

program
  .command('del')
  .description('delete a key (succeeds when it is absent too, unless --if-revision is given)')
  .argument('<key>')
  .option('--if-revision <n>', 'only if the key has exactly this revision (exit 3 when it has not)')
  .option('--revision', "print the delete's revision to stderr")
  .action(async (key: string, flags: { ifRevision?: string; revision?: boolean }) => {
    const c = client();
    try {
      const { revision } = await c.del(key, flags.ifRevision !== undefined ? { ifRevision: revisionFlag(flags.ifRevision) } : {});
      if (flags.revision) process.stderr.write(`revision ${revision}\n`);
    } finally {
      c.close();
    }
  });

program
  .command('scan')
  .description('list keys in order, one "key<TAB>value" line each (binary shown as base64:...)')
  .option('--start <key>', 'first key (inclusive)')
  .option('--end <key>', 'stop before this key (exclusive)')
  .option('--prefix <prefix>', 'only keys with this prefix')
  .option('--limit <n>', 'most entries to print', '100')
  .option('--reverse', 'descending order')
  .option('--json', 'one JSON object per line (with the revision)')
  .action(async (flags: { start?: string; end?: string; prefix?: string; limit: string; reverse?: boolean; json?: boolean }) => {
    const entriesMax = Number(flags.limit);
    if (!Number.isSafeInteger(entriesMax) || entriesMax < 1) throw new UsageError('--limit must be a positive integer');
    const c = client();
    try {
      const scanOptions = {
        ...(flags.start !== undefined ? { start: flags.start } : {}),
        ...(flags.end !== undefined ? { end: flags.end } : {}),
        ...(flags.prefix !== undefined ? { prefix: flags.prefix } : {}),
        ...(flags.reverse ? { reverse: true } : {}),
        limit: Math.min(entriesMax, 1000),
      };
      for await (const { key, value, revision } of c.scanAll(scanOptions, entriesMax)) {
        process.stdout.write(flags.json ? JSON.stringify({ key: show(key), value: show(value), revision }) + '\n' : `${show(key)}\t${show(value)}\n`);
      }
    } finally {
      c.close();
    }
  });

program
  .command('status')
  .description("print the server's status as JSON")
  .action(async () => {
    const c = client();
    try {
      process.stdout.write(JSON.stringify(await c.status(), null, 2) + '\n');
    } finally {
      c.close();
    }
  });

class UsageError extends Error {}

async function withClient(work: (c: ImpulseClient) => Promise<void>): Promise<void> {
  const c = client();
  try {
    await work(c);
  } finally {
    c.close();
  }
}

function memberIdArgument(text: string): number {
  if (!/^[1-9][0-9]{0,9}$/.test(text) || Number(text) > 2 ** 31 - 1) throw new UsageError('a member id is an integer from 1 to 2147483647');
  return Number(text);
}

function revisionFlag(text: string): number {
  if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) < 1) throw new UsageError('--if-revision must be a positive integer');
  return Number(text);
}

function show(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) && !/[\t\n\r]/.test(text) ? text : `base64:${bytes.toString('base64')}`;
}

async function readStdin(): Promise<Buffer> {
  if (process.stdin.isTTY) throw new UsageError('give a value argument, or pipe the value on stdin');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`impulse: ${error.message}\n`);
    process.exit(2);
  }
  if (isImpulseError(error)) {
    process.stderr.write(`impulse: ${error.message}\n`);
    // 3: a condition did not hold (scripts branch on it); 2: bad usage or config; 1: anything else.
    process.exit(error.code === 'IMPULSE_ERR_PRECONDITION_FAILED' ? 3 : error.code === 'IMPULSE_ERR_CONFIG_INVALID' ? 2 : 1);
  }
  const code = (error as { code?: string }).code;
  if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    process.stderr.write(`impulse: cannot listen: ${(error as Error).message}\n`);
    process.exit(1);
  }
  process.stderr.write(`impulse: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
});
