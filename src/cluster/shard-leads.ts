/**
 * Which shards a member leads, as the meta group's leader asks every live
 * member before it balances leaders (RPC channel `shard-leads`; TiKV's PD
 * learns the same from region heartbeats). The answer lists each hosted shard
 * group this member leads with its term; a shard claimed by two members (an
 * old leader that has not heard of the new one yet) goes to the higher term.
 *
 *   serveShardLeads(rpc, groups)               on every member
 *   const leads = await askShardLeads(rpc, 3, 2000)
 */
import type { NodeId } from '../raft/types.js';
import type { RpcEndpoint } from '../transport/rpc.js';
import type { NodeHost } from './node-host.js';

export const SHARD_LEADS_CHANNEL = 'shard-leads';

/** A shard group led by the answering member, in `term`. */
export interface ShardLead {
  readonly shard: number;
  readonly term: number;
}

/** The shard groups (not the meta group) `host` leads now. */
export function localShardLeads(host: NodeHost, metaGroup: number): ShardLead[] {
  const leads: ShardLead[] = [];
  for (const id of host.groupIds()) {
    const group = host.group(id);
    if (id === metaGroup || group === undefined || group.state !== 'running' || group.leader !== host.nodeId) continue;
    leads.push({ shard: id, term: group.driver.node.currentTerm });
  }
  return leads;
}

/** Answers `shard-leads` on `host`'s endpoint. */
export function serveShardLeads(rpc: RpcEndpoint, host: NodeHost, metaGroup: number): void {
  rpc.serve(SHARD_LEADS_CHANNEL, (_from, _body, reply) => reply(null, localShardLeads(host, metaGroup)));
}

/** Member `node`'s leads; throws when it does not answer in `timeoutMs` or answers nonsense (bodies from peers are checked). */
export async function askShardLeads(rpc: RpcEndpoint, node: NodeId, timeoutMs: number): Promise<ShardLead[]> {
  const answer = await rpc.callAsync(node, SHARD_LEADS_CHANNEL, {}, timeoutMs);
  const valid = (item: unknown): item is ShardLead => {
    const { shard, term } = (item ?? {}) as { shard?: unknown; term?: unknown };
    return Number.isSafeInteger(shard) && Number.isSafeInteger(term);
  };
  if (!Array.isArray(answer) || !answer.every(valid)) throw new Error(`member ${node} answered shard-leads with something else than a list of leads`);
  return answer;
}

/** The leader of each shard by the reports of `leadsByNode` (the highest term wins a shard two members claim). */
export function leadersFromReports(leadsByNode: ReadonlyMap<NodeId, readonly ShardLead[]>): Map<number, NodeId> {
  const best = new Map<number, { node: NodeId; term: number }>();
  for (const [node, leads] of leadsByNode) {
    for (const { shard, term } of leads) {
      const current = best.get(shard);
      if (current === undefined || term > current.term) best.set(shard, { node, term });
    }
  }
  return new Map([...best].map(([shard, { node }]) => [shard, node]));
}
