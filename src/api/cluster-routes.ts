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
 *   POST   /cluster/leader                  {"id"}: transfer leadership
 *   GET    /shards                          the shard map and this member's view of each shard
 *
 * Every answer is the cluster view (src/protocol/cluster-view.ts) after the
 * operation applied.
 */
import { ImpulseError } from '../errors.js';
import type { AddMemberRequest, ClusterView } from '../protocol/cluster-view.js';
import type { ShardsView } from '../protocol/shard-view.js';
import type { RouteLabel } from './metrics.js';

/** What a cluster member offers the API (src/cluster/cluster-admin.ts). */
export interface ClusterRoutesTarget {
  view(): ClusterView;
  addMember(request: AddMemberRequest): Promise<ClusterView>;
  promoteMember(id: unknown): Promise<ClusterView>;
  removeMember(id: unknown): Promise<ClusterView>;
  transferLeader(id: unknown): Promise<ClusterView>;
  shards(): Promise<ShardsView>;
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
  if (path === '/cluster/members') return { label: '/cluster/members', method: 'POST' };
  if (path === '/cluster/leader') return { label: '/cluster/leader', method: 'POST' };
  const promote = /^\/cluster\/members\/([^/]{1,32})\/promote$/.exec(path);
  if (promote !== null) return { label: '/cluster/members/{id}/promote', method: 'POST', id: promote[1]! };
  const member = /^\/cluster\/members\/([^/]{1,32})$/.exec(path);
  if (member !== null) return { label: '/cluster/members/{id}', method: 'DELETE', id: member[1]! };
  return undefined;
}

/** Runs `route` (its method already checked) against `target`; `body()` reads the request body. */
export async function serveClusterRoute(route: ClusterRoute, target: ClusterRoutesTarget | undefined, body: () => Promise<Buffer>): Promise<ClusterView | ShardsView> {
  if (target === undefined) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', 'this node is not a cluster member (it was started without --node-id)');
  switch (route.label) {
    case '/cluster':
      return target.view();
    case '/shards':
      return target.shards();
    case '/cluster/members':
      return target.addMember(jsonObject(await body()) as unknown as AddMemberRequest);
    case '/cluster/leader':
      return target.transferLeader(jsonObject(await body())['id']);
    case '/cluster/members/{id}/promote':
      return target.promoteMember(route.id);
    default:
      return target.removeMember(route.id);
  }
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
