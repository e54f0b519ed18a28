/**
 * `impulse cluster --nodes 3`: a local cluster in one command. Starts N
 * `impulse serve` member processes (client ports 7071.., peer ports 7171..,
 * data under <data-dir>/node-N), prints their endpoints and the leader, keeps
 * running in the foreground with each member's log lines prefixed by its id,
 * and on Ctrl-C (SIGINT) or SIGTERM stops them all cleanly (SIGTERM, then
 * SIGKILL after a grace period). The next start reuses the data: the same
 * flags give the same cluster id, and members rejoin from their directories.
 *
 * The members stop on their own when the launcher is gone, however it died
 * (`--stop-on-stdin-close`: each holds a pipe from it, which the kernel closes).
 *
 * A member that dies unexpectedly is reported; with `--restart` it is started
 * again (at most `RESTARTS_PER_MINUTE_MAX` times a minute, then left down).
 *
 * With `--certs <dir>` (the files of `impulse certs`) the members serve HTTPS
 * with their node certificates and speak mutual TLS to each other, checked
 * against the CA in the directory; the launcher's own client uses that CA.
 * When the members get a token file (`--serve-args "--token-file ..."`), the
 * launcher reads the cluster view with the token in IMPULSE_TOKEN.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type ClientOptions, ImpulseClient } from '../client/client.js';
import { configInvalid, integerValue } from '../util/config-values.js';

export interface ClusterLaunchFlags {
  nodes?: string;
  engine?: string;
  dataDir?: string;
  port?: string;
  peerPort?: string;
  host?: string;
  sync?: string;
  logLevel?: string;
  restart?: boolean;
  /** --chaos-results for every member: chaos runs their dashboards list. */
  chaosResults?: string;
  /** The Redis protocol port of member 1 (member N: + N - 1); absent: no RESP listeners. */
  respPort?: string;
  /** Extra flags passed to every `impulse serve` (space-separated). */
  serveArgs?: string;
  /** raft (default) or leaderless: passed to every member. */
  replication?: string;
  /** Directory of `impulse certs`: HTTPS and mutual TLS between members. */
  certs?: string;
}

interface Member {
  readonly id: number;
  readonly clientUrl: string;
  /** `host:port` of its RESP listener, when --resp-port was given. */
  readonly resp: string | undefined;
  readonly args: readonly string[];
  child: ChildProcess | undefined;
  restarts: number[];
}

/** The launcher's own client: the CA of --certs, the token of IMPULSE_TOKEN. */
type ClientSecurity = Pick<ClientOptions, 'ca' | 'token'>;

const RESTARTS_PER_MINUTE_MAX = 5;
const STOP_GRACE_MS = 10_000;
const START_TIMEOUT_MS = 30_000;
const CLI_MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

export async function launchCluster(flags: ClusterLaunchFlags): Promise<void> {
  const count = integerValue('--nodes', flags.nodes ?? '3', 1, 9);
  const basePort = integerValue('--port', flags.port ?? '7071', 1, 65535 - count);
  const basePeerPort = integerValue('--peer-port', flags.peerPort ?? '7171', 1, 65535 - count);
  const host = flags.host ?? '127.0.0.1';
  const dataDir = resolve(flags.dataDir ?? join('data', 'cluster'));
  const ids = Array.from({ length: count }, (_, i) => i + 1);
  if (ids.some((id) => basePort + id - 1 >= basePeerPort && basePort + id - 1 < basePeerPort + count)) {
    throw configInvalid('client and peer port ranges overlap; choose --port and --peer-port further apart');
  }
  const baseRespPort = flags.respPort === undefined ? undefined : integerValue('--resp-port', flags.respPort, 1, 65535 - count);
  const ranges = [basePort, basePeerPort, ...(baseRespPort !== undefined ? [baseRespPort] : [])];
  if (baseRespPort !== undefined && ranges.some((base, i) => ranges.some((other, j) => i !== j && Math.abs(base - other) < count))) {
    throw configInvalid('the client, peer and RESP port ranges overlap; choose --port, --peer-port and --resp-port further apart');
  }
  const initialCluster = ids.map((id) => `${id}=${host}:${basePeerPort + id - 1}`).join(',');
  const leaderless = flags.replication === 'leaderless';
  if (flags.replication !== undefined && !leaderless && flags.replication !== 'raft') throw configInvalid('--replication must be raft or leaderless');
  const certs = flags.certs === undefined ? undefined : resolve(flags.certs);
  const ca = certs === undefined ? undefined : readCa(certs);
  const scheme = certs === undefined ? 'http' : 'https';
  const token = process.env['IMPULSE_TOKEN'];
  const clientSecurity = { ...(ca !== undefined ? { ca } : {}), ...(token !== undefined && token.length > 0 ? { token } : {}) };
  const members: Member[] = ids.map((id) => {
    const args = [
      CLI_MAIN, 'serve',
      '--node-id', String(id),
      '--host', host,
      '--port', String(basePort + id - 1),
      '--peer-port', String(basePeerPort + id - 1),
      '--initial-cluster', initialCluster,
      '--data-dir', join(dataDir, `node-${id}`),
      ...(flags.engine !== undefined ? ['--engine', flags.engine] : []),
      ...(flags.sync !== undefined ? ['--sync', flags.sync] : []),
      '--log-level', flags.logLevel ?? 'warn',
      // The members hold the read end of a pipe from this process: if it dies, even by kill -9, they stop.
      '--stop-on-stdin-close',
      ...(flags.chaosResults !== undefined ? ['--chaos-results', resolve(flags.chaosResults)] : []),
      ...(leaderless ? ['--replication', 'leaderless'] : []),
      ...(baseRespPort !== undefined ? ['--resp-port', String(baseRespPort + id - 1)] : []),
      ...(certs !== undefined ? ['--tls-cert', join(certs, `node-${id}.crt`), '--tls-key', join(certs, `node-${id}.key`), '--peer-tls-ca', join(certs, 'ca.crt')] : []),
      ...(flags.serveArgs !== undefined && flags.serveArgs.trim().length > 0 ? flags.serveArgs.trim().split(/\s+/) : []),
    ];
    const resp = baseRespPort !== undefined ? `${host}:${baseRespPort + id - 1}` : undefined;
    return { id, clientUrl: `${scheme}://${host}:${basePort + id - 1}`, resp, args, child: undefined, restarts: [] };
  });

  let stopping = false;
  const start = (member: Member): void => {
    const child = spawn(process.execPath, member.args, { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    member.child = child;
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => process.stdout.write(`[node-${member.id}] ${describeLogLine(line)}\n`));
    }
    child.once('exit', (code, signal) => {
      if (member.child === child) member.child = undefined;
      if (stopping) return;
      process.stdout.write(`impulse cluster: node ${member.id} exited unexpectedly (${signal ?? `status ${code}`})\n`);
      if (!flags.restart) return;
      const now = performance.now();
      member.restarts = member.restarts.filter((at) => now - at < 60_000);
      if (member.restarts.length >= RESTARTS_PER_MINUTE_MAX) {
        process.stdout.write(`impulse cluster: node ${member.id} restarted ${RESTARTS_PER_MINUTE_MAX} times within a minute; leaving it down\n`);
        return;
      }
      member.restarts.push(now);
      setTimeout(() => {
        if (!stopping) start(member);
      }, 1000);
    });
  };

  const stopAll = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`impulse cluster: ${signal}: stopping ${members.length} members\n`);
    await Promise.all(members.map((member) => stopMember(member)));
    process.exit(0);
  };
  process.on('SIGINT', () => void stopAll('SIGINT'));
  process.on('SIGTERM', () => void stopAll('SIGTERM'));

  for (const member of members) start(member);
  await waitForCluster(members, clientSecurity, leaderless);
  if (stopping) return;
  await printCluster(members, clientSecurity, certs, leaderless);
}

function readCa(certs: string): Buffer {
  try {
    return readFileSync(join(certs, 'ca.crt'));
  } catch {
    throw configInvalid(`--certs ${certs} has no readable ca.crt; create the files with: impulse certs --out ${certs}`);
  }
}

/** SIGTERM to the member's process group, SIGKILL after the grace period; resolves once it has exited. */
async function stopMember(member: Member): Promise<void> {
  const child = member.child;
  if (child === undefined || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  signalGroup(child.pid, 'SIGTERM');
  const timer = setTimeout(() => signalGroup(child.pid!, 'SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Waits until every member answers /health and (under Raft) one of them names a leader. */
async function waitForCluster(members: readonly Member[], security: ClientSecurity, leaderless: boolean): Promise<void> {
  const deadline = performance.now() + START_TIMEOUT_MS;
  const clients = members.map((member) => new ImpulseClient({ endpoint: member.clientUrl, timeoutMs: 1000, ...security }));
  try {
    for (;;) {
      const healthy = await Promise.all(clients.map((client) => client.health().catch(() => false)));
      if (healthy.every(Boolean)) {
        if (leaderless) return;
        const leaders = await Promise.all(clients.map((client) => client.cluster().then((view) => view.leader, () => null)));
        if (leaders.some((leader) => leader !== null)) return;
      }
      if (performance.now() > deadline) {
        process.stdout.write(`impulse cluster: no leader after ${START_TIMEOUT_MS / 1000} s; members keep trying (see their log lines)\n`);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    for (const client of clients) client.close();
  }
}

async function printCluster(members: readonly Member[], security: ClientSecurity, certs: string | undefined, leaderless: boolean): Promise<void> {
  const client = new ImpulseClient({ endpoint: members[0]!.clientUrl, timeoutMs: 2000, ...security });
  try {
    const view = await client.cluster().catch(() => undefined);
    const lines = [`impulse cluster: ${members.length} members${view !== undefined ? ` (cluster ${view.clusterId})` : ''}`];
    for (const member of members) {
      const info = view?.members.find((candidate) => candidate.id === member.id);
      lines.push(`  node ${member.id}  ${member.clientUrl}  peer ${info?.peerUrl ?? '?'}${member.resp !== undefined ? `  resp ${member.resp}` : ''}  ${info?.role ?? 'unknown'}`);
    }
    lines.push(leaderless ? '  leaderless: every member serves reads and writes' : `  leader: ${view?.leader !== null && view?.leader !== undefined ? `node ${view.leader}` : 'none yet'}`);
    lines.push(`  dashboard: ${members[0]!.clientUrl}/ui`);
    const caFlag = certs !== undefined ? ` --ca ${join(certs, 'ca.crt')}` : '';
    lines.push(`  try: npx impulse --endpoint ${members[0]!.clientUrl}${caFlag} put greeting hello   (Ctrl-C stops the cluster)`);
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    client.close();
  }
}

/** A member's pino JSON line as "LEVEL message key=value..."; other lines unchanged. */
function describeLogLine(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const record = JSON.parse(line) as Record<string, unknown>;
    const { level, msg, time: _time, pid: _pid, hostname: _hostname, node: _node, err, ...rest } = record;
    const name = ({ 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' } as Record<number, string>)[Number(level)] ?? String(level);
    // An error's message is enough here; the member's own log (run it alone) has the stack.
    if (typeof err === 'object' && err !== null) rest['error'] = (err as { message?: unknown }).message;
    const extra = Object.entries(rest).map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
    return `${name} ${String(msg)}${extra.length > 0 ? ' ' + extra.join(' ') : ''}`;
  } catch {
    return line;
  }
}
