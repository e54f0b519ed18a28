/**
 * The client's cached copy of a sharded cluster's routing: the shard map, the
 * leader of each shard as the members report it, and every member's client
 * URL (TiKV's region cache, CockroachDB's range descriptor cache). With it a
 * key request goes straight to its shard's leader, naming the shard and epoch
 * it was routed by (`Impulse-Shard`), instead of through whichever member the
 * client was given, which would forward it.
 *
 *   - filled on first use, refreshed when a member answers a route is stale
 *     (IMPULSE_ERR_SHARD_STALE), and in the background on the first use after
 *     `tableAgeMaxMs` (leaders change without making a route stale); a leader
 *     that could not be reached or did not lead is forgotten at once (the
 *     caller's `forgetLeader`). Refreshes are coalesced (one at a time) and each costs one `GET /cluster`
 *     plus one `GET /shards` per member (each member knows the leaders of the
 *     shards it replicates); the newest map among the answers wins;
 *   - a member the client could not reach (`memberUnreachable`) goes to the
 *     back of every candidate list for `unreachableForMs`, even when the
 *     members still name it leader (they do until their election timeout);
 *     after that it is tried again in its place;
 *   - a target is the shard's leader when known, else its replicas in turn
 *     (attempt i takes the i-th candidate), each a member that forwards to
 *     the leader anyway: a wrong leader costs a hop, never correctness;
 *   - not sharded (a cluster started without --split-keys, or a single node
 *     with no /shards): no target, the client uses its own endpoint.
 *
 * Bounds: the table holds one entry per shard and per member of the newest
 * map (SHARDS_MAX shards at most), the unreachable marks one per member of
 * the table; the caller bounds the retries.
 */
import { ImpulseError, isImpulseError } from '../errors.js';
import type { ClusterView } from '../protocol/cluster-view.js';
import type { ShardsView } from '../protocol/shard-view.js';
import type { WireShardRoute } from '../protocol/shard-route.js';
import { type ShardMap, shardFor, shardMapFromJson } from '../shard/shard-map.js';

/** How the router asks a member (the client's own requests, to `origin`). */
export interface RouteSource {
  clusterAt(origin: URL): Promise<ClusterView>;
  shardsAt(origin: URL): Promise<ShardsView>;
}

/** Where to send a key request, and the route to name in it. */
export interface RouteTarget {
  readonly origin: URL;
  readonly route: WireShardRoute;
}

interface RoutingTable {
  /** Undefined: not sharded; requests go to the client's endpoint. */
  readonly map: ShardMap | undefined;
  /** Leader node id per shard id, as the members reported them. */
  readonly leaders: Map<number, number>;
  /** Client URL per node id. */
  readonly urls: ReadonlyMap<number, URL>;
}

export interface ShardRouterOptions {
  /** A table older than this is reloaded in the background at its next use, ms. Default 30,000. */
  readonly tableAgeMaxMs?: number;
  /** A member the client could not reach is tried last for this long, ms. Default 10,000. */
  readonly unreachableForMs?: number;
  /** Monotonic ms (default performance.now). */
  readonly now?: () => number;
}

export class ShardRouter {
  private table: RoutingTable | undefined;
  private loadedAtMs = 0;
  private refreshing: Promise<RoutingTable> | undefined;
  private refreshCount = 0;
  private readonly tableAgeMaxMs: number;
  private readonly unreachableForMs: number;
  /** When each member last could not be reached (monotonic ms), by node id. */
  private readonly unreachableAtMs = new Map<number, number>();
  private readonly now: () => number;

  constructor(
    private readonly seed: URL,
    private readonly source: RouteSource,
    options: ShardRouterOptions = {},
  ) {
    this.tableAgeMaxMs = options.tableAgeMaxMs ?? 30_000;
    this.unreachableForMs = options.unreachableForMs ?? 10_000;
    this.now = options.now ?? (() => performance.now());
  }

  /** Refreshes done so far (each one `GET /cluster` and a `GET /shards` a member). */
  get refreshes(): number {
    return this.refreshCount;
  }

  /** The cached map's version (undefined before the first refresh or when not sharded). */
  get mapVersion(): number | undefined {
    return this.table?.map?.version;
  }

  /** Where attempt `attempt` (0, 1, ...) of a request for `key` goes; undefined when the cluster is not sharded. */
  async target(key: Uint8Array, attempt: number): Promise<RouteTarget | undefined> {
    const table = this.table ?? (await this.refresh());
    if (this.now() - this.loadedAtMs > this.tableAgeMaxMs) this.refresh().catch(() => undefined); // the old table serves meanwhile
    if (table.map === undefined) return undefined;
    const shard = shardFor(table.map, key);
    const leader = table.leaders.get(shard.id);
    const ordered = [...(leader === undefined ? [] : [leader]), ...shard.replicas.filter((id) => id !== leader)].filter((id) => table.urls.has(id));
    if (ordered.length === 0) return undefined;
    const down = ordered.filter((id) => this.isUnreachable(id));
    const candidates = [...ordered.filter((id) => !down.includes(id)), ...down];
    const node = candidates[attempt % candidates.length]!;
    return { origin: table.urls.get(node)!, route: { shard: shard.id, epoch: shard.epoch } };
  }

  /** Forgets the leader of `shard` (its member could not be reached or did not lead): the next target is another replica. */
  forgetLeader(shard: number): void {
    this.table?.leaders.delete(shard);
  }

  /** `target` could not be reached: forgets its shard's leader and tries its member last for `unreachableForMs`. */
  memberUnreachable(target: RouteTarget): void {
    this.forgetLeader(target.route.shard);
    for (const [id, url] of this.table?.urls ?? []) {
      if (url.origin === target.origin.origin) this.unreachableAtMs.set(id, this.now());
    }
  }

  private isUnreachable(id: number): boolean {
    const at = this.unreachableAtMs.get(id);
    if (at === undefined) return false;
    if (this.now() - at < this.unreachableForMs) return true;
    this.unreachableAtMs.delete(id);
    return false;
  }

  /**
   * Reloads the table, asking `from` first (the member that said the route
   * was stale knows a newer map), then the seed, then the members known.
   * Concurrent calls share one refresh.
   */
  refresh(from?: URL): Promise<RoutingTable> {
    if (this.refreshing === undefined) {
      this.refreshing = this.load(from).finally(() => {
        this.refreshing = undefined;
      });
    }
    return this.refreshing;
  }

  private async load(from: URL | undefined): Promise<RoutingTable> {
    this.refreshCount++;
    const cluster = await this.firstAnswer([...(from === undefined ? [] : [from]), this.seed, ...(this.table?.urls.values() ?? [])]);
    if (cluster === 'not-a-cluster') return this.keep({ map: undefined, leaders: new Map(), urls: new Map() });
    const urls = new Map<number, URL>();
    for (const member of cluster?.members ?? []) {
      if (member.clientUrl === null) continue;
      const url = URL.canParse(member.clientUrl) ? new URL(member.clientUrl) : undefined;
      // A member that published no URL, or one of another scheme than the client's (one agent serves http or https), is not routed to.
      if (url !== undefined && url.protocol === this.seed.protocol) urls.set(member.id, url);
    }
    const origins = urls.size > 0 ? [...urls.values()] : [from ?? this.seed];
    const views = (await Promise.allSettled(origins.map((origin) => this.source.shardsAt(origin)))).flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const newest = views.filter((view) => view.sharded).sort((a, b) => b.version - a.version)[0];
    if (newest === undefined) {
      if (views.length === 0 && cluster === undefined) throw new ImpulseError('IMPULSE_ERR_CLIENT_UNREACHABLE', `no member answered GET /cluster or GET /shards (asked ${origins.map((origin) => origin.origin).join(', ')})`);
      return this.keep({ map: undefined, leaders: new Map(), urls });
    }
    const map = shardMapFromJson(newest);
    if (typeof map === 'string') throw new ImpulseError('IMPULSE_ERR_CLIENT_PROTOCOL', `GET /shards of node ${newest.nodeId} is not a valid shard map: ${map}`);
    return this.keep({ map, leaders: leadersOf(map, views), urls });
  }

  private keep(table: RoutingTable): RoutingTable {
    for (const id of this.unreachableAtMs.keys()) if (!table.urls.has(id)) this.unreachableAtMs.delete(id);
    this.table = table;
    this.loadedAtMs = this.now();
    return table;
  }

  /** The cluster view of the first of `origins` that answers; undefined when none does; 'not-a-cluster' from a single node (it has no /cluster). */
  private async firstAnswer(origins: readonly URL[]): Promise<ClusterView | 'not-a-cluster' | undefined> {
    const seen = new Set<string>();
    for (const origin of origins) {
      if (seen.has(origin.origin)) continue;
      seen.add(origin.origin);
      try {
        return await this.source.clusterAt(origin);
      } catch (error) {
        if (isImpulseError(error, 'IMPULSE_ERR_ROUTE_NOT_FOUND')) return 'not-a-cluster';
      }
    }
    return undefined;
  }
}

/**
 * The leader of each shard of `map` as the members' views report it: a
 * member's word that it leads beats another's hearsay; a leader that is not
 * among the shard's replicas in `map` (an older view) is ignored.
 */
function leadersOf(map: ShardMap, views: readonly ShardsView[]): Map<number, number> {
  const byId = new Map(map.shards.map((shard) => [shard.id, shard] as const));
  const leaders = new Map<number, number>();
  const self = new Set<number>();
  for (const view of views) {
    for (const shard of view.shards) {
      const current = byId.get(shard.id);
      if (shard.leader === null || current === undefined || !current.replicas.includes(shard.leader)) continue;
      const fromItself = shard.leader === view.nodeId;
      if (self.has(shard.id) && !fromItself) continue;
      leaders.set(shard.id, shard.leader);
      if (fromItself) self.add(shard.id);
    }
  }
  return leaders;
}
