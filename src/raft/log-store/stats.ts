/**
 * The Raft log's figures for /status and /metrics: counters kept by the
 * store plus what recovery discarded at open. Names are snake_case with units
 * last; `_total` figures are sums since open (mean = total / count).
 */
import type { RecoveryReport } from './recovery.js';

/** What the store knows at the moment `stats()` is called. */
export interface LogShape {
  readonly segments: number;
  readonly bytes: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly cacheEntries: number;
  readonly cacheBytes: number;
}

export class LogStoreStats {
  saves = 0;
  compactions = 0;
  savedEntries = 0;
  savedBytes = 0;
  fsyncs = 0;
  /** Saves made durable by the node's journal (journal.ts) instead of a fsync of their own. */
  journaled = 0;
  dirSyncs = 0;
  segmentsDeleted = 0;
  diskReads = 0;
  diskReadEntries = 0;
  private saveLatencyMsTotal = 0;
  private saveLatencyMsMax = 0;
  private saveLatencyMsLast = 0;

  constructor(private readonly report: RecoveryReport) {}

  /** One save became durable after `latencyMs`. */
  saved(entries: number, bytes: number, latencyMs: number): void {
    this.saves++;
    this.savedEntries += entries;
    this.savedBytes += bytes;
    this.saveLatencyMsTotal += latencyMs;
    this.saveLatencyMsLast = latencyMs;
    if (latencyMs > this.saveLatencyMsMax) this.saveLatencyMsMax = latencyMs;
  }

  figures(shape: LogShape): Record<string, number> {
    const { tornTail, corruptionDiscarded, leftoverSegmentsRemoved } = this.report;
    return {
      segments: shape.segments,
      bytes: shape.bytes,
      first_index: shape.firstIndex,
      last_index: shape.lastIndex,
      cache_entries: shape.cacheEntries,
      cache_bytes: shape.cacheBytes,
      saves: this.saves,
      compactions: this.compactions,
      saved_entries: this.savedEntries,
      saved_bytes: this.savedBytes,
      fsyncs: this.fsyncs,
      journaled_saves: this.journaled,
      dir_syncs: this.dirSyncs,
      save_latency_ms_total: this.saveLatencyMsTotal,
      save_latency_ms_max: this.saveLatencyMsMax,
      save_latency_ms_last: this.saveLatencyMsLast,
      segments_deleted: this.segmentsDeleted,
      disk_reads: this.diskReads,
      disk_read_entries: this.diskReadEntries,
      torn_tail_bytes_discarded: tornTail?.bytes ?? 0,
      torn_tail_records_discarded: tornTail?.records ?? 0,
      corruption_bytes_discarded: corruptionDiscarded?.bytes ?? 0,
      corruption_records_discarded: corruptionDiscarded?.records ?? 0,
      leftover_segments_removed: leftoverSegmentsRemoved.length,
    };
  }
}
