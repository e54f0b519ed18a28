/**
 * `impulse serve`: one node. Without `--node-id` a single node: the store (the
 * engine in its home `<dataDir>/<engine>`, the key-value state machine, the
 * local service). With it, a Raft cluster member (src/cluster/open-member.ts):
 * the same API on the Raft service, plus the cluster routes. Serves HTTP (and
 * with --resp-port the Redis protocol, src/resp/, on the same service), and
 * on SIGINT or SIGTERM shuts down cleanly (stop accepting, finish in-flight
 * requests and queued writes, a leader hands leadership over, close the
 * store); a second signal exits at once. The data-directory lock is released
 * on every way out, a failed shutdown included. SIGHUP reloads the token file
 * and the TLS certificates (security-runtime.ts); a changed certificate file
 * is picked up on its own. (Logs go to stdout: there is no log file to reopen.)
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Logger, pino } from 'pino';
import type { Authorizer } from '../security/auth.js';
import { ImpulseServer } from '../api/server.js';
import type { TlsMaterial } from '../security/tls.js';
import { readIdentity } from '../cluster/identity.js';
import { openLeaderlessMember } from '../cluster/open-leaderless-member.js';
import { holdsSingleNodeStore, openMember } from '../cluster/open-member.js';
import { ImpulseError } from '../errors.js';
import type { KvService } from '../service/kv-service.js';
import { RespServer } from '../resp/server.js';
import { openLocalKvService } from '../service/open-local.js';
import type { EngineChoices } from '../storage/engine-names.js';
import { RowCacheBudget } from '../storage/row-cache.js';
import { openTestHooks } from '../test-hooks/test-hooks.js';
import { NodeVfs } from '../vfs/node-vfs.js';
import { VERSION } from '../version.js';
import type { ServeConfig } from './config.js';
import { lockDataDir } from './data-dir-lock.js';
import { type PeerTlsMaterial, TlsSocketFactory } from '../transport/tls-socket-factory.js';
import { loadAuthorizer, readPeerTlsMaterial, readTlsMaterial, securityWarnings, watchSecurity } from './security-runtime.js';

interface Opened {
  readonly service: KvService;
  readonly server: ImpulseServer;
  /** Runs once the API listens at `url` (a member publishes its client URL). */
  readonly started?: (url: string) => void;
  readonly logFields: Record<string, unknown>;
  /** The peer transport's TLS, when members speak mutual TLS (reloaded with the rest). */
  readonly peerTls?: TlsSocketFactory;
}

/** What the client listeners (HTTP and RESP) need from the security flags, files read. */
interface Secured {
  readonly auth?: Authorizer;
  readonly tls?: TlsMaterial;
  readonly tlsHandshakesMax?: number;
  /** The relay to other members (a cluster member's dashboard): the private CA it trusts. */
  readonly memberProxy?: { readonly ca: Buffer };
}

export async function serve(config: ServeConfig): Promise<void> {
  const logger = pino({ level: config.logLevel, base: { pid: process.pid } });
  await mkdir(config.dataDir, { recursive: true });
  const lock = await lockDataDir(join(config.dataDir, `${config.engine}.lock`));
  // The last resort: whatever ends the process (a second signal, an uncaught error), the lock goes too.
  process.on('exit', () => lock.releaseSync());
  let opened: Opened | undefined;
  let resp: RespServer | undefined;
  let address;
  let respAddress;
  let secured: Secured = {};
  try {
    const auth = await loadAuthorizer(config.security);
    const tls = config.security.clientTls === undefined ? undefined : await readTlsMaterial(config.security.clientTls);
    secured = { ...(auth !== undefined ? { auth } : {}), ...(tls !== undefined ? { tls, tlsHandshakesMax: config.security.tlsHandshakesMax } : {}) };
    for (const warning of securityWarnings(config.security, config.host)) logger.warn(warning);
    opened = config.cluster === undefined ? await openSingleNode(config, logger, secured) : await openClusterMember(config, logger, secured);
    if (config.respPort !== undefined) {
      // The same tokens, roles and TLS files as the HTTP API (docs/resp.md, "Tokens and TLS").
      resp = new RespServer({ service: opened.service, logger, version: VERSION, ...secured });
      opened.server.metrics.include(() => resp!.metrics.render());
      if (resp.tlsHandshakes !== undefined) opened.server.reportTlsListener(resp.tlsHandshakes);
      respAddress = await resp.listen(config.respPort, config.host);
    }
    address = await opened.server.listen(config.port, config.host);
  } catch (error) {
    await resp?.close();
    await opened?.service.close().catch((closeError: unknown) => logger.warn({ err: closeError }, 'closing the store after a failed start'));
    await lock.release();
    throw error;
  }
  const { server, service } = opened;
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    // The RESP connections first: they answer what they took while the service still runs.
    const closed = (resp?.close() ?? Promise.resolve()).then(() => server.close());
    closed.then(
      async () => {
        await lock.release();
        logger.info('store closed; bye');
        process.exit(0);
      },
      async (error: unknown) => {
        logger.error({ err: error }, 'error during shutdown');
        await lock.release();
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  if (config.stopOnStdinClose) {
    stopWhenStdinEnds(() => {
      if (!stopping) stop('stdin closed'); // not a second signal: the supervisor's pipe closes after its SIGTERM too
    });
  }
  const auth = secured.auth;
  const peerTls = opened.peerTls;
  if (peerTls !== undefined) server.metrics.include(() => peerTls.renderMetrics());
  const setClientTls = (material: TlsMaterial): void => {
    server.setTls(material);
    resp?.setTls(material);
  };
  watchSecurity({
    config: config.security,
    logger,
    ...(auth !== undefined ? { authorizer: auth } : {}),
    ...(config.security.clientTls !== undefined ? { clientTls: (material: TlsMaterial) => setClientTls(material) } : {}),
    ...(peerTls !== undefined ? { peerTls: (material: PeerTlsMaterial) => peerTls.setMaterial(material) } : {}),
  });
  const url = `${config.security.clientTls !== undefined ? 'https' : 'http'}://${hostPort(address.address, address.port)}`;
  // Announce only once the handlers are in place: whoever waits for this line may signal at once.
  opened.started?.(url);
  const status = await service.status();
  const security = { tls: config.security.clientTls !== undefined, clientCertificates: config.security.clientTls?.caFile !== undefined, tokens: auth?.tokenCount ?? 0, peerTls: peerTls !== undefined };
  const respField = respAddress === undefined ? {} : { resp: hostPort(respAddress.address, respAddress.port) };
  logger.info({ url, ...respField, engine: status.engine, sync: status.sync, appliedIndex: status.appliedIndex, version: VERSION, security, ...opened.logFields }, 'impulse is listening');
}

/**
 * Calls `stop` once standard input ends (EOF, or the pipe's writer gone) or
 * fails; whatever arrives on it is discarded. Only with --stop-on-stdin-close,
 * where standard input is a supervisor's pipe: a terminal's stdin would stop
 * the node at Ctrl-D.
 */
function stopWhenStdinEnds(stop: () => void): void {
  let stopped = false;
  const once = (): void => {
    if (stopped) return;
    stopped = true;
    stop();
  };
  process.stdin.on('data', () => undefined);
  process.stdin.once('end', once);
  process.stdin.once('error', once);
  process.stdin.once('close', once);
}

function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

async function openSingleNode(config: ServeConfig, logger: Logger, secured: Secured): Promise<Opened> {
  const identity = await readIdentity(new NodeVfs(), config.dataDir);
  if (identity !== undefined) {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `${config.dataDir} belongs to node ${identity.nodeId} of cluster ${identity.clusterId}; start it with --node-id ${identity.nodeId} and its cluster flags, or use another --data-dir`);
  }
  const dataDir = join(config.dataDir, config.engine);
  const service = await openLocalKvService({ engine: config.engine, dataDir, sync: config.sync, limits: config.limits, engineChoices: engineChoices(config, logger) });
  return { service, server: new ImpulseServer({ service, logger, version: VERSION, statusExtra: { dataDir }, ...secured, ...dashboardOptions(config) }), logFields: { dataDir } };
}

async function openClusterMember(config: ServeConfig, logger: Logger, given: Secured): Promise<Opened> {
  const cluster = config.cluster!;
  if ((await readIdentity(new NodeVfs(), config.dataDir)) === undefined && (await holdsSingleNodeStore(new NodeVfs(), config.dataDir, config.engine))) {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `${config.dataDir} holds a single-node store (${config.engine}/); a cluster member needs a data directory of its own`);
  }
  const peerFiles = config.security.peerTls;
  const peerMaterial = peerFiles === undefined ? undefined : await readPeerTlsMaterial(peerFiles);
  const peerTls = peerMaterial === undefined ? undefined : new TlsSocketFactory({ material: peerMaterial, logger: logger.child({ component: 'peer-tls' }) });
  // The dashboard's relay to other members trusts the cluster CA (their client certificates come from it with `impulse certs`).
  const memberCa = peerMaterial?.ca ?? given.tls?.ca;
  const secured: Secured = memberCa === undefined ? given : { ...given, memberProxy: { ca: memberCa } };
  if (config.leaderless !== undefined) return openLeaderless(config, logger, secured, peerTls);
  if (await new NodeVfs().exists(join(config.dataDir, 'leaderless'))) {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `${config.dataDir} holds a leaderless member's data; start it with --replication leaderless, or use another --data-dir`);
  }
  const member = await openMember(await memberOptions(config, logger, peerTls));
  const server = new ImpulseServer({ service: member.service, logger, version: VERSION, statusExtra: { dataDir: config.dataDir }, cluster: member.admin, metrics: [member.latency.histogram], ...secured, ...dashboardOptions(config) });
  return {
    service: member.service,
    server,
    // The default advertised URL names --port; with --port 0 only the bound port is right.
    started: (url) => member.admin.start(cluster.advertiseClientGiven || config.port !== 0 ? cluster.advertiseClient : url),
    logFields: { dataDir: config.dataDir, nodeId: cluster.nodeId, clusterId: cluster.clusterId, peer: `${member.peerAddress.host}:${member.peerAddress.port}` },
    ...(peerTls !== undefined ? { peerTls } : {}),
  };
}

/** What a Raft and a leaderless member are opened with alike: identity, engine and its flags, peer TLS, and the test-only hooks (which replace the clock, the disk and the socket factory). */
async function memberOptions(config: ServeConfig, logger: Logger, peerTls: TlsSocketFactory | undefined) {
  const cluster = config.cluster!;
  return {
    cluster,
    engine: config.engine,
    engineChoices: engineChoices(config, logger),
    dataDir: config.dataDir,
    limits: config.limits,
    logger,
    ...(peerTls !== undefined ? { socketFactory: peerTls } : {}),
    ...(await openTestHooks(config.testHooks, new NodeVfs(), cluster.nodeId, logger, peerTls)),
  };
}

function dashboardOptions(config: ServeConfig): { chaosResultsDir?: string } {
  return config.chaosResultsDir !== undefined ? { chaosResultsDir: config.chaosResultsDir } : {};
}

async function openLeaderless(config: ServeConfig, logger: Logger, secured: Secured, peerTls: TlsSocketFactory | undefined): Promise<Opened> {
  const cluster = config.cluster!;
  const member = await openLeaderlessMember({ ...(await memberOptions(config, logger, peerTls)), leaderless: config.leaderless! });
  const server = new ImpulseServer({ service: member.service, logger, version: VERSION, statusExtra: { dataDir: config.dataDir }, cluster: member.admin, ...secured, ...dashboardOptions(config) });
  return {
    service: member.service,
    server,
    logFields: { dataDir: config.dataDir, nodeId: cluster.nodeId, clusterId: cluster.clusterId, replication: 'leaderless', peer: `${member.peerAddress.host}:${member.peerAddress.port}` },
    ...(peerTls !== undefined ? { peerTls } : {}),
  };
}

/** The engine's flags with serve's logger (engines that log use it; the others ignore it) and the node's one row cache budget. */
function engineChoices(config: ServeConfig, logger: Logger): EngineChoices {
  return { ...config.engineChoices, log: logger.child({ component: 'engine' }), rowCache: new RowCacheBudget(config.rowCacheBytes) };
}
