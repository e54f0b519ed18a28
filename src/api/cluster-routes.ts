/**
 * The cluster routes of the HTTP API (docs/api.md, "Cluster"): the view and
 * the membership operations of a cluster member. Any member answers them; the
 * operations are carried out by the leader (the member forwards them over the
 * peer transport). On a single node (no --node-id) they answer 404 with a
 * sentence saying so.
 *
 *   GET    /cluster                         the cluster as this member sees it
 *   POST   /cluster/members                 {"id", "peerUrl", "clientUrl"?}: add a learner
 *   POST   /cluster/members/{id}/promote    learner → voter
 *   DELETE /cluster/members/{id}            remove a member
 *   DELETE /cluster/members/{id}?force=true leaderless: remove a member that is down for good (without its steps)
 *   POST   /cluster/leader                  {"id"}: transfer leadership
 *   GET    /shards                          the shard map and this member's view of each shard
 *   POST   /shards/split                    {"key"} (UTF-8) or {"keyHex"}: split the shard holding it there
 *   POST   /shards/merge                    {"shard"}: merge that shard's right neighbour into it
 *   POST   /shards/merge/cancel             {"shard"}: roll back the merge into that shard (unless it committed)
 *   POST   /cluster/repair                  leaderless: anti-entropy with every other member now (a RepairReport)
 *
 * Every answer is the cluster view (src/protocol/cluster-view.ts) after the
 * operation applied.
 */
import { ImpulseError } from '../errors.js';
import type { AddMemberRequest, ClusterView, RemoveOptions, RepairReport } from '../protocol/cluster-view.js';
import type { ShardsView } from '../protocol/shard-view.js';
import type { RouteLabel } from './metrics.js';

/** What a cluster member offers the API (src/cluster/cluster-admin.ts). */
export interface ClusterRoutesTarget {
  view(): ClusterView;
  addMember(request: AddMemberRequest): Promise<ClusterView>;
  promoteMember(id: unknown): Promise<ClusterView>;
  /** `force`: leaderless only — remove a member that is down, without its part of the change (docs/leaderless.md). */
  removeMember(id: unknown, options?: RemoveOptions): Promise<ClusterView>;
  transferLeader(id: unknown): Promise<ClusterView>;
  shards(): Promise<ShardsView>;
  /** Splits the shard holding `key` at `key` (a sharded Raft cluster); the view once the map has the split. */
  splitShard?(key: Buffer): Promise<ShardsView>;
  /** Merges shard `shard`'s right neighbour into it (a sharded Raft cluster); the view once the map has the merge in flight. */
  mergeShards?(shard: unknown): Promise<ShardsView>;
  /** Marks the merge into shard `shard` to roll back (a sharded Raft cluster); the view once the map has the mark. */
  cancelMerge?(shard: unknown): Promise<ShardsView>;
  /** Leaderless members only: an anti-entropy pass with every other member. */
  repair?(): Promise<RepairReport>;
}

/** Largest JSON body of a cluster route. */
export const CLUSTER_BODY_BYTES_MAX = 64 * 1024;

export interface ClusterRoute {
  readonly label: RouteLabel;
  /** The one method the route takes (for 405 and Allow). */
  readonly method: string;
  /** The member id in the path, if the route has one. */
  readonly id?: string;
}

/** The cluster route `path` names, or undefined when it is not one. */
export function matchClusterRoute(path: string): ClusterRoute | undefined {
  if (path === '/cluster') return { label: '/cluster', method: 'GET' };
  if (path === '/shards') return { label: '/shards', method: 'GET' };
  if (path === '/shards/split') return { label: '/shards/split', method: 'POST' };
  if (path === '/shards/merge') return { label: '/shards/merge', method: 'POST' };
  if (path === '/shards/merge/cancel') return { label: '/shards/merge/cancel', method: 'POST' };
  if (path === '/cluster/members') return { label: '/cluster/members', method: 'POST' };
  if (path === '/cluster/leader') return { label: '/cluster/leader', method: 'POST' };
  if (path === '/cluster/repair') return { label: '/cluster/repair', method: 'POST' };
  const promote = /^\/cluster\/members\/([^/]{1,32})\/promote$/.exec(path);
  if (promote !== null) return { label: '/cluster/members/{id}/promote', method: 'POST', id: promote[1]! };
  const member = /^\/cluster\/members\/([^/]{1,32})$/.exec(path);
  if (member !== null) return { label: '/cluster/members/{id}', method: 'DELETE', id: member[1]! };
  return undefined;
}

/** Runs `route` (its method already checked) against `target`; `body()` reads the request body; `query` is the request's query string (without '?'). */
export async function serveClusterRoute(route: ClusterRoute, target: ClusterRoutesTarget | undefined, body: () => Promise<Buffer>, query = ''): Promise<ClusterView | ShardsView | RepairReport> {
  if (target === undefined) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', 'this node is not a cluster member (it was started without --node-id)');
  switch (route.label) {
    case '/cluster':
      return target.view();
    case '/shards':
      return target.shards();
    case '/shards/split':
      if (target.splitShard === undefined) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', 'splitting a shard needs a sharded Raft cluster (started with --split-keys)');
      return target.splitShard(splitKeyOf(jsonObject(await body())));
    case '/shards/merge':
      if (target.mergeShards === undefined) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', 'merging shards needs a sharded Raft cluster (started with --split-keys)');
      return target.mergeShards(jsonObject(await body())['shard']);
    case '/shards/merge/cancel':
      if (target.cancelMerge === undefined) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', 'cancelling a shard merge needs a sharded Raft cluster (started with --split-keys)');
      return target.cancelMerge(jsonObject(await body())['shard']);
    case '/cluster/members':
      return target.addMember(jsonObject(await body()) as unknown as AddMemberRequest);
    case '/cluster/leader':
      return target.transferLeader(jsonObject(await body())['id']);
    case '/cluster/members/{id}/promote':
      return target.promoteMember(route.id);
    case '/cluster/repair':
      if (target.repair === undefined) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', 'repair is an anti-entropy pass of leaderless mode; a Raft member keeps its replicas equal through its log');
      return target.repair();
    default:
      return target.removeMember(route.id, removeOptionsOf(query));
  }
}

/** The query of a removal: none, or `force=true` exactly; anything else is refused (a typo must not turn a forced removal into a normal one, or the reverse). */
function removeOptionsOf(query: string): RemoveOptions {
  if (query === '') return {};
  if (query === 'force=true') return { force: true };
  throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'a removal takes no query parameter but force=true');
}

/** The key of a split request: `key` (UTF-8) or `keyHex`, exactly one, not empty. */
function splitKeyOf(body: Record<string, unknown>): Buffer {
  const { key, keyHex } = body;
  if (typeof key === 'string' && keyHex === undefined && key.length > 0) return Buffer.from(key, 'utf8');
  if (typeof keyHex === 'string' && key === undefined && /^([0-9a-fA-F]{2})+$/.test(keyHex)) return Buffer.from(keyHex, 'hex');
  throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'a split names its key as {"key": "<UTF-8>"} or {"keyHex": "<hex>"}, one of them, not empty');
}

function jsonObject(bytes: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'the body must be a JSON object');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'the body must be a JSON object');
  return value as Record<string, unknown>;
}
