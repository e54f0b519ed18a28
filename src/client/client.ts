/**
 * The TypeScript client for impulse's HTTP API, used by the CLI, the tests and
 * the benchmarks. Keep-alive connections (a bounded pool), a per-request
 * timeout, and every failure as an `ImpulseError`:
 *   - the server's own error (its code and message, e.g. IMPULSE_ERR_KEY_TOO_LARGE),
 *   - IMPULSE_ERR_CLIENT_UNREACHABLE when nothing listens at the endpoint,
 *   - IMPULSE_ERR_CLIENT_TIMEOUT when the server does not answer in time,
 *   - IMPULSE_ERR_CLIENT_PROTOCOL when the answer makes no sense.
 * Keys and values are bytes; strings are taken as UTF-8.
 *
 * Revisions and conditions: every write resolves with the revision it got;
 * `getWithRevision` and `scan` return revisions; `put`/`del`/`batch` take
 * conditions (`ifRevision`, `ifAbsent`) and a failed one rejects with
 * IMPULSE_ERR_PRECONDITION_FAILED (details: `op`, `key`, current `revision`).
 *
 * Sessions: the client picks a random client id and numbers its writes
 * 1, 2, 3, ...; every write carries `Impulse-Client-Id`, `Impulse-Client-Seq`
 * and `Impulse-Client-Acked-Below` (every seq below it has been answered, so
 * the server may forget those results). A write that fails with no answer
 * (connection lost, timeout), IMPULSE_ERR_OVERLOADED, or under a cluster
 * IMPULSE_ERR_UNAVAILABLE or IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN is retried up to
 * `writeRetriesMax` times with the SAME id and seq, so the server applies it
 * at most once (docs/api.md, "Retries and deduplication").
 *
 * Shard routing (`shardRouting: true`, for a sharded cluster): the client
 * caches the shard map and the members' client URLs (shard-router.ts) and
 * sends each key request straight to its shard's leader, naming the shard
 * and epoch (`Impulse-Shard`). A member whose map is newer answers
 * IMPULSE_ERR_SHARD_STALE (nothing happened): the client refreshes its map
 * and retries, at most `routeRetriesMax` times a request; a member that
 * cannot be reached is skipped for the shard's next replica (reads at once,
 * writes on their session retry, same seq: sessions are per shard, so any
 * member's route to that shard deduplicates). Ranges go to the endpoint.
 */
import { randomBytes } from 'node:crypto';
import { Agent, type OutgoingHttpHeaders, request } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { ERROR_CATALOG, type ErrorCode, type ErrorDetails, ImpulseError } from '../errors.js';
import type { AddMemberRequest, ClusterView, RemoveOptions, RepairReport } from '../protocol/cluster-view.js';
import type { ShardsView } from '../protocol/shard-view.js';
import { percentEncode } from '../protocol/codec.js';
import { SHARD_ROUTE_HEADER, formatShardRoute } from '../protocol/shard-route.js';
import { ShardRouter } from './shard-router.js';

/** `GET /digest`: src/kv/digest.ts `ContentDigest` (with `shards` on a sharded member). */
export interface NodeDigest {
  readonly appliedIndex: number;
  readonly appliedTerm: number;
  readonly digest: string;
  readonly bytes: number;
  readonly shards?: ReadonlyArray<{ readonly id: number; readonly appliedIndex: number; readonly digest: string }>;
}

export type Bytes = Uint8Array | string;

export interface ClientOptions {
  /** Base URL, e.g. http://127.0.0.1:7070. */
  readonly endpoint: string;
  /** Per-request timeout, ms. Default 10,000. */
  readonly timeoutMs?: number;
  /** Most concurrent connections. Default 64. */
  readonly connectionsMax?: number;
  /** The session's client id (1-64 of [A-Za-z0-9_-]). Default: 16 random bytes, base64url. */
  readonly clientId?: string;
  /** Retries of a write that got no answer or IMPULSE_ERR_OVERLOADED (same id and seq). Default 2. */
  readonly writeRetriesMax?: number;
  /** Bearer token sent with every request (`Authorization: Bearer …`); needed when the server has a token file. */
  readonly token?: string;
  /** For https:// endpoints: the CA certificate(s) (PEM) the server's certificate must chain to. Default: the system's CAs. */
  readonly ca?: string | Buffer;
  /** For https:// endpoints whose server asks for a client certificate: ours and its key (PEM). */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** Route key requests by a cached shard map straight to the shard's leader (a sharded cluster). Default false: everything goes to `endpoint`. */
  readonly shardRouting?: boolean;
  /** Retries of a key request whose route was stale or whose member was unreachable, with shard routing. Default 3. */
  readonly routeRetriesMax?: number;
}

/** How a read may be served: `linearizable` (default) or `serializable` (may be stale under replication). */
export type ReadConsistency = 'linearizable' | 'serializable';

export interface ReadOptions {
  readonly consistency?: ReadConsistency;
}

/** A write's condition: the key has exactly this revision, or (puts only) the key is absent. */
export interface WriteConditions {
  readonly ifRevision?: number;
  readonly ifAbsent?: boolean;
}

export interface Revisioned {
  readonly value: Buffer;
  readonly revision: number;
}

export interface WriteResult {
  /** The revision the write got (a delete's own revision for `del`). */
  readonly revision: number;
}

export interface ScanOptions {
  readonly start?: Bytes;
  readonly end?: Bytes;
  readonly prefix?: Bytes;
  readonly limit?: number;
  readonly reverse?: boolean;
  readonly cursor?: string;
  readonly consistency?: ReadConsistency;
}

export interface ScanItem {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly revision: number;
}

export interface ScanPage {
  readonly items: ScanItem[];
  readonly next: string | null;
}

export type BatchOp = ({ op: 'put'; key: Bytes; value: Bytes } | { op: 'delete'; key: Bytes }) & WriteConditions;

interface Response {
  readonly status: number;
  readonly body: Buffer;
  readonly contentType: string | undefined;
  readonly etag: string | undefined;
  /** The Impulse-Context header (leaderless mode). */
  readonly context: string | undefined;
}

/** A read in leaderless mode: every sibling value (none when the key is absent or deleted) and the causal context to write back. */
export interface Versions {
  readonly values: Buffer[];
  readonly context: string;
}

/** Options of a leaderless write: the context of the read it supersedes (absent: a blind write), and W. */
export interface VersionedWriteOptions {
  readonly context?: string;
  /** A number, `one`, `quorum` or `all`; default the cluster's. */
  readonly w?: string | number;
}

/**
 * Errors after which a write is retried with the same session seq: no answer
 * arrived, the server asked to retry, or (a cluster member) no leader was
 * found in time or the outcome is unknown — the session makes the retry apply
 * the write at most once.
 */
const RETRIED: ReadonlySet<ErrorCode> = new Set([
  'IMPULSE_ERR_CLIENT_UNREACHABLE',
  'IMPULSE_ERR_CLIENT_TIMEOUT',
  'IMPULSE_ERR_OVERLOADED',
  'IMPULSE_ERR_UNAVAILABLE',
  'IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN',
]);

/** Answers after which the member a shard's requests went to may not reach its leader: the next one goes to another replica. */
const LEADER_IN_DOUBT: ReadonlySet<ErrorCode> = new Set(['IMPULSE_ERR_UNAVAILABLE', 'IMPULSE_ERR_RAFT_NOT_LEADER', 'IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN']);

export class ImpulseClient {
  readonly endpoint: URL;
  readonly clientId: string;
  private readonly agent: Agent | HttpsAgent;
  private readonly secure: boolean;
  /** The Authorization header, when a token was given. */
  private readonly authorization: OutgoingHttpHeaders;
  private readonly timeoutMs: number;
  private readonly writeRetriesMax: number;
  private readonly routeRetriesMax: number;
  /** The cached shard map, with `shardRouting`. */
  readonly router: ShardRouter | undefined;
  /** The last seq handed out, and the ones not answered yet (for Impulse-Client-Acked-Below). */
  private lastSeq = 0;
  private readonly unanswered = new Set<number>();
  private lowestUnanswered = 1;

  constructor(options: ClientOptions) {
    try {
      this.endpoint = new URL(options.endpoint);
    } catch {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `endpoint ${JSON.stringify(options.endpoint)} is not a URL (example: http://127.0.0.1:7070)`);
    }
    if (this.endpoint.protocol !== 'http:' && this.endpoint.protocol !== 'https:') {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `endpoint must be http:// or https://, got ${this.endpoint.protocol}`);
    }
    this.secure = this.endpoint.protocol === 'https:';
    if (!this.secure && (options.ca !== undefined || options.cert !== undefined)) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `a CA or client certificate was given for ${this.endpoint.origin}; use an https:// endpoint`);
    }
    if (options.token !== undefined && !/^[!-~]{1,4096}$/.test(options.token)) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'a token is 1 to 4096 visible ASCII characters');
    }
    this.authorization = options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {};
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.writeRetriesMax = options.writeRetriesMax ?? 2;
    this.routeRetriesMax = options.routeRetriesMax ?? 3;
    this.clientId = options.clientId ?? randomBytes(16).toString('base64url');
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(this.clientId)) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'a client id is 1 to 64 characters of A-Z a-z 0-9 _ -');
    const pool = { keepAlive: true, maxSockets: options.connectionsMax ?? 64, maxFreeSockets: options.connectionsMax ?? 64 };
    this.agent = this.secure
      ? new HttpsAgent({ ...pool, ...(options.ca !== undefined ? { ca: options.ca } : {}), ...(options.cert !== undefined ? { cert: options.cert } : {}), ...(options.key !== undefined ? { key: options.key } : {}) })
      : new Agent(pool);
    this.router = options.shardRouting === true ? new ShardRouter(this.endpoint, { clusterAt: (origin) => this.clusterAt(origin), shardsAt: (origin) => this.shardsAt(origin) }) : undefined;
  }

  /** The value under `key`, or `undefined` when absent. */
  async get(key: Bytes, options: ReadOptions = {}): Promise<Buffer | undefined> {
    return (await this.getWithRevision(key, options))?.value;
  }

  /** The value under `key` and its revision (from the ETag), or `undefined` when absent. */
  async getWithRevision(key: Bytes, options: ReadOptions = {}): Promise<Revisioned | undefined> {
    const response = await this.routedCall(toBytes(key), 'GET', keyPath(key) + consistencyQuery(options, '?'), undefined, {}, { retryUnreachable: true, firstAttempt: 0 });
    if (response.status === 404 && errorCode(response) === 'IMPULSE_ERR_KEY_NOT_FOUND') return undefined;
    this.expect(response, 200);
    return { value: response.body, revision: this.revisionOf(response) };
  }

  /** Stores `value` under `key`; with `ifRevision` only if the key has that revision, with `ifAbsent` only if it does not exist. */
  async put(key: Bytes, value: Bytes, conditions: WriteConditions = {}): Promise<WriteResult> {
    return this.write('PUT', keyPath(key), toBytes(value), conditionHeaders(conditions, true), toBytes(key));
  }

  /** Deletes `key` (succeeds when absent, unless `ifRevision` is given). */
  async del(key: Bytes, conditions: Omit<WriteConditions, 'ifAbsent'> = {}): Promise<WriteResult> {
    return this.write('DELETE', keyPath(key), undefined, conditionHeaders(conditions, false), toBytes(key));
  }

  /** Atomic batch, all ops or none (each op may carry conditions); keys and values travel base64-encoded. */
  async batch(ops: readonly BatchOp[]): Promise<WriteResult> {
    const document = {
      encoding: 'base64',
      ops: ops.map((op) => ({
        op: op.op,
        key: Buffer.from(toBytes(op.key)).toString('base64'),
        ...(op.op === 'put' ? { value: Buffer.from(toBytes(op.value)).toString('base64') } : {}),
        ...(op.ifRevision !== undefined ? { ifRevision: op.ifRevision } : {}),
        ...(op.ifAbsent ? { ifAbsent: true } : {}),
      })),
    };
    // Routed by its first key: a batch within one shard goes to that shard's leader; one across shards is refused wherever it goes.
    return this.write('POST', '/kv/batch', Buffer.from(JSON.stringify(document)), {}, ops[0] === undefined ? undefined : toBytes(ops[0].key));
  }

  /** One page of a range query; pass `next` back as `cursor` for the following page. */
  async scan(options: ScanOptions = {}): Promise<ScanPage> {
    const params: string[] = ['encoding=base64'];
    for (const name of ['start', 'end', 'prefix'] as const) {
      const bound = options[name];
      if (bound !== undefined) params.push(`${name}=${percentEncode(toBytes(bound))}`);
    }
    if (options.limit !== undefined) params.push(`limit=${options.limit}`);
    if (options.reverse) params.push('reverse=true');
    if (options.cursor !== undefined) params.push(`cursor=${encodeURIComponent(options.cursor)}`);
    const response = await this.call('GET', `/kv?${params.join('&')}${consistencyQuery(options, '&')}`);
    this.expect(response, 200);
    const page = this.json(response) as { items?: Array<{ key: string; value: string; revision: number }>; next?: string | null };
    if (!Array.isArray(page.items)) throw new ImpulseError('IMPULSE_ERR_CLIENT_PROTOCOL', 'range response has no items array');
    return {
      items: page.items.map((item) => ({ key: Buffer.from(item.key, 'base64'), value: Buffer.from(item.value, 'base64'), revision: item.revision })),
      next: page.next ?? null,
    };
  }

  /** Every entry of a range, page after page, at most `entriesMax` (default 1,000,000). */
  async *scanAll(options: Omit<ScanOptions, 'cursor'> = {}, entriesMax = 1_000_000): AsyncGenerator<ScanItem> {
    let cursor: string | undefined;
    let seen = 0;
    do {
      const page = await this.scan({ ...options, ...(cursor !== undefined ? { cursor } : {}) });
      for (const item of page.items) {
        if (seen++ >= entriesMax) return;
        yield item;
      }
      cursor = page.next ?? undefined;
    } while (cursor !== undefined);
  }

  /**
   * Leaderless mode: every sibling of `key` and its causal context (`GET`
   * answering 200, 300 with siblings, or 404), reading from `r` replicas.
   */
  async getVersions(key: Bytes, options: { readonly r?: string | number } = {}): Promise<Versions> {
    const response = await this.call('GET', keyPath(key) + (options.r !== undefined ? `?r=${encodeURIComponent(String(options.r))}` : ''));
    const context = response.context;
    if (response.status === 404 && errorCode(response) === 'IMPULSE_ERR_KEY_NOT_FOUND' && context !== undefined) return { values: [], context };
    if (response.status === 200 && context !== undefined) return { values: [response.body], context };
    this.expect(response, 300);
    const body = this.json(response) as { siblings?: { value?: unknown; encoding?: unknown }[] };
    if (!Array.isArray(body.siblings) || context === undefined) throw new ImpulseError('IMPULSE_ERR_CLIENT_PROTOCOL', `${this.endpoint.origin} answered 300 without siblings or a context`);
    const values = body.siblings.map((sibling) => {
      if (typeof sibling.value !== 'string') throw new ImpulseError('IMPULSE_ERR_CLIENT_PROTOCOL', 'a sibling without a value');
      return Buffer.from(sibling.value, sibling.encoding === 'base64' ? 'base64' : 'utf8');
    });
    return { values, context };
  }

  /** Leaderless mode: writes `value` superseding what `context` saw; resolves with the new context. */
  putVersion(key: Bytes, value: Bytes, options: VersionedWriteOptions = {}): Promise<{ context: string }> {
    return this.versionedWrite('PUT', key, toBytes(value), options);
  }

  /** Leaderless mode: deletes `key` (a tombstone) superseding what `context` saw. */
  deleteVersion(key: Bytes, options: VersionedWriteOptions = {}): Promise<{ context: string }> {
    return this.versionedWrite('DELETE', key, undefined, options);
  }

  /** Leaderless mode: an anti-entropy pass of the node at the endpoint with every other member (`POST /cluster/repair`). */
  async repair(): Promise<RepairReport> {
    const response = await this.call('POST', '/cluster/repair', Buffer.alloc(0));
    this.expect(response, 200);
    return this.json(response) as RepairReport;
  }

  private async versionedWrite(method: string, key: Bytes, body: Uint8Array | undefined, options: VersionedWriteOptions): Promise<{ context: string }> {
    const query = options.w !== undefined ? `?w=${encodeURIComponent(String(options.w))}` : '';
    const response = await this.call(method, keyPath(key) + query, body, options.context !== undefined ? { 'impulse-context': options.context } : {});
    this.expect(response, 204);
    if (response.context === undefined) throw new ImpulseError('IMPULSE_ERR_CLIENT_PROTOCOL', `${this.endpoint.origin} answered without an Impulse-Context (is it a leaderless member?)`);
    return { context: response.context };
  }

  async status(): Promise<Record<string, unknown>> {
    const response = await this.call('GET', '/status');
    this.expect(response, 200);
    return this.json(response) as Record<string, unknown>;
  }

  /** The cluster as the node at the endpoint sees it (`GET /cluster`). */
  cluster(): Promise<ClusterView> {
    return this.clusterAt(this.endpoint);
  }

  private async clusterAt(origin: URL): Promise<ClusterView> {
    const response = await this.call('GET', '/cluster', undefined, {}, origin);
    this.expect(response, 200);
    const view = this.json(response) as ClusterView;
    if (typeof view.clusterId !== 'string' || !Array.isArray(view.members)) throw new ImpulseError('IMPULSE_ERR_CLIENT_PROTOCOL', '/cluster answer is not a cluster view');
    return view;
  }

  /** Adds a learner (`POST /cluster/members`); resolves with the cluster view once the change applied. */
  addMember(request: AddMemberRequest): Promise<ClusterView> {
    return this.clusterCall('POST', '/cluster/members', request);
  }

  /** Promotes learner `id` to voter (`POST /cluster/members/{id}/promote`). */
  promoteMember(id: number): Promise<ClusterView> {
    return this.clusterCall('POST', `/cluster/members/${id}/promote`);
  }

  /** Removes member `id` (`DELETE /cluster/members/{id}`; `force`: `?force=true`, a leaderless member that is down for good). */
  removeMember(id: number, options: RemoveOptions = {}): Promise<ClusterView> {
    return this.clusterCall('DELETE', `/cluster/members/${id}${options.force === true ? '?force=true' : ''}`);
  }

  /** Hands leadership to voter `id` (`POST /cluster/leader`); resolves once it leads. */
  transferLeader(id: number): Promise<ClusterView> {
    return this.clusterCall('POST', '/cluster/leader', { id });
  }

  /** The shard map as the node at the endpoint sees it (`GET /shards`). */
  shards(): Promise<ShardsView> {
    return this.shardsAt(this.endpoint);
  }

  /**
   * Splits the shard holding `key` at `key` (`POST /shards/split`); resolves
   * with the endpoint's view once its map has the split (the new shard serves
   * as soon as its parent applied the split: moments later).
   */
  async splitShard(key: Uint8Array): Promise<ShardsView> {
    const response = await this.call('POST', '/shards/split', Buffer.from(JSON.stringify({ keyHex: Buffer.from(key).toString('hex') })));
    this.expect(response, 200);
    return this.json(response) as ShardsView;
  }

  /**
   * Merges shard `leftId`'s right neighbour into it (`POST /shards/merge`;
   * both on the same members, neither moving or merging); resolves with the
   * view once the map has the merge in flight. The merge then finishes on
   * its own: `shards()` shows `mergeInto` on the right shard until it is gone.
   */
  async mergeShards(leftId: number): Promise<ShardsView> {
    const response = await this.call('POST', '/shards/merge', Buffer.from(JSON.stringify({ shard: leftId })));
    this.expect(response, 200);
    return this.json(response) as ShardsView;
  }

  /**
   * Rolls back the merge into shard `leftId` (`POST /shards/merge/cancel`):
   * resolves with the view once the map marks it (`mergeAbort`). The right
   * shard then serves its range again — unless the left shard had taken it in
   * already, in which case the merge finishes.
   */
  async cancelMerge(leftId: number): Promise<ShardsView> {
    const response = await this.call('POST', '/shards/merge/cancel', Buffer.from(JSON.stringify({ shard: leftId })));
    this.expect(response, 200);
    return this.json(response) as ShardsView;
  }

  private async shardsAt(origin: URL): Promise<ShardsView> {
    const response = await this.call('GET', '/shards', undefined, {}, origin);
    this.expect(response, 200);
    const view = this.json(response) as ShardsView;
    if (typeof view.clusterId !== 'string' || !Array.isArray(view.shards)) throw new ImpulseError('IMPULSE_ERR_CLIENT_PROTOCOL', '/shards answer is not a shards view');
    return view;
  }

  /**
   * The digest of the node's whole state at its applied index (`GET /digest`;
   * a full scan); a sharded member's also lists each shard it hosts.
   */
  async digest(): Promise<NodeDigest> {
    const response = await this.call('GET', '/digest');
    this.expect(response, 200);
    return this.json(response) as NodeDigest;
  }

  private async clusterCall(method: string, path: string, body?: unknown): Promise<ClusterView> {
    const response = await this.call(method, path, body === undefined ? undefined : Buffer.from(JSON.stringify(body)));
    this.expect(response, 200);
    return this.json(response) as ClusterView;
  }

  async health(): Promise<boolean> {
    const response = await this.call('GET', '/health');
    return response.status === 200;
  }

  /** `/health` as the node reports it: `ok` when it serves (HTTP 200), and its JSON body (`status`, a `reason` when not ok). */
  async healthReport(): Promise<{ ok: boolean; report: Record<string, unknown> }> {
    const response = await this.call('GET', '/health');
    if (response.status !== 200 && response.status !== 503) this.expect(response, 200);
    return { ok: response.status === 200, report: this.json(response) as Record<string, unknown> };
  }

  /** Closes idle keep-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  /**
   * One write with the session headers: a new seq, reused by every retry of
   * it; answered seqs move Impulse-Client-Acked-Below on.
   */
  private async write(method: string, path: string, body: Uint8Array | undefined, headers: OutgoingHttpHeaders, routeKey?: Uint8Array): Promise<WriteResult> {
    const seq = ++this.lastSeq;
    this.unanswered.add(seq);
    try {
      for (let attempt = 0; ; attempt++) {
        const session = { 'impulse-client-id': this.clientId, 'impulse-client-seq': String(seq), 'impulse-client-acked-below': String(this.lowestUnanswered) };
        try {
          const options = { retryUnreachable: false, firstAttempt: attempt };
          const response = routeKey === undefined ? await this.call(method, path, body, { ...headers, ...session }) : await this.routedCall(routeKey, method, path, body, { ...headers, ...session }, options);
          this.expect(response, 204);
          return { revision: this.revisionOf(response) };
        } catch (error) {
          if (attempt >= this.writeRetriesMax || !(error instanceof ImpulseError) || !RETRIED.has(error.code)) throw error;
          await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
        }
      }
    } finally {
      this.unanswered.delete(seq);
      while (this.lowestUnanswered <= this.lastSeq && !this.unanswered.has(this.lowestUnanswered)) this.lowestUnanswered++;
    }
  }

  /**
   * A key request, by the shard map when routing (else to the endpoint): a
   * stale route refreshes the map and goes again; an unreachable member (or
   * one answering LEADER_IN_DOUBT) makes the shard's leader unknown (an
   * unreachable one is also tried last for a while) and, with
   * `retryUnreachable` (reads, unreachable only), goes to the next replica at
   * once. At most `routeRetriesMax` retries; the last
   * answer or error is the caller's.
   */
  private async routedCall(key: Uint8Array, method: string, path: string, body: Uint8Array | undefined, headers: OutgoingHttpHeaders, options: { retryUnreachable: boolean; firstAttempt: number }): Promise<Response> {
    const router = this.router;
    for (let retry = 0; ; retry++) {
      const target = router === undefined ? undefined : await router.target(key, options.firstAttempt + retry);
      if (target === undefined) return this.call(method, path, body, headers);
      const last = retry >= this.routeRetriesMax;
      let response: Response;
      try {
        response = await this.call(method, path, body, { ...headers, [SHARD_ROUTE_HEADER]: formatShardRoute(target.route) }, target.origin);
      } catch (error) {
        if (!(error instanceof ImpulseError) || error.code !== 'IMPULSE_ERR_CLIENT_UNREACHABLE') throw error;
        router!.memberUnreachable(target);
        if (last || !options.retryUnreachable) throw error;
        continue;
      }
      const code = errorCode(response);
      if (code !== undefined && LEADER_IN_DOUBT.has(code)) router!.forgetLeader(target.route.shard);
      if (last || code !== 'IMPULSE_ERR_SHARD_STALE') return response;
      await router!.refresh(target.origin);
    }
  }

  private revisionOf(response: Response): number {
    const match = /^"([0-9]{1,16})"$/.exec(response.etag ?? '');
    if (match === null) throw new ImpulseError('IMPULSE_ERR_CLIENT_PROTOCOL', `${this.endpoint.origin} answered without a revision ETag`);
    return Number(match[1]);
  }

  private expect(response: Response, status: number): void {
    if (response.status === status) return;
    const code = errorCode(response);
    if (code !== undefined) {
      const { message, code: _code, ...details } = (this.json(response) as { error: { message: string; code: string } & ErrorDetails }).error;
      throw new ImpulseError(code, message, { details });
    }
    throw new ImpulseError('IMPULSE_ERR_CLIENT_PROTOCOL', `unexpected HTTP ${response.status} from ${this.endpoint.origin}`);
  }

  private json(response: Response): unknown {
    try {
      return JSON.parse(response.body.toString('utf8'));
    } catch {
      throw new ImpulseError('IMPULSE_ERR_CLIENT_PROTOCOL', `HTTP ${response.status} from ${this.endpoint.origin} is not JSON`);
    }
  }

  /**
   * One request. A GET (or HEAD) sent on a reused keep-alive connection that
   * the server closed meanwhile (reset or ended before any answer: its idle
   * timeout, a restart, a healed partition) is sent once more on a new
   * connection, as browsers and undici do for idempotent requests; anything
   * else is the caller's to retry.
   */
  private call(method: string, path: string, body?: Uint8Array, headers: OutgoingHttpHeaders = {}, origin: URL = this.endpoint, staleRetry = true): Promise<Response> {
    return new Promise((resolve, reject) => {
      let answered = false;
      const all = { ...headers, ...this.authorization };
      const req = (this.secure ? httpsRequest : request)(
        {
          agent: this.agent,
          // URL keeps IPv6 hosts in brackets; the socket wants them bare.
          hostname: origin.hostname.replace(/^\[(.*)\]$/, '$1'),
          port: origin.port || (this.secure ? 443 : 80),
          method,
          path,
          headers: body !== undefined ? { ...all, 'content-length': body.byteLength, 'content-type': 'application/octet-stream' } : all,
          timeout: this.timeoutMs,
        },
        (res) => {
          answered = true;
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks),
              contentType: res.headers['content-type'],
              etag: res.headers.etag,
              context: typeof res.headers['impulse-context'] === 'string' ? res.headers['impulse-context'] : undefined,
            }),
          );
          res.on('error', (error) => reject(this.transportError(error, origin)));
        },
      );
      req.on('timeout', () => req.destroy(new ImpulseError('IMPULSE_ERR_CLIENT_TIMEOUT', `${origin.origin} did not answer ${method} within ${this.timeoutMs} ms`)));
      req.on('error', (error) => {
        const stale = staleRetry && !answered && req.reusedSocket && (method === 'GET' || method === 'HEAD') && (error as { code?: string }).code === 'ECONNRESET';
        if (stale) resolve(this.call(method, path, body, headers, origin, false));
        else reject(this.transportError(error, origin));
      });
      req.end(body);
    });
  }

  private transportError(error: Error, origin: URL): ImpulseError {
    if (error instanceof ImpulseError) return error;
    const code = (error as { code?: string }).code;
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'EADDRNOTAVAIL') {
      return new ImpulseError('IMPULSE_ERR_CLIENT_UNREACHABLE', `cannot connect to ${origin.origin} (${code}); is the server running?`, { cause: error });
    }
    return new ImpulseError('IMPULSE_ERR_CLIENT_UNREACHABLE', `connection to ${origin.origin} failed: ${error.message}`, { cause: error });
  }
}

function toBytes(value: Bytes): Uint8Array {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
}

/** If-Match / If-None-Match for a single-key write. */
function conditionHeaders(conditions: WriteConditions, allowAbsent: boolean): OutgoingHttpHeaders {
  if (conditions.ifRevision !== undefined && conditions.ifAbsent) throw new ImpulseError('IMPULSE_ERR_CONDITION_INVALID', 'give ifRevision or ifAbsent, not both');
  if (conditions.ifAbsent && !allowAbsent) throw new ImpulseError('IMPULSE_ERR_CONDITION_INVALID', 'ifAbsent applies to puts only');
  if (conditions.ifRevision !== undefined) {
    if (!Number.isSafeInteger(conditions.ifRevision) || conditions.ifRevision < 1) throw new ImpulseError('IMPULSE_ERR_CONDITION_INVALID', 'ifRevision must be a positive integer');
    return { 'if-match': `"${conditions.ifRevision}"` };
  }
  return conditions.ifAbsent ? { 'if-none-match': '*' } : {};
}

function consistencyQuery(options: ReadOptions, separator: '?' | '&'): string {
  return options.consistency === undefined ? '' : `${separator}consistency=${encodeURIComponent(options.consistency)}`;
}

function keyPath(key: Bytes): string {
  return `/kv/${percentEncode(toBytes(key))}`;
}

function errorCode(response: Response): ErrorCode | undefined {
  if (!response.contentType?.startsWith('application/json')) return undefined;
  try {
    const code = (JSON.parse(response.body.toString('utf8')) as { error?: { code?: string } }).error?.code;
    return code !== undefined && Object.hasOwn(ERROR_CATALOG, code) ? (code as ErrorCode) : undefined;
  } catch {
    return undefined;
  }
}
