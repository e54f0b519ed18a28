/**
 * What each shard's leader reports to the meta group's leader (RPC channel
 * `shard-leads`; TiKV's PD learns the same from region heartbeats): every
 * live member, asked, lists each hosted shard group it leads with its term,
 * the shard's running byte count (shard-size.ts) and its smoothed requests a
 * second (shard-load.ts).
 * A shard claimed by two members (an old leader that has not heard of the
 * new one yet) goes to the higher term. The meta leader keeps the latest
 * report of every shard (`ShardReports`): leader balance, `GET /shards` and
 * (later) merges and byte balance read sizes and load there.
 *
 *   serveShardLeads(rpc, host, meta, sizes, load)   on every member
 *   const leads = await askShardLeads(rpc, 3, 2000)
 *   reports.record(leadsByNode, shardIds, clock.now())
 */
import { ImpulseError } from '../errors.js';
import type { NodeId } from '../raft/types.js';
import type { RpcEndpoint } from '../transport/rpc.js';
import type { NodeHost } from './node-host.js';
import type { ShardLoad } from './shard-load.js';
import type { ShardSizes } from './shard-size.js';

export const SHARD_LEADS_CHANNEL = 'shard-leads';

/** A shard group led by the answering member, in `term`. */
export interface ShardLead {
  readonly shard: number;
  readonly term: number;
  /** The shard's running byte count on its leader (keys and values inside its range, an upper bound); null while not counted yet. */
  readonly sizeBytes: number | null;
  /** Requests a second the leader's Raft driver serves for the shard (proposals and read-index reads), smoothed over about 10 s (shard-load.ts); null until this leadership observed an interval. */
  readonly requestsPerSecond: number | null;
}

/** What `localShardLeads` reads on a member. */
export interface LeadSources {
  readonly host: NodeHost;
  readonly metaGroup: number;
  readonly sizes: ShardSizes;
  readonly load: ShardLoad;
}

/** The shard groups (not the meta group) `host` leads now, with their sizes and load. */
export function localShardLeads({ host, metaGroup, sizes, load }: LeadSources): ShardLead[] {
  const leads: ShardLead[] = [];
  for (const id of host.groupIds()) {
    const group = host.group(id);
    if (id === metaGroup || group === undefined || group.state !== 'running' || group.leader !== host.nodeId) continue;
    const metrics = group.driver.metrics();
    const requestsPerSecond = load.observe(id, metrics.proposals + metrics.reads, group.machine.dataGeneration);
    leads.push({ shard: id, term: group.driver.node.currentTerm, sizeBytes: sizes.estimate(group.machine) ?? null, requestsPerSecond });
  }
  load.keepOnly(new Set(leads.map((lead) => lead.shard)));
  return leads;
}

/** Answers `shard-leads` on `sources.host`'s endpoint. */
export function serveShardLeads(rpc: RpcEndpoint, sources: LeadSources): void {
  rpc.serve(SHARD_LEADS_CHANNEL, (_from, _body, reply) => reply(null, localShardLeads(sources)));
}

/**
 * One lead of a peer's answer, checked (bodies from peers are not trusted):
 * shard and term safe integers ≥ 0, size and rate null or finite numbers ≥ 0
 * (absent, from a member before sizes were reported: null). Undefined when
 * the item is not a lead.
 */
export function parseShardLead(item: unknown): ShardLead | undefined {
  if (typeof item !== 'object' || item === null) return undefined;
  const { shard, term, sizeBytes, requestsPerSecond } = item as Record<string, unknown>;
  const figure = (value: unknown): number | null | undefined => (value === undefined || value === null ? null : typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined);
  const size = figure(sizeBytes);
  const rate = figure(requestsPerSecond);
  if (!isCount(shard) || !isCount(term) || size === undefined || rate === undefined) return undefined;
  return { shard, term, sizeBytes: size, requestsPerSecond: rate };
}

/** Member `node`'s leads; throws when it does not answer in `timeoutMs` or answers nonsense (`parseShardLead`). */
export async function askShardLeads(rpc: RpcEndpoint, node: NodeId, timeoutMs: number): Promise<ShardLead[]> {
  const answer = await rpc.callAsync(node, SHARD_LEADS_CHANNEL, {}, timeoutMs);
  const leads = Array.isArray(answer) ? answer.map(parseShardLead) : [undefined];
  if (!leads.every((lead) => lead !== undefined)) throw new Error(`member ${node} answered shard-leads with something else than a list of leads`);
  return leads as ShardLead[];
}

/** The leader of each shard by the reports of `leadsByNode` (the highest term wins a shard two members claim). */
export function leadersFromReports(leadsByNode: ReadonlyMap<NodeId, readonly ShardLead[]>): Map<number, NodeId> {
  return new Map([...winningLeads(leadsByNode)].map(([shard, { node }]) => [shard, node]));
}

/** A shard's latest report at the meta leader. */
export interface ShardReport extends ShardLead {
  /** The member that reported it (the shard's leader in `term`). */
  readonly leader: NodeId;
  /** When the meta leader received it, on its clock (ms). */
  readonly reportedAtMs: number;
}

/**
 * The latest report of every shard, kept by the meta group's leader: a
 * shard's entry is replaced by each ask that hears from its leader (the
 * highest term of that ask), and kept while an ask hears from nobody leading
 * it (its `reportedAtMs` tells its age); a report without a size (a new
 * leader that has not counted the shard yet) keeps the last known size, and
 * one without a load (a new leader's first ask) the last known load.
 * Bounded by the shards of the map:
 * `record` drops entries of shards no longer in it.
 */
export class ShardReports {
  private readonly latest = new Map<number, ShardReport>();
  private versionValue = 0;

  /** Rises with every `record` and `clear` (a plan on unchanged reports and map need not be made again). */
  get version(): number {
    return this.versionValue;
  }

  /** Records one ask's answers at `nowMs`; `shardIds` are the shards of the current map. */
  record(leadsByNode: ReadonlyMap<NodeId, readonly ShardLead[]>, shardIds: ReadonlySet<number>, nowMs: number): void {
    this.versionValue++;
    for (const shard of this.latest.keys()) if (!shardIds.has(shard)) this.latest.delete(shard);
    for (const [shard, { node, lead }] of winningLeads(leadsByNode)) {
      if (!shardIds.has(shard)) continue;
      // A new leader that has not counted the shard yet reports no size: the last known one stays (placement weighs it).
      const previous = this.latest.get(shard);
      const sizeBytes = lead.sizeBytes ?? previous?.sizeBytes ?? null;
      // Likewise its load: a new leader has no interval of its own yet.
      const requestsPerSecond = lead.requestsPerSecond ?? previous?.requestsPerSecond ?? null;
      this.latest.set(shard, { ...lead, sizeBytes, requestsPerSecond, leader: node, reportedAtMs: nowMs });
    }
  }

  /** `shard`'s latest report, or undefined when none arrived since this member leads the meta group. */
  get(shard: number): ShardReport | undefined {
    return this.latest.get(shard);
  }

  /** Every shard's latest report. */
  all(): ReadonlyMap<number, ShardReport> {
    return this.latest;
  }

  /** Forgets every report (this member stopped leading the meta group: a later leadership starts afresh). */
  clear(): void {
    this.versionValue++;
    this.latest.clear();
  }
}

function winningLeads(leadsByNode: ReadonlyMap<NodeId, readonly ShardLead[]>): Map<number, { node: NodeId; lead: ShardLead }> {
  const best = new Map<number, { node: NodeId; lead: ShardLead }>();
  for (const [node, leads] of leadsByNode) {
    for (const lead of leads) {
      const current = best.get(lead.shard);
      if (current === undefined || lead.term > current.lead.term) best.set(lead.shard, { node, lead });
    }
  }
  return best;
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

export const SHARD_REPORTS_CHANNEL = 'shard-reports';

/** A shard's latest report as another member sees it (`GET /shards` on a member that does not lead the meta group). */
export interface ReportedShard {
  readonly leader: NodeId;
  readonly sizeBytes: number | null;
  readonly requestsPerSecond: number | null;
  /** How old the report was when the meta leader answered, ms. */
  readonly ageMs: number;
}

/** The meta leader's reports, with the member they come from. */
export interface ReportsSnapshot {
  readonly from: NodeId;
  readonly shards: ReadonlyMap<number, ReportedShard>;
}

/** `reports` as of `nowMs` on the meta leader `from`. */
export function reportsSnapshot(from: NodeId, reports: ShardReports, nowMs: number): ReportsSnapshot {
  const shards = new Map<number, ReportedShard>();
  for (const [shard, report] of reports.all()) {
    shards.set(shard, { leader: report.leader, sizeBytes: report.sizeBytes, requestsPerSecond: report.requestsPerSecond, ageMs: Math.max(0, Math.round(nowMs - report.reportedAtMs)) }); // a clock's ms may be fractional
  }
  return { from, shards };
}

/** Answers `shard-reports` (compact rows: [shard, leader, sizeBytes, requestsPerSecond, ageMs]) with `snapshot()`'s reports, or refuses when it returns undefined (not the meta leader). */
export function serveShardReports(rpc: RpcEndpoint, snapshot: () => ReportsSnapshot | undefined): void {
  rpc.serve(SHARD_REPORTS_CHANNEL, (_from, _body, reply) => {
    const now = snapshot();
    if (now === undefined) return reply(new ImpulseError('IMPULSE_ERR_RAFT_NOT_LEADER', 'this member does not lead the meta group: ask its leader for the shard reports'));
    reply(null, { from: now.from, rows: [...now.shards].map(([shard, r]) => [shard, r.leader, r.sizeBytes, r.requestsPerSecond, r.ageMs]) });
  });
}

/** The meta leader `node`'s reports; throws when it does not answer in `timeoutMs` or answers nonsense (bodies from peers are checked). */
export async function askShardReports(rpc: RpcEndpoint, node: NodeId, timeoutMs: number): Promise<ReportsSnapshot> {
  const answer = (await rpc.callAsync(node, SHARD_REPORTS_CHANNEL, {}, timeoutMs)) as { from?: unknown; rows?: unknown } | null;
  const shards = new Map<number, ReportedShard>();
  if (typeof answer !== 'object' || answer === null || !isCount(answer.from) || !Array.isArray(answer.rows)) throw new Error(`member ${node} answered shard-reports with something else than reports`);
  for (const item of answer.rows as unknown[]) {
    const row: readonly unknown[] = Array.isArray(item) && item.length === 5 ? item : [];
    const lead = parseShardLead({ shard: row[0], term: 0, sizeBytes: row[2], requestsPerSecond: row[3] });
    if (lead === undefined || !isCount(row[1]) || !isCount(row[4])) throw new Error(`member ${node} answered shard-reports with a malformed row`);
    shards.set(lead.shard, { leader: row[1], sizeBytes: lead.sizeBytes, requestsPerSecond: lead.requestsPerSecond, ageMs: row[4] });
  }
  return { from: answer.from, shards };
}
