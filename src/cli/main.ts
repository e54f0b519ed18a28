#!/usr/bin/env node
/**
 * `impulse`: the one binary. `serve` runs a node (alone, or as a cluster
 * member with --node-id); `cluster` runs a local cluster; the client commands
 * (client-commands.ts: put, get, del, scan, batch, status, health, member,
 * leader) talk to a running node (`--endpoint`); `completion` prints a shell
 * completion script. Every failure prints one sentence to stderr and exits
 * with a status from exit-codes.ts (2 for bad usage or configuration).
 */
import { join } from 'node:path';
import { Argument, Command, CommanderError, Option } from 'commander';
import { ImpulseClient } from '../client/client.js';
import { isImpulseError } from '../errors.js';
import { ENGINE_CHOICE_FLAGS, ENGINE_NAMES } from '../storage/engine-names.js';
import { VERSION } from '../version.js';
import { DEFAULT_PEER_PORT, DEFAULT_RAFT_TIMING_CONFIG, DEFAULT_SHARD_MERGES, DEFAULT_SHARD_MOVES } from '../cluster/config.js';
import { TXN_LOCK_TTL_MS, TXN_LOCK_TTL_MS_MAX, TXN_LOCK_TTL_MS_MIN } from '../cluster/shard-txn.js';
import { type ClientContext, registerClientCommands } from './client-commands.js';
import { registerLeaderlessCommands } from './leaderless-commands.js';
import type { ClusterLaunchFlags } from './cluster-launcher.js';
import { completionScript } from './completion.js';
import { DEFAULT_ENGINE, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_ROW_CACHE_MIB, type ServeFlags, parseServeConfig } from './config.js';
import { EXIT, UsageError, exitCodeOf, exitCodesHelp } from './exit-codes.js';
import { outputFormat } from './output.js';
import { addCertsCommand } from './certs.js';
import { type ClientSecurityFlags, addClientSecurityOptions, clientSecurityOptions } from './client-security.js';
import { addSecurityOptions } from './security-config.js';

const program = new Command();
program
  .name('impulse')
  .description('impulse: a distributed key-value store')
  .version(VERSION)
  // Usage errors are one sentence and exit 2 (the catch at the end); subcommands inherit both settings.
  .exitOverride()
  .configureOutput({ outputError: (text, write) => write(`impulse: ${text.replace(/^error: /, '').trimEnd()} (see --help)\n`) })
  .addHelpText(
    'after',
    `
Examples:
  impulse serve --engine lsm --data-dir ./data        run one node
  impulse cluster --nodes 3                           run a local three-member cluster
  impulse put greeting hello                          store a value (prints OK)
  impulse get greeting                                print it (exit 4 when absent)
  impulse scan --prefix user/ -o json                 list a range as JSON lines
  printf 'put a 1\\ndel b\\n' | impulse batch           one atomic batch from stdin

${exitCodesHelp()}`,
  );

const serveCommand = program
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
  .option('--wal-recovery <mode>', `lsm: what start-up does with a damaged WAL: ${ENGINE_CHOICE_FLAGS.walRecovery.values.join(', ')} (default tolerate-tail: only a torn final record is discarded, other damage refuses to start)`)
  .option('--row-cache-mib <MiB>', `the point-read cache of the leveldb and btree engines, all the node's engines together (a member hosts one engine a shard); 0 turns it off (default ${DEFAULT_ROW_CACHE_MIB})`)
  .option('--btree-recovery <mode>', `btree: what start-up does when a commit's meta pages are damaged: ${ENGINE_CHOICE_FLAGS.btreeRecovery.values.join(', ')} (default refuse)`)
  .option('--chaos-results <dir>', 'a directory of chaos runs (impulse chaos --out) that the dashboard at /ui lists')
  .option('--resp-port <port>', 'also serve the Redis protocol (RESP2/RESP3) on this port, on --host (off unless given; docs/resp.md)')
  .option('--stop-on-stdin-close', 'stop cleanly (as on SIGTERM) when standard input ends: a supervisor holding the pipe never leaves this node behind, even if it is killed (impulse cluster uses it)')
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
  .option('--split-keys <keys>', 'start a NEW cluster sharded: its key space cut at these comma-separated keys, one Raft group per shard (docs/sharding.md)')
  .option('--shard-moves-max <n>', `sharded: most shard replica moves in flight at once, cluster-wide (default ${DEFAULT_SHARD_MOVES.movesMax})`)
  .option('--member-dead-after-ms <ms>', `sharded: a member silent this long is dead and its shard replicas are re-replicated (default ${DEFAULT_SHARD_MOVES.memberDeadAfterMs})`)
  .option('--shard-balance-leaders <bool>', 'sharded: the meta leader hands shard leaderships over so that no member leads more than its share (default true)')
  .option('--shard-balance-bytes-min <bytes>', `sharded: replicas move for byte balance only when a member's bytes are off the mean by 5% and by at least this (default ${DEFAULT_SHARD_MOVES.balanceBytesMin})`)
  .option('--shard-split-bytes <n>', 'sharded: the leader of a shard splits it at its middle key once its keys and values pass n bytes (default 0: off; docs/sharding.md)')
  .option('--shard-split-qps <n>', 'sharded: the leader of a shard splits it where its sampled load halves once its smoothed requests a second stay above n for 10 s (default 0: off; docs/sharding.md)')
  .option('--shard-split-gc-rate <keys>', 'sharded: most frozen keys a second this member deletes after its shards split, all its led shards together (default 16384; docs/sharding.md)')
  .option('--txn-lock-ttl-ms <ms>', `sharded: a member that sees a lock of an undecided transaction across shards this long aborts it as abandoned; a coordinator commits only within half of it (default ${TXN_LOCK_TTL_MS}, ${TXN_LOCK_TTL_MS_MIN} to ${TXN_LOCK_TTL_MS_MAX})`)
  .option('--shard-merge-bytes <n>', 'sharded: two neighbouring shards on the same members, each under n bytes and together under half of --shard-split-bytes, merge (default 0: off; docs/sharding.md)')
  .option('--shard-merge-quiet-ms <ms>', `sharded: a shard split, merged or moved more recently than this does not merge (default ${DEFAULT_SHARD_MERGES.quietMs})`)
  .option('--shard-merge-timeout-ms <ms>', `sharded: the meta leader rolls back a shard merge still in flight after this long; 0: never (default ${DEFAULT_SHARD_MERGES.timeoutMs})`)
  .option('--snapshot-rate-max <bytes>', 'most bytes a second this member sends in snapshots (replica moves, catch-up), all groups together (default 67108864: 64 MiB)')
  .option('--snapshot-catch-up-entries <n>', `entries kept behind a compaction for slow followers (default ${DEFAULT_RAFT_TIMING_CONFIG.snapshotCatchUpEntries})`)
  .option('--replication <mode>', 'raft (default) or leaderless (Dynamo-style: docs/leaderless.md)')
  .option('--replicas <n>', 'leaderless: owners per key (default 3, at most the member count)')
  .option('--read-quorum <r>', 'leaderless: replicas a read waits for: a number, one, quorum (default) or all')
  .option('--write-quorum <w>', 'leaderless: replicas a write waits for: a number, one, quorum (default) or all')
  .option('--sloppy-quorum <bool>', 'leaderless: stand-ins hold hints for owners that are down (default true)')
  .option('--conflicts <mode>', 'leaderless: siblings (dotted version vectors, default) or lww (last writer wins)')
  .option('--tombstone-grace-seconds <s>', 'leaderless: how long a delete\'s tombstone is kept at least before it is collected (default 864000: 10 days)')
  .option('--request-timeout-ms <ms>', 'leaderless: time a coordinated read or write may take before 503 (default 2000, 100 to 60000)')
  // TEST-ONLY hooks for the chaos tester (src/test-hooks/, docs/chaos.md); hidden from --help.
  .addOption(new Option('--test-dial-via <map>', 'TEST-ONLY: dial peers through these addresses (target=via,...)').hideHelp())
  .addOption(new Option('--test-control', 'TEST-ONLY: clock and disk faults commanded on stdin').hideHelp())
  .addOption(new Option('--test-bug <names>', 'TEST-ONLY: deliberate bugs').hideHelp());
addSecurityOptions(serveCommand).action(async (flags: ServeFlags) => {
  const config = parseServeConfig(flags);
  // Loaded only to serve: client commands start without the engines, the server and pino.
  const { serve } = await import('./serve.js');
  await serve(config);
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
  .option('--chaos-results <dir>', 'a directory of chaos runs that the members\' dashboards (/ui) list')
  .option('--resp-port <port>', 'also serve the Redis protocol: member 1 on this port (member N: port + N - 1)')
  .option('--serve-args <args>', 'extra flags for every `impulse serve`, space-separated')
  .option('--replication <mode>', 'raft (default) or leaderless')
  .option('--certs <dir>', 'serve HTTPS and mutual TLS between members with the files of `impulse certs --out <dir>`')
  .action(async (flags: ClusterLaunchFlags) => {
    const { launchCluster } = await import('./cluster-launcher.js');
    await launchCluster(flags);
  });

addCertsCommand(program);

program
  .command('chaos')
  .description('Jepsen-style test of a real local cluster: workload + faults on a seeded schedule, then a verdict (docs/chaos.md)')
  .option('--nodes <n>', '3 or 5', '3')
  .option('--replication <mode>', 'raft or leaderless', 'raft')
  .option('--engine <engine>', 'lsm, btree or leveldb', 'lsm')
  .option('--duration <time>', 'how long the workload and faults run (30s, 10m)', '30s')
  .option('--nemesis <families>', 'kill, pause, partition, link, clock, disk, membership (comma-separated), all or none', 'kill,pause,partition,link')
  .option('--seed <n>', 'the seed of the fault schedule and the workload (random when absent; printed)')
  .option('--workload <name>', 'register, set or bank (leaderless: register or set)', 'register')
  .option('--workers <n>', 'concurrent clients (default 3 per node)')
  .option('--net <mode>', 'proxy (a userspace proxy per link) or netns (namespaces + iptables; root)', 'proxy')
  .option('--out <dir>', 'write history.jsonl, faults.jsonl, summary.json and report.html here')
  .option('--recovery-bound-ms <ms>', 'a write must succeed within this long after the final heal', '15000')
  .option('--op-timeout-ms <ms>', "a client request's timeout (then its outcome is unknown)", '2000')
  .option('--split-keys <keys>', 'raft: a sharded cluster cut at these keys (comma-separated); leader faults take turns among the shard leaders')
  .option('--test-bug <names>', 'plant deliberate bugs in every member (raft: no-read-index, no-check-quorum, ack-before-majority; leaderless: ack-before-w, anti-entropy-skips-range, overwrite-concurrent)')
  .action(async (flags: Record<string, string>) => {
    // Test tooling, loaded only for this command: product code never imports testkit statically.
    const { chaosCommand } = (await import(new URL('../../testkit/chaos/cli.js', import.meta.url).href)) as { chaosCommand(flags: Record<string, string>): Promise<number> };
    process.exitCode = await chaosCommand(flags);
  });

program
  .option('--endpoint <url>', 'server for client commands (env IMPULSE_ENDPOINT)', process.env['IMPULSE_ENDPOINT'] ?? `http://${DEFAULT_HOST}:${DEFAULT_PORT}`)
  .option('--timeout <ms>', 'client request timeout in milliseconds', '10000')
  .option('-o, --output <format>', 'client commands print json or text', 'text');
addClientSecurityOptions(program);

// A bad -o is a usage error before any command runs (a get must not fail with "not found" first).
let role: 'client' | 'server' = 'client';
program.hook('preAction', (_program, command) => {
  if (command.name() === 'serve' || command.name() === 'cluster' || command.name() === 'certs' || command.name() === 'chaos') role = 'server';
  outputFormat(program.opts<{ output: string }>().output, false);
});

const clientContext: ClientContext = {
  client(): ImpulseClient {
    const options = program.opts<{ endpoint: string; timeout: string } & ClientSecurityFlags>();
    const timeoutMs = Number(options.timeout);
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw new UsageError('--timeout must be a positive integer (milliseconds)');
    return new ImpulseClient({ endpoint: options.endpoint, timeoutMs, ...clientSecurityOptions(options) });
  },
  format: (json) => outputFormat(program.opts<{ output: string }>().output, json),
};
registerClientCommands(program, clientContext);
registerLeaderlessCommands(program, clientContext);

program
  .command('completion')
  .description('print a shell completion script: source <(impulse completion bash)')
  .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
  .action((shell: 'bash' | 'zsh') => {
    process.stdout.write(completionScript(program, shell));
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof CommanderError) {
    // Commander printed the message already (one line, through outputError); --help and --version end here with 0.
    process.exit(error.exitCode === 0 ? EXIT.ok : EXIT.usage);
  }
  const code = (error as { code?: string }).code;
  if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    process.stderr.write(`impulse: cannot listen: ${(error as Error).message}\n`);
    process.exit(EXIT.failure);
  }
  if (error instanceof UsageError || isImpulseError(error)) {
    process.stderr.write(`impulse: ${(error as Error).message}\n`);
    process.exit(exitCodeOf(error, role));
  }
  process.stderr.write(`impulse: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(EXIT.failure);
});
