/**
 * The Raft figures of a member for /status (`figures`, flat name → number,
 * which /metrics exports as `impulse_engine_figure{figure=...}`) and the one
 * real histogram, commit latency (a proposal of this node → applied), which
 * the API registers in its Prometheus registry.
 *
 * Figures (all `raft_`, `raft_log_`, `transport_` or `rpc_` prefixed):
 *   raft_term, raft_commit_index, raft_applied_index, raft_applied_lag (commit − applied),
 *   raft_last_index, raft_snapshot_index, raft_is_leader, raft_leader_changes, raft_elections,
 *   raft_campaigns, raft_proposals, raft_proposals_failed_<CODE>, raft_reads, raft_read_rounds,
 *   raft_snapshots_sent / _received / _failed, raft_compactions, raft_messages_dropped / _invalid,
 *   raft_ticks_dropped, raft_saves, raft_save_latency_ms_total / _max (the driver's view of a
 *   save: the call until durable), raft_log_<figure> (the log store's own: segments, bytes,
 *   fsyncs, save latency, torn tails, ...), raft_commit_latency_ms_count / _sum, raft_forwarded_writes,
 *   raft_forwarded_writes_served, raft_follower_read_index_calls, raft_read_index_served,
 *   raft_request_retries, raft_leader_wait_timeouts, raft_unknown_outcomes,
 *   raft_requests_waiting, transport_sent / _received / _dropped messages, transport_reconnects,
 *   transport_connect_failures, transport_rejected_connections, transport_snapshots_sent / _received,
 *   transport_snapshot_rate_waits / _wait_ms (senders held by --snapshot-rate-max),
 *   rpc_in_flight, rpc_calls, rpc_timeouts, rpc_overloaded, rpc_late_responses; with the node's log
 *   journal, raft_journal_commits / _fsyncs / _bytes_written / _checkpoints / _bytes (all groups) and
 *   what its replay at start found (raft_journal_replayed_records / _replay_skipped_records / _replay_torn_bytes).
 */
import { Histogram } from 'prom-client';
import type { CoalescedHeartbeatStats } from '../raft/coalesced-heartbeats.js';
import type { NodeHost } from './node-host.js';
import type { RaftGroup } from './raft-group.js';
import type { RaftRequests } from './raft-requests.js';

/** Commit latency buckets, seconds: 1 ms to 5 s. */
const COMMIT_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class CommitLatency {
  /** Registered by the API server in its registry (`ServerOptions.metrics`). */
  readonly histogram = new Histogram({
    name: 'impulse_raft_commit_latency_seconds',
    help: 'Time from a proposal on this node (the leader) to its application, seconds.',
    buckets: COMMIT_BUCKETS_SECONDS,
    registers: [],
  });
  count = 0;
  sumMs = 0;

  observe(latencyMs: number): void {
    this.count++;
    this.sumMs += latencyMs;
    this.histogram.observe(latencyMs / 1000);
  }
}

export function raftFigures(host: NodeHost, group: RaftGroup, requests: RaftRequests, latency: CommitLatency): Record<string, number> {
  const figures: Record<string, number> = { ...driverFigures(group) };
  for (const [name, value] of Object.entries(group.logStore.stats())) figures[`raft_log_${name}`] = value;
  const counters = requests.counters;
  Object.assign(figures, {
    raft_commit_latency_ms_count: latency.count,
    raft_commit_latency_ms_sum: latency.sumMs,
    raft_forwarded_writes: counters.forwardedWrites,
    raft_forwarded_writes_served: counters.forwardedWritesServed,
    raft_follower_read_index_calls: counters.followerReadIndexCalls,
    raft_read_index_served: counters.readIndexServed,
    raft_request_retries: counters.retries,
    raft_leader_wait_timeouts: counters.leaderWaitTimeouts,
    raft_unknown_outcomes: counters.unknownOutcomes,
    raft_requests_waiting: requests.waiting,
  });
  return { ...figures, ...transportFigures(host), ...hostFigures(host) };
}

/** The groups the node hosts and their quiescence (idle groups cost no ticks and send no heartbeats). */
function hostFigures(host: NodeHost): Record<string, number> {
  return {
    raft_groups_hosted: host.groupIds().length,
    raft_groups_quiesced: host.quiescedGroups(),
    raft_quiesce_notices_sent: host.quiesceCounters.noticesSent,
    raft_groups_woken_by_silence: host.quiesceCounters.wokenBySilence,
    raft_groups_woken_by_return: host.quiesceCounters.wokenByReturn,
    raft_leader_gone_hints: host.leaderGoneHints,
    ...coalescedHeartbeatFigures(host.heartbeats.stats),
    // The node's log journal (one fsync for every group's saves): raft_journal_commits, _fsyncs, ... (LogJournal.stats).
    ...Object.fromEntries(Object.entries(host.journal?.stats() ?? {}).map(([name, value]) => [`raft_${name}`, value])),
  };
}

/** Coalesced heartbeats (src/raft/coalesced-heartbeats.ts): the messages on the wire, and the groups' heartbeats and responses they carried. */
function coalescedHeartbeatFigures(stats: CoalescedHeartbeatStats): Record<string, number> {
  return {
    raft_coalesced_heartbeat_messages_sent: stats.messagesSent,
    raft_coalesced_heartbeats_sent: stats.heartbeatsSent,
    raft_coalesced_heartbeat_responses_sent: stats.responsesSent,
    raft_coalesced_heartbeat_messages_received: stats.messagesReceived,
    raft_coalesced_heartbeats_received: stats.heartbeatsReceived,
    raft_coalesced_heartbeat_responses_received: stats.responsesReceived,
    raft_coalesced_heartbeat_messages_invalid: stats.messagesInvalid,
  };
}

/** The driver's view: role, indexes, elections, proposals, snapshots, saves (call → durable). */
function driverFigures(group: RaftGroup): Record<string, number> {
  const status = group.driver.status();
  const metrics = group.driver.metrics();
  const figures: Record<string, number> = {
    raft_term: status.term,
    raft_commit_index: status.commit,
    raft_applied_index: status.applied,
    raft_applied_lag: Math.max(0, status.commit - status.applied),
    raft_last_index: status.lastIndex,
    raft_snapshot_index: status.snapshotIndex,
    raft_is_leader: status.role === 'leader' ? 1 : 0,
    raft_leader_changes: metrics.leaderChanges,
    raft_elections: metrics.elections,
    raft_campaigns: metrics.campaigns,
    raft_proposals: metrics.proposals,
    raft_reads: metrics.reads,
    raft_read_rounds: metrics.readRounds,
    raft_snapshots_sent: metrics.snapshotsSent,
    raft_snapshots_received: metrics.snapshotsReceived,
    raft_snapshots_failed: metrics.snapshotsFailed,
    raft_compactions: metrics.compactions,
    raft_messages_dropped: metrics.messagesDropped,
    raft_messages_invalid: metrics.messagesInvalid,
    raft_ticks_dropped: metrics.ticksDropped,
    raft_saves: metrics.saves,
    raft_save_latency_ms_total: metrics.saveLatencyMsTotal,
    raft_save_latency_ms_max: metrics.saveLatencyMsMax,
  };
  for (const [code, count] of Object.entries(metrics.proposalsFailed)) figures[`raft_proposals_failed_${code}`] = count;
  return figures;
}

/** The peer transport (messages, drops, reconnects) and the RPC endpoint. */
function transportFigures(host: NodeHost): Record<string, number> {
  const transport = host.transport.stats();
  let reconnects = 0;
  let connectFailures = 0;
  for (const peer of Object.values(transport.peers)) {
    reconnects += peer.reconnects;
    connectFailures += peer.connectFailures;
  }
  const rpc = host.rpc.stats();
  return {
    transport_sent_messages: transport.sentMessages,
    transport_received_messages: transport.receivedMessages,
    transport_dropped_messages: transport.droppedMessages,
    transport_reconnects: reconnects,
    transport_connect_failures: connectFailures,
    transport_rejected_connections: transport.rejectedConnections,
    transport_snapshots_sent: transport.snapshotsSent,
    transport_snapshots_received: transport.snapshotsReceived,
    transport_snapshot_rate_waits: transport.snapshotRateWaits,
    transport_snapshot_rate_wait_ms: transport.snapshotRateWaitMs,
    transport_unroutable_messages: host.droppedMessages,
    rpc_in_flight: rpc.inFlight,
    rpc_calls: rpc.calls,
    rpc_timeouts: rpc.timeouts,
    rpc_overloaded: rpc.overloaded,
    rpc_late_responses: rpc.lateResponses,
  };
}
