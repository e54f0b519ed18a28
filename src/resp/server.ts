/**
 * The Redis protocol (RESP2 and RESP3) front end of one node, on node:net.
 * Every command goes through the node's `KvService`, as HTTP requests do: on
 * a cluster member the service forwards writes to the leader, so any node
 * accepts any command and Redis clients need no cluster protocol.
 *
 * Use: `new RespServer({service, logger, version})`, `listen(port, host)`,
 * and `close()` before the service is closed (it does not close the service:
 * the HTTP server, started beside it, owns that). Its figures go into the
 * node's /metrics through `metrics.render()`.
 *
 * Commands, their mapping onto impulse and the limits: docs/resp.md.
 */
import { type Server, type Socket, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { type Server as TlsServer, createServer as createTlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { ImpulseError } from '../errors.js';
import type { KvService } from '../service/kv-service.js';
import type { Authorizer } from '../security/auth.js';
import { TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT, TlsHandshakeGuard, type TlsMaterial, secureContextOptions } from '../security/tls.js';
import { type ClientState, type CommandSpec, CommandTable, type ServerView } from './command.js';
import { CONNECTION_COMMANDS } from './commands/connection.js';
import { PutCoalescer } from './put-coalescer.js';
import { KEY_COMMANDS } from './commands/keys.js';
import { SERVER_COMMANDS } from './commands/server.js';
import { type CloseReason, type ConnectionLimits, RespConnection } from './connection.js';
import { errorReply } from './encoder.js';
import { RespMetrics } from './metrics.js';
import { RequestParser, type ParserLimits } from './parser.js';
import { ScanCursors } from './scan-cursors.js';
import { EndOfTurn } from '../util/end-of-turn.js';

export interface RespServerOptions {
  readonly service: KvService;
  readonly logger: Logger;
  /** impulse's version (HELLO, INFO). */
  readonly version: string;
  /** Open connections at most; one more is answered "-ERR max number of clients reached" and closed. Default 10,000 (Redis's maxclients). */
  readonly connectionsMax?: number;
  /** Commands one connection may have unanswered before reading from it pauses. Default 1,024. */
  readonly pipelineDepthMax?: number;
  /** Unsent reply bytes of one connection at which reading from it pauses. Default 1 MiB. */
  readonly outputBytesHighWater?: number;
  /** Unsent reply bytes of one connection beyond which it is closed. Default 64 MiB, and at least twice the value limit. */
  readonly outputBytesMax?: number;
  /** How long a connection's output may stay above the high-water mark with nothing read by the client, ms. Default 30,000. */
  readonly outputStallMs?: number;
  /** Largest SCAN page. Default 1,000 (below the service's range limit). */
  readonly scanCountMax?: number;
  /** How long shutdown waits for connections to get their last replies, ms. Default 10,000. */
  readonly shutdownGraceMs?: number;
  /** The node's token file and roles: connections must AUTH with a token (access.ts). Absent: no AUTH needed. */
  readonly auth?: Authorizer;
  /** Serve RESP over TLS with this certificate and key (the HTTP API's files); with `ca`, clients must present a certificate chaining to it. */
  readonly tls?: TlsMaterial;
  /** A connection whose TLS handshake has not finished by then is closed, ms. Default 10,000. */
  readonly tlsHandshakeTimeoutMs?: number;
  /** TLS handshakes in progress at once, at most (security/tls.ts). Default 256. */
  readonly tlsHandshakesMax?: number;
}

/** The Redis version whose command set and replies impulse follows. */
export const REDIS_COMPATIBLE_VERSION = '7.0.0';

export class RespServer {
  readonly metrics: RespMetrics;
  /** The TLS listener's handshake figures; undefined without TLS. */
  readonly tlsHandshakes: TlsHandshakeGuard | undefined;
  private readonly server: Server;
  private readonly connections = new Set<RespConnection>();
  private readonly commands: CommandTable;
  private readonly view: ServerView;
  private readonly parserLimits: ParserLimits;
  private readonly connectionLimits: ConnectionLimits;
  /** The connections whose replies of this turn leave at its end (connection.ts `pump`). */
  private readonly turnEnd = new EndOfTurn<RespConnection>((connection) => connection.turnEnded());
  private readonly connectionsMax: number;
  private readonly startedAt = performance.now();
  private nextClientId = 1;
  private closing = false;
  private boundPort = 0;

  constructor(private readonly options: RespServerOptions) {
    const specs = [...CONNECTION_COMMANDS, ...KEY_COMMANDS, ...SERVER_COMMANDS];
    this.commands = new CommandTable(specs);
    this.metrics = new RespMetrics(specs);
    const { service } = options;
    const { keyBytesMax, valueBytesMax, batchOpsMax, batchBytesMax, rangeLimitMax } = service.limits;
    this.parserLimits = {
      // MSET of a full batch: the name and two arguments per op.
      argsMax: Math.max(1024, 2 * batchOpsMax + 1),
      argBytesMax: Math.max(keyBytesMax, valueBytesMax),
      // A full batch, plus the keys of a DEL/MGET/EXISTS of batchOpsMax keys.
      commandBytesMax: batchBytesMax + batchOpsMax * keyBytesMax,
      inlineBytesMax: 64 * 1024,
      bulkBytesProtocolMax: 512 * 1024 * 1024,
    };
    this.connectionLimits = {
      pipelineDepthMax: options.pipelineDepthMax ?? 1024,
      outputBytesHighWater: options.outputBytesHighWater ?? 1024 * 1024,
      outputBytesMax: options.outputBytesMax ?? Math.max(64 * 1024 * 1024, 2 * valueBytesMax),
      outputStallMs: options.outputStallMs ?? 30_000,
      parserLimits: this.parserLimits,
    };
    this.connectionsMax = options.connectionsMax ?? 10_000;
    const scanCountMax = Math.min(options.scanCountMax ?? 1000, rangeLimitMax);
    this.view = {
      service,
      version: options.version,
      redisVersion: REDIS_COMPATIBLE_VERSION,
      cursors: new ScanCursors({ cursorsMax: 10_000, cursorBytesMax: 16 * 1024 * 1024 }),
      scanCountMax,
      conditionalRetriesMax: 16,
      commands: this.commands,
      putCoalescer: new PutCoalescer(service, service.limits),
      ...(options.auth !== undefined ? { auth: options.auth } : {}),
      authRefused: (reason) => this.metrics.authRefused(reason),
      port: () => this.boundPort,
      uptimeSeconds: () => Math.floor((performance.now() - this.startedAt) / 1000),
      stats: () => ({
        connectedClients: this.metrics.connectionsOpen,
        connectionsTotal: this.metrics.connectionsTotal,
        rejectedConnections: this.metrics.connectionsRejected,
        commandsTotal: this.metrics.commandsTotal,
        outputDisconnects: this.metrics.outputDisconnects,
      }),
      status: () => service.status(),
    };
    // allowHalfOpen: a client's FIN does not end our side before its replies are written (connection.ts).
    const socketOptions = { noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000, allowHalfOpen: true };
    if (options.tls === undefined) {
      this.tlsHandshakes = undefined;
      this.server = createServer(socketOptions, (socket) => this.accept(socket));
    } else {
      // TLS as on the HTTP port: the same files, handshake timeout and handshake cap (security/tls.ts).
      this.tlsHandshakes = new TlsHandshakeGuard({ listener: 'resp', logger: options.logger, ...(options.tlsHandshakesMax !== undefined ? { handshakesMax: options.tlsHandshakesMax } : {}) });
      const server = createTlsServer({ ...socketOptions, ...secureContextOptions(options.tls), handshakeTimeout: options.tlsHandshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT });
      this.tlsHandshakes.attach(server);
      server.on('secureConnection', (socket) => this.accept(socket));
      this.server = server;
    }
  }

  /**
   * Replaces the certificate, key and client CA (a reload). New connections
   * use them; open ones keep theirs. Only for a server started with `tls`.
   */
  setTls(tls: TlsMaterial): void {
    if (this.tlsHandshakes === undefined) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'the RESP listener was started without TLS; restart it with --tls-cert');
    (this.server as TlsServer).setSecureContext(secureContextOptions(tls));
  }

  /** Starts listening; port 0 picks a free port. */
  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const address = this.server.address() as AddressInfo;
        this.boundPort = address.port;
        resolve(address);
      });
    });
  }

  /**
   * Stops accepting connections; every open connection answers the commands it
   * already took and ends; after `shutdownGraceMs` the rest are cut. Resolves
   * once all are closed. Idempotent. Does not close the service.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.tlsHandshakes?.abortHandshakes();
    for (const connection of this.connections) connection.shutdown();
    const grace = setTimeout(() => {
      for (const connection of this.connections) connection.destroy();
    }, this.options.shutdownGraceMs ?? 10_000);
    grace.unref();
    await closed;
    clearTimeout(grace);
  }

  private accept(socket: Socket): void {
    if (this.closing || this.connections.size >= this.connectionsMax) {
      this.metrics.connectionsRejected++;
      socket.on('error', () => undefined);
      socket.end(this.closing ? errorReply('ERR the server is shutting down (IMPULSE_ERR_SHUTTING_DOWN)') : errorReply('ERR max number of clients reached'));
      return;
    }
    this.metrics.connectionsTotal++;
    this.metrics.connectionsOpen++;
    const client: ClientState = {
      id: this.nextClientId++,
      address: `${socket.remoteAddress}:${socket.remotePort}`,
      proto: 2,
      name: '',
      consistency: 'linearizable',
    };
    const hooks = {
      commandDone: (spec: CommandSpec | undefined, seconds: number, failed: boolean) => this.metrics.commandDone(spec, seconds, failed),
      closed: (connection: RespConnection, reason: CloseReason) => {
        this.connections.delete(connection);
        this.metrics.connectionsOpen--;
        this.metrics.disconnected(reason);
      },
      atTurnEnd: (connection: RespConnection) => this.turnEnd.add(connection),
    };
    const connection = new RespConnection(socket, client, new RequestParser(this.parserLimits), this.view, this.connectionLimits, hooks, this.options.logger);
    this.connections.add(connection);
  }
}
