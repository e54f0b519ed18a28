/**
 * The HTTP server of one impulse node, on node:http (fastify is measured beside
 * it in bench/concurrent.ts; five routes need no framework: docs/benchmarks.md).
 * It parses and validates requests, calls the `KvService` (src/service/), and
 * maps every error to a JSON body from the error catalog. It never crashes on
 * a request: every handler's failure becomes a response. Revisions travel as
 * ETags, conditions as If-Match / If-None-Match, client sessions as
 * Impulse-Client-* headers (write-headers.ts).
 *
 * Connection handling (pipelined requests in order, backpressure, connection
 * errors, lingering close) is `RequestPipeline` (pipeline.ts); request bodies
 * are read by body.ts; this file is the routes and their handlers.
 *
 * Routes (docs/api.md has the reference):
 *   GET|HEAD|PUT|DELETE /kv/{key}   one key; the key is everything after /kv/, percent-decoded to bytes (?consistency on reads)
 *   GET                 /kv         range query (start, end, prefix, limit, reverse, cursor, encoding, consistency)
 *   POST                /kv/batch   atomic batch
 *   GET                 /health, /status, /metrics, /digest
 *   /cluster...         the cluster view and membership operations of a member (cluster-routes.ts)
 *   GET                 /cluster/nodes/{id}/{view}   another member's /status, /health or /cluster, relayed (member-proxy.ts)
 *   GET|HEAD            /ui...      the dashboard and the chaos reports it shows (dashboard-routes.ts)
 */
import { type IncomingMessage, type Server, type ServerOptions as HttpServerOptions, type ServerResponse, createServer } from 'node:http';
import { type Server as HttpsServer, createServer as createHttpsServer } from 'node:https';
import { Server as TlsServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Metric } from 'prom-client';
import { type Authorizer, type Principal, type Role, requireKeyAllowed, requireRangeAllowed } from '../security/auth.js';
import { TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT, TlsHandshakeGuard, type TlsMaterial, renderTlsHandshakes, secureContextOptions } from '../security/tls.js';
import { CLUSTER_BODY_BYTES_MAX, type ClusterRoutesTarget, matchClusterRoute, serveClusterRoute } from './cluster-routes.js';
import { ImpulseError, isImpulseError } from '../errors.js';
import { httpStatusOf } from './http-status.js';
import type { KvCommand } from '../kv/command.js';
import type { StoredValue } from '../kv/record.js';
import { type KvService, READ_NOT_SYNC, type RouteOptions } from '../service/kv-service.js';
import { percentDecode } from '../protocol/codec.js';
import { type BodyLimit, readBody, settleUnreadBody } from './body.js';
import { CONTEXT_HEADER, causalWriteContext, quorumParameter, siblingsBody } from './causal-handlers.js';
import { parseBatch, parseRangeQuery, rangePage } from './kv-handlers.js';
import { type DashboardRoute, DashboardRoutes, dashboardMethods, matchDashboardRoute } from './dashboard-routes.js';
import { type MemberProxyOptions, type MemberRoute, type MemberView, MemberProxy, type RelayedAnswer, matchMemberRoute } from './member-proxy.js';
import { type RouteLabel, ServerMetrics } from './metrics.js';
import { NodeVfs } from '../vfs/node-vfs.js';
import { KEY_NOT_FOUND_BODY, plainGetKey, writeGetAnswer } from './fast-get.js';
import { RequestPipeline } from './pipeline.js';
import { JSON_TYPE, OCTET_TYPE, errorJson } from './responses.js';
import { conditionOf, etagOf, keyQueryConsistency, routeOf, sessionOf } from './write-headers.js';

export interface ServerOptions {
  /** What the routes read and write through; closed by `close()`. */
  readonly service: KvService;
  readonly logger: Logger;
  /** impulse's version, reported by /status. */
  readonly version: string;
  /** Range page size when `limit` is absent. Default 100. */
  readonly pageLimitDefault?: number;
  /** Largest `limit` a range request may ask for. Default 1000 (must stay below the service's rangeLimitMax). */
  readonly pageLimitMax?: number;
  /** How long a request may take to arrive in full, ms. Default 60,000. */
  readonly requestTimeoutMs?: number;
  /** How long a request's headers may take to arrive, ms. Default 30,000 (at most `requestTimeoutMs`). */
  readonly headersTimeoutMs?: number;
  /** Requests that may wait behind the one being handled on one connection before the server stops reading from it. Default 32. */
  readonly pipelineDepthMax?: number;
  /** Longest request target (path and query), bytes (414 beyond). Default: room for a range query with three keys of `keyBytesMax`, all percent-encoded, and a cursor. */
  readonly urlBytesMax?: number;
  /** Room for the header fields beyond the request target, bytes (431 beyond). Default 8 KiB. */
  readonly headerFieldsBytesMax?: number;
  /** After refusing a body, at most this many of its bytes are read and dropped to keep the connection open; a longer rest closes it. Default 64 MiB. */
  readonly bodyDrainBytesMax?: number;
  /** How long a closing connection keeps reading what the client still sends after our FIN, ms. Default 2,000. */
  readonly lingerMs?: number;
  /** How long shutdown waits for in-flight requests before cutting connections, ms. Default 10,000. */
  readonly shutdownGraceMs?: number;
  /** Extra fields for /status (e.g. data directory). */
  readonly statusExtra?: Readonly<Record<string, unknown>>;
  /** The cluster routes' target on a cluster member; absent on a single node. */
  readonly cluster?: ClusterRoutesTarget;
  /** The service's own Prometheus metrics, exported by /metrics. */
  readonly metrics?: readonly Metric[];
  /** Where chaos runs keep their results (--chaos-results), shown by the dashboard. */
  readonly chaosResultsDir?: string;
  /** Where the built dashboard is; default dist/ui of this package (tests point elsewhere). */
  readonly dashboardDir?: string;
  /** Bounds of the relays to other members (GET /cluster/nodes/{id}/{view}). */
  readonly memberProxy?: MemberProxyOptions;
  /** Bearer tokens and roles (auth.ts); absent: every request is allowed (a loopback-only or client-certificate deployment). */
  readonly auth?: Authorizer;
  /** Serve HTTPS with this certificate and key; with `ca`, clients must present a certificate chaining to it. Absent: plain HTTP. */
  readonly tls?: TlsMaterial;
  /** A connection whose TLS handshake has not finished by then is closed, ms. Default 10,000. */
  readonly tlsHandshakeTimeoutMs?: number;
  /** TLS handshakes in progress at once, at most; a connection beyond is closed unhandshaken (security/tls.ts). Default 256. */
  readonly tlsHandshakesMax?: number;
}

const ALLOW_KEY = 'GET, HEAD, PUT, DELETE';
const CLUSTER_BODY: BodyLimit = { bytesMax: CLUSTER_BODY_BYTES_MAX, tooLarge: 'IMPULSE_ERR_CONFIG_INVALID', what: 'body' };

export class ImpulseServer {
  readonly metrics: ServerMetrics;
  private readonly service: KvService;
  private readonly logger: Logger;
  private readonly server: Server | HttpsServer;
  /** The HTTPS listener's handshake figures (also in /metrics); undefined for plain HTTP. */
  readonly tlsHandshakes: TlsHandshakeGuard | undefined;
  /** Every TLS listener of the node whose figures /metrics shows (this one's, and the RESP port's: `reportTlsListener`). */
  private readonly tlsGuards: TlsHandshakeGuard[] = [];
  private readonly pageLimitDefault: number;
  private readonly pageLimitMax: number;
  private readonly valueBody: BodyLimit;
  private readonly batchBody: BodyLimit;
  private readonly bodyDrainBytesMax: number;
  private readonly startedAt = performance.now();
  private readonly dashboard: DashboardRoutes;
  private readonly memberProxy: MemberProxy;
  private shuttingDown = false;

  constructor(private readonly options: ServerOptions) {
    this.service = options.service;
    this.logger = options.logger;
    this.metrics = new ServerMetrics(options.service, options.metrics ?? []);
    this.tlsHandshakes = options.tls === undefined ? undefined : new TlsHandshakeGuard({ listener: 'http', logger: options.logger, ...(options.tlsHandshakesMax !== undefined ? { handshakesMax: options.tlsHandshakesMax } : {}) });
    if (this.tlsHandshakes !== undefined) this.tlsGuards.push(this.tlsHandshakes);
    this.metrics.include(() => renderTlsHandshakes(this.tlsGuards));
    this.pageLimitDefault = options.pageLimitDefault ?? 100;
    this.pageLimitMax = options.pageLimitMax ?? 1000;
    if (this.pageLimitMax >= this.service.limits.rangeLimitMax) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `page limit ${this.pageLimitMax} must be below the service's range limit ${this.service.limits.rangeLimitMax}`);
    }
    const { keyBytesMax, valueBytesMax, batchBytesMax, batchOpsMax } = this.service.limits;
    this.valueBody = { bytesMax: valueBytesMax, tooLarge: 'IMPULSE_ERR_VALUE_TOO_LARGE', what: 'value' };
    // JSON + base64 cost at most 4/3 of the raw bytes, plus per-operation framing.
    this.batchBody = { bytesMax: Math.ceil(batchBytesMax * 1.4) + batchOpsMax * 256, tooLarge: 'IMPULSE_ERR_BATCH_TOO_LARGE', what: 'batch body' };
    this.bodyDrainBytesMax = options.bodyDrainBytesMax ?? 64 * 1024 * 1024;
    this.dashboard = new DashboardRoutes(new NodeVfs(), options.chaosResultsDir, options.dashboardDir);
    this.memberProxy = new MemberProxy(options.memberProxy);
    const requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
    const headersTimeoutMs = Math.min(options.headersTimeoutMs ?? 30_000, requestTimeoutMs);
    // A range query names up to three keys (start, end, prefix), each up to 3 bytes per key byte when percent-encoded, plus a cursor (4/3 per key byte).
    const urlBytesMax = options.urlBytesMax ?? 11 * keyBytesMax + 1024;
    const httpOptions: HttpServerOptions = {
      keepAliveTimeout: 5_000,
      requestTimeout: requestTimeoutMs,
      headersTimeout: headersTimeoutMs,
      // node:http checks the two timeouts on this period (its default, 30 s, would let a timeout fire up to 30 s late).
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, headersTimeoutMs >> 2)),
      // node:http counts the request line and the header fields against this one limit.
      maxHeaderSize: urlBytesMax + (options.headerFieldsBytesMax ?? 8 * 1024),
    };
    this.server = options.tls === undefined ? createServer(httpOptions) : this.createTlsServer(httpOptions, options.tls);
    const pipeline = new RequestPipeline(
      { pipelineDepthMax: options.pipelineDepthMax ?? 32, urlBytesMax, lingerMs: options.lingerMs ?? 2_000, headersTimeoutMs, requestTimeoutMs },
      {
        handle: (req, res) => this.handle(req, res),
        reject: (req, res, error) => this.fail(res, error, 'unmatched', req.method ?? 'GET', performance.now()),
        answeredRaw: (status) => this.finished('unmatched', 'OTHER', status, 0),
      },
    );
    pipeline.attach(this.server);
  }

  /**
   * HTTPS: node:https over node:tls, behind the handshake guard
   * (security/tls.ts): a handshake that stalls is cut off after
   * `tlsHandshakeTimeoutMs`, at most `tlsHandshakesMax` are in progress at
   * once, and a failed one (garbage bytes, a refused client certificate) only
   * closes that socket, counted and logged at debug level.
   */
  private createTlsServer(httpOptions: HttpServerOptions, tls: TlsMaterial): HttpsServer {
    const server = createHttpsServer({ ...httpOptions, ...secureContextOptions(tls), handshakeTimeout: this.options.tlsHandshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT });
    this.tlsHandshakes!.attach(server);
    return server;
  }

  /**
   * Replaces the certificate, key and client CA (a reload: SIGHUP or a changed
   * file). New connections use them; open ones keep the context they started
   * with. Only for a server started with `tls`.
   */
  setTls(tls: TlsMaterial): void {
    if (!(this.server instanceof TlsServer)) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'this server was started without TLS; restart it with --tls-cert to serve HTTPS');
    this.server.setSecureContext(secureContextOptions(tls));
  }

  /** Shows another TLS listener's handshake figures (the RESP port's) in this server's /metrics. */
  reportTlsListener(guard: TlsHandshakeGuard): void {
    this.tlsGuards.push(guard);
  }

  /** Starts listening. Resolves with the bound address (port 0 picks a free port). */
  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /**
   * Graceful shutdown: stop accepting connections, answer new requests on open
   * keep-alive connections with 503, wait (at most `shutdownGraceMs`) for
   * in-flight requests to finish, then close the service (queued writes finish first).
   */
  async close(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    // server.close() resolves once every connection has ended. Idle keep-alive
    // connections end now; busy ones end after their response, which carries
    // "Connection: close" from here on (see send()).
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    this.tlsHandshakes?.abortHandshakes(); // not HTTP connections yet: closeIdleConnections does not see them
    const grace = setTimeout(() => this.server.closeAllConnections(), this.options.shutdownGraceMs ?? 10_000);
    grace.unref();
    await closed;
    clearTimeout(grace);
    await this.service.close();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    if (this.service.getSyncLatin1 !== undefined && this.service.causal === undefined) {
      const key = plainGetKey(req, this.service.limits.keyBytesMax);
      if (key !== undefined && !this.shuttingDown) {
        this.getPlain(key, req, res, started);
        return;
      }
    }
    let route: RouteLabel = 'unmatched';
    try {
      if (this.shuttingDown) {
        res.setHeader('connection', 'close');
        throw new ImpulseError('IMPULSE_ERR_SHUTTING_DOWN');
      }
      const url = req.url ?? '/';
      const queryAt = url.indexOf('?');
      const path = queryAt === -1 ? url : url.slice(0, queryAt);
      const query = queryAt === -1 ? '' : url.slice(queryAt + 1);
      const method = req.method ?? 'GET';

      if (path.startsWith('/kv/')) {
        if (path === '/kv/batch' && method === 'POST') {
          route = '/kv/batch';
          const principal = this.authorize(req, 'write');
          this.track(this.batch(req, res, started, principal), res, route, method, started);
          return;
        }
        route = '/kv/{key}';
        const key = percentDecode(path.slice(4), false, 'IMPULSE_ERR_KEY_ENCODING');
        if (this.service.causal !== undefined && ['GET', 'HEAD', 'PUT', 'DELETE'].includes(method)) {
          this.authorizeKey(req, method === 'GET' || method === 'HEAD' ? 'read' : 'write', key);
          this.track(this.causalKey(key, query, method, req, res, started), res, route, method, started);
          return;
        }
        switch (method) {
          case 'GET':
          case 'HEAD': {
            this.authorizeKey(req, 'read', key);
            const readOptions = { consistency: keyQueryConsistency(query), ...routeOf(req.headers) };
            // An engine that reads without waiting answers here, in the handler the pipeline starts (pipeline.ts
            // point 6): no promise, no microtask. Order is unaffected: the pipeline starts this request
            // only after the answer before it has left.
            const now = this.service.getSync === undefined ? READ_NOT_SYNC : this.service.getSync(key, readOptions); // undefined: absent
            if (now !== READ_NOT_SYNC) {
              this.answerRead(res, now, method, started);
              return;
            }
            this.service.get(key, readOptions).then(
              (stored) => this.answerRead(res, stored, method, started),
              (error: unknown) => this.fail(res, error, route, method, started),
            );
            return;
          }
          case 'PUT':
            this.authorizeKey(req, 'write', key);
            this.track(this.putKey(key, query, req, res, started), res, route, method, started);
            return;
          case 'DELETE':
            this.authorizeKey(req, 'write', key);
            this.track(this.deleteKey(key, query, req, res, started), res, route, method, started);
            return;
          default:
            res.setHeader('allow', path === '/kv/batch' ? `${ALLOW_KEY}, POST` : ALLOW_KEY);
            throw new ImpulseError('IMPULSE_ERR_METHOD_NOT_ALLOWED', `${method} is not allowed on /kv/{key}; use ${ALLOW_KEY}`);
        }
      }
      if (path === '/kv') {
        route = '/kv';
        this.requireMethod(method, 'GET', res);
        const rangeQuery = parseRangeQuery(query, this.pageLimitDefault, this.pageLimitMax);
        const principal = this.authorize(req, 'read');
        if (principal !== undefined) requireRangeAllowed(principal, rangeQuery.options);
        this.track(
          rangePage(this.service, rangeQuery).then((body) => this.send(res, 200, JSON_TYPE, body, route, method, started)),
          res,
          route,
          method,
          started,
        );
        return;
      }
      if (path === '/health') {
        route = '/health';
        this.requireMethod(method, 'GET', res);
        const health = this.service.health();
        this.send(res, health.status === 'ok' ? 200 : 503, JSON_TYPE, JSON.stringify(health), route, method, started);
        return;
      }
      if (path === '/status') {
        route = '/status';
        this.requireMethod(method, 'GET', res);
        if (this.options.auth?.metricsOpen === false) this.authorize(req, 'read');
        this.track(this.status().then((body) => this.send(res, 200, JSON_TYPE, body, route, method, started)), res, route, method, started);
        return;
      }
      if (path === '/metrics') {
        route = '/metrics';
        this.requireMethod(method, 'GET', res);
        if (this.options.auth?.metricsOpen === false) this.authorize(req, 'read');
        this.track(
          this.metrics.render().then((body) => this.send(res, 200, this.metrics.contentType, body, route, method, started)),
          res,
          route,
          method,
          started,
        );
        return;
      }
      if (path === '/digest') {
        route = '/digest';
        this.requireMethod(method, 'GET', res);
        this.authorize(req, 'read', true); // a digest of every key
        this.track(this.service.digest().then((digest) => this.send(res, 200, JSON_TYPE, JSON.stringify(digest), route, method, started)), res, route, method, started);
        return;
      }
      const memberRoute = matchMemberRoute(path);
      if (memberRoute !== undefined) {
        route = '/cluster/nodes/{id}/{view}';
        this.requireMethod(method, 'GET', res);
        // As /status and /cluster themselves: any token may read them; the member checks the same token again.
        if (memberRoute.view !== 'health' && this.options.auth?.metricsOpen !== true) this.authorize(req, 'read');
        this.track(this.memberView(memberRoute, req.headers.authorization).then(({ status, body }) => this.send(res, status, JSON_TYPE, body, route, method, started)), res, route, method, started);
        return;
      }
      const dashboardRoute = matchDashboardRoute(path);
      if (dashboardRoute !== undefined) {
        route = dashboardRoute.label;
        this.requireMethod(method, dashboardMethods(route), res);
        // The page's files hold no data and are open; the chaos results need a token like any other read.
        if (dashboardRoute.label !== '/ui/{asset}') this.authorize(req, 'read');
        this.track(this.serveDashboard(dashboardRoute, req, res, started), res, route, method, started);
        return;
      }
      const clusterRoute = matchClusterRoute(path);
      if (clusterRoute !== undefined) {
        route = clusterRoute.label;
        this.requireMethod(method, clusterRoute.method, res);
        // The view is readable by any token; changing the cluster needs an admin token for the whole key space.
        if (clusterRoute.method === 'GET') this.authorize(req, 'read');
        else this.authorize(req, 'admin', true);
        const body = (): Promise<Buffer> => readBody(req, res, CLUSTER_BODY);
        const work = serveClusterRoute(clusterRoute, this.options.cluster, body, query).then((view) => this.send(res, 200, JSON_TYPE, JSON.stringify(view), route, method, started));
        this.track(work, res, route, method, started);
        return;
      }
      throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', `no route for ${path.slice(0, 128)}`);
    } catch (error) {
      this.fail(res, error, route, req.method ?? 'GET', started);
    }
  }

  /**
   * `GET /kv/{key}` of a plain key (fast-get.ts) on a service that reads
   * synchronously: answered here, in the handler the pipeline starts (with the
   * other requests of its turn, pipeline.ts point 6) — no routing, no promise,
   * the head as one array. Order is
   * unaffected: the pipeline starts this request only after the answer before
   * it has left. A read the engine cannot answer now takes the general path's
   * asynchronous `get`.
   */
  private getPlain(key: string, req: IncomingMessage, res: ServerResponse, started: number): void {
    try {
      const principal = this.authorize(req, 'read');
      if (principal !== undefined) requireKeyAllowed(principal, Buffer.from(key, 'latin1'));
      const stored = this.service.getSyncLatin1!(key);
      if (stored === READ_NOT_SYNC) {
        this.service.get(Buffer.from(key, 'latin1')).then(
          (later) => this.answerRead(res, later, 'GET', started),
          (error: unknown) => this.fail(res, error, '/kv/{key}', 'GET', started),
        );
        return;
      }
      this.finished('/kv/{key}', 'GET', writeGetAnswer(res, stored), started);
    } catch (error) {
      this.fail(res, error, '/kv/{key}', 'GET', started);
    }
  }

  /** The answer to GET or HEAD /kv/{key}: the value with its revision as ETag, or 404. */
  private answerRead(res: ServerResponse, stored: StoredValue | undefined, method: string, started: number): void {
    if (stored === undefined) {
      this.send(res, 404, JSON_TYPE, KEY_NOT_FOUND_BODY, '/kv/{key}', method, started);
      return;
    }
    res.setHeader('etag', etagOf(stored.revision));
    this.send(res, 200, OCTET_TYPE, stored.value, '/kv/{key}', method, started);
  }

  private async putKey(key: Buffer, query: string, req: IncomingMessage, res: ServerResponse, started: number): Promise<void> {
    // Validate the key and the headers before reading a possibly large body.
    if (key.length === 0) throw new ImpulseError('IMPULSE_ERR_KEY_EMPTY');
    if (key.length > this.service.limits.keyBytesMax) {
      throw new ImpulseError('IMPULSE_ERR_KEY_TOO_LARGE', `key is ${key.length} bytes; the limit is ${this.service.limits.keyBytesMax}`);
    }
    refuseQuery(query);
    const condition = conditionOf(req.headers, 'PUT');
    const session = sessionOf(req.headers);
    const value = await readBody(req, res, this.valueBody);
    await this.write({ ops: [{ type: 'put', key, value, ...(condition ? { condition } : {}) }], ...(session ? { session } : {}) }, res, '/kv/{key}', 'PUT', started, routeOf(req.headers));
  }

  private async deleteKey(key: Buffer, query: string, req: IncomingMessage, res: ServerResponse, started: number): Promise<void> {
    refuseQuery(query);
    const condition = conditionOf(req.headers, 'DELETE');
    const session = sessionOf(req.headers);
    await this.write({ ops: [{ type: 'del', key, ...(condition ? { condition } : {}) }], ...(session ? { session } : {}) }, res, '/kv/{key}', 'DELETE', started, routeOf(req.headers));
  }

  /** A key request on a service with causal versions (leaderless): causal-handlers.ts. */
  private async causalKey(key: Buffer, query: string, method: string, req: IncomingMessage, res: ServerResponse, started: number): Promise<void> {
    const causal = this.service.causal!;
    if (method === 'GET' || method === 'HEAD') {
      const r = quorumParameter(query, 'r');
      const read = await causal.getCausal(key, r === undefined ? {} : { r });
      res.setHeader(CONTEXT_HEADER, read.context);
      if (read.values.length === 0) return this.send(res, 404, JSON_TYPE, KEY_NOT_FOUND_BODY, '/kv/{key}', method, started);
      if (read.values.length === 1) return this.send(res, 200, OCTET_TYPE, read.values[0], '/kv/{key}', method, started);
      return this.send(res, 300, JSON_TYPE, siblingsBody(read.values), '/kv/{key}', method, started);
    }
    const w = quorumParameter(query, 'w');
    const context = causalWriteContext(req.headers);
    const value = method === 'PUT' ? await readBody(req, res, this.valueBody) : null;
    const written = await causal.putCausal(key, value, { ...(context !== undefined ? { context } : {}), ...(w !== undefined ? { w } : {}) });
    res.setHeader(CONTEXT_HEADER, written.context);
    this.send(res, 204, undefined, undefined, '/kv/{key}', method, started);
  }

  private async batch(req: IncomingMessage, res: ServerResponse, started: number, principal: Principal | undefined): Promise<void> {
    const session = sessionOf(req.headers);
    const body = await readBody(req, res, this.batchBody);
    const ops = parseBatch(body, this.service.limits.batchOpsMax);
    if (principal !== undefined) for (const op of ops) requireKeyAllowed(principal, op.key);
    await this.write({ ops, ...(session ? { session } : {}) }, res, '/kv/batch', 'POST', started, routeOf(req.headers));
  }

  /** Applies `command` through the service and answers 204 with the revision as ETag. */
  private async write(command: KvCommand, res: ServerResponse, route: RouteLabel, method: string, started: number, options: RouteOptions): Promise<void> {
    const { revision } = await this.service.write(command, options);
    res.setHeader('etag', etagOf(revision));
    this.send(res, 204, undefined, undefined, route, method, started);
  }

  private async serveDashboard(route: DashboardRoute, req: IncomingMessage, res: ServerResponse, started: number): Promise<void> {
    const answer = await this.dashboard.serve(route, req.headers);
    for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value);
    this.send(res, answer.status, answer.type, answer.body, route.label, req.method ?? 'GET', started);
  }

  /** Member `route.id`'s view: this node's own when it is this node, else relayed from the member's client URL. */
  private async memberView(route: MemberRoute, authorization: string | undefined): Promise<RelayedAnswer> {
    const cluster = this.options.cluster;
    if (cluster === undefined) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', 'this node is not a cluster member (it was started without --node-id)');
    const view = cluster.view();
    if (route.id === view.nodeId) return this.ownView(route.view, cluster);
    const member = view.members.find((candidate) => candidate.id === route.id);
    if (member === undefined) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', `node ${route.id} is not a member of this cluster`);
    if (member.clientUrl === null) throw new ImpulseError('IMPULSE_ERR_MEMBER_UNREACHABLE', `node ${route.id} has not published its client URL yet`, { details: { id: route.id } });
    return this.memberProxy.relay(route.id, member.clientUrl, route.view, authorization);
  }

  private async ownView(view: MemberView, cluster: ClusterRoutesTarget): Promise<RelayedAnswer> {
    switch (view) {
      case 'status':
        return { status: 200, body: Buffer.from(await this.status()) };
      case 'health': {
        const health = this.service.health();
        return { status: health.status === 'ok' ? 200 : 503, body: Buffer.from(JSON.stringify(health)) };
      }
      default:
        return { status: 200, body: Buffer.from(JSON.stringify(cluster.view())) };
    }
  }

  private async status(): Promise<string> {
    const status = await this.service.status();
    const uptimeMs = performance.now() - this.startedAt;
    return JSON.stringify({
      version: this.options.version,
      ...status,
      // The limits a client of this API meets: a range page is bounded by the API (`limit`), below the service's own bound.
      limits: { ...status.limits, rangeLimitMax: this.pageLimitMax },
      health: this.service.health(),
      // Cumulative, and sampled now: a reader differences two samples for rates and quantiles.
      requests: { ...this.metrics.requests.kvSummary(), sampledAtUptimeMs: Math.round(uptimeMs * 1000) / 1000 },
      uptimeSeconds: Math.round(uptimeMs / 100) / 10,
      node: process.version,
      pid: process.pid,
      ...this.options.statusExtra,
    });
  }

  /** The request's principal when tokens are configured (401/403 unless it has `role`); undefined when they are not. */
  private authorize(req: IncomingMessage, role: Role, wholeKeySpace = false): Principal | undefined {
    return this.options.auth?.require(req.headers, role, wholeKeySpace, req.socket);
  }

  private authorizeKey(req: IncomingMessage, role: Role, key: Uint8Array): void {
    const principal = this.authorize(req, role);
    if (principal !== undefined) requireKeyAllowed(principal, key);
  }

  private requireMethod(method: string, allowed: string | readonly string[], res: ServerResponse): void {
    const methods = typeof allowed === 'string' ? [allowed] : allowed;
    if (!methods.includes(method)) {
      res.setHeader('allow', methods.join(', '));
      throw new ImpulseError('IMPULSE_ERR_METHOD_NOT_ALLOWED', `${method} is not allowed here; use ${methods.join(' or ')}`);
    }
  }

  /** Routes a handler's rejection to an error response. */
  private track(work: Promise<void>, res: ServerResponse, route: RouteLabel, method: string, started: number): void {
    work.catch((error: unknown) => this.fail(res, error, route, method, started));
  }

  private send(res: ServerResponse, status: number, type: string | undefined, body: string | Buffer | undefined, route: RouteLabel, method: string, started: number): void {
    if (res.headersSent) return;
    settleUnreadBody(res, this.bodyDrainBytesMax);
    if (this.shuttingDown) res.setHeader('connection', 'close');
    if (type !== undefined) res.setHeader('content-type', type);
    res.statusCode = status;
    if (method === 'HEAD' && body !== undefined) {
      // A HEAD answer carries the Content-Length of the GET answer; node:http would drop the body and say 0.
      res.setHeader('content-length', Buffer.byteLength(body));
      res.end();
    } else {
      res.end(body); // node:http sets Content-Length from the one chunk given to end()
    }
    this.finished(route, method, status, started);
  }

  private fail(res: ServerResponse, error: unknown, route: RouteLabel, method: string, started: number): void {
    let failure: ImpulseError;
    if (isImpulseError(error)) {
      failure = error;
      if (httpStatusOf(failure.code) >= 500) this.logger.warn({ err: error, route, method, code: failure.code }, 'request failed');
    } else {
      // A bug or an unexpected library error: log everything, tell the client little.
      this.logger.error({ err: error, route, method }, 'unexpected error while serving a request');
      failure = new ImpulseError('IMPULSE_ERR_INTERNAL', 'internal error; the operation did not take effect', { cause: error });
    }
    const status = httpStatusOf(failure.code);
    if (res.headersSent) {
      res.destroy();
      this.finished(route, method, status, started);
      return;
    }
    if (failure.code === 'IMPULSE_ERR_AUTH_REQUIRED') res.setHeader('www-authenticate', 'Bearer realm="impulse"');
    const leader = failure.details['leader'];
    if (typeof leader === 'number') res.setHeader('impulse-leader', String(leader));
    const retryAfter = failure.details['retryAfterSeconds'];
    if (typeof retryAfter === 'number') res.setHeader('retry-after', String(retryAfter));
    this.send(res, status, JSON_TYPE, errorJson(failure), route, method, started);
  }

  private finished(route: RouteLabel, method: string, status: number, started: number): void {
    this.metrics.observe(route, method, status, (performance.now() - started) / 1000);
  }
}

/** A write to one key takes no query parameters: refuse any, a typo must not be ignored. */
function refuseQuery(query: string): void {
  if (query.length > 0) throw new ImpulseError('IMPULSE_ERR_QUERY_INVALID', 'a write to a key takes no query parameters');
}
