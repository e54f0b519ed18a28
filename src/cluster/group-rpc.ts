/**
 * RPC handlers per Raft group on one endpoint: the RPC endpoint allows one
 * handler per channel, and a node hosts many groups that all answer on the
 * same channels (`kv-forward`, `read-index`). Requests carry their group as
 * `g`; this dispatches on it. A request for a group this node does not host
 * (not created yet, or removed) is answered IMPULSE_ERR_UNAVAILABLE: nothing
 * happened, the caller retries (its route may be stale).
 */
import type { RpcEndpoint, RpcHandler } from '../transport/rpc.js';
import { unavailable } from './request-errors.js';

export class GroupRpc {
  private readonly handlers = new Map<string, Map<number, RpcHandler>>();

  constructor(private readonly rpc: RpcEndpoint) {}

  /** Answers requests on `channel` whose `g` is `group` with `handler` (one per channel and group). */
  serve(channel: string, group: number, handler: RpcHandler): void {
    let byGroup = this.handlers.get(channel);
    if (byGroup === undefined) {
      const table = new Map<number, RpcHandler>();
      byGroup = table;
      this.handlers.set(channel, table);
      this.rpc.serve(channel, (from, body, reply) => {
        const group = (body as { g?: unknown } | null)?.g;
        const target = typeof group === 'number' ? table.get(group) : undefined;
        if (target === undefined) return reply(unavailable(`this node hosts no Raft group ${String(group)} (${channel})`));
        target(from, body, reply);
      });
    }
    if (byGroup.has(group)) throw new Error(`group-rpc: a handler for ${channel} of group ${group} exists already`);
    byGroup.set(group, handler);
  }

  /** Stops answering for `group` on every channel (the group was removed from this node). */
  release(group: number): void {
    for (const byGroup of this.handlers.values()) byGroup.delete(group);
  }
}
