/**
 * Load-triggered splits (`--shard-split-qps N`; TiKV's load-base-split,
 * CockroachDB's load-based splitting). Every `checkMs` (the size checks'
 * interval, 5 s by default) each member looks at the shards it leads:
 *
 *   - a shard whose smoothed load (shard-load.ts: requests a second, a ~10 s
 *     moving average) is above N becomes **hot**, and from then on the keys
 *     of the requests this member serves for it are sampled (a reservoir of
 *     LOAD_SAMPLE_KEYS keys, src/shard/load-split-key.ts);
 *   - a shard that stays above N at every check for `holdMs` (two check
 *     intervals: 10 s by default; TiKV's RFC waits ≥ 10 s too) splits at the
 *     sampled key that halves its sampled load (`chooseLoadSplitKey`), by
 *     the same path as the size trigger and `impulse shards split`
 *     (ShardSplits.requestSplit: the map in the meta group, then the split
 *     command in the shard's log);
 *   - the chooser may refuse (one hot key, too few keys, a hot key carrying
 *     more than 3/4): the refusal is logged once per hot period, counted,
 *     and the sample starts afresh (the next try sees the load as it is then);
 *   - a check that finds the shard at or below N ends its hot period (the
 *     sample is dropped).
 *
 * The hysteresis: a split needs the average above N for the whole hold; after
 * a split both parts' averages start afresh (their data generation changed),
 * so neither splits again before a new average and a new hold say so — at
 * least one check interval plus the hold. A shard being split, merged or
 * moved is not checked (as with the size trigger).
 *
 * Which requests are sampled: those that reach this member's service for a
 * shard it hosts (`offer`, called by ShardedKvService for gets and writes,
 * one key a request: a batch's first key), while it leads the shard. Writes
 * another member forwards to this leader, and reads other members serve
 * from their own replica, are counted in the load but not sampled: the
 * sample stands for the requests clients send to the leader itself — all of
 * them with the TypeScript client, which goes to the leader directly; a
 * uniform share of them when clients spread requests over members without
 * regard to keys.
 */
import type { Logger } from 'pino';
import type { NodeId } from '../raft/types.js';
import { KeySampler, LOAD_SAMPLE_KEYS, chooseLoadSplitKey } from '../shard/load-split-key.js';
import { type ShardBounds, type ShardMap, mergingShard, sameShardBounds } from '../shard/shard-map.js';
import type { Clock } from '../util/clock.js';
import type { Random } from '../util/random.js';
import { Rounds } from '../util/rounds.js';
import type { HostedGroup, HostedGroups } from './hosted-groups.js';
import type { ShardLoad } from './shard-load.js';

/** A shard splits by load once its smoothed load stayed above the threshold for this many check intervals. */
export const LOAD_SPLIT_HOLD_CHECKS = 2;

export interface ShardLoadSplitsOptions {
  readonly groups: HostedGroups;
  readonly meta: HostedGroup;
  readonly nodeId: NodeId;
  readonly clock: Clock;
  /** For the key samples (seeded: a run can be replayed). */
  readonly random: Random;
  /** `--shard-split-qps`: requests a second above which a shard splits by load; 0: never (no checks, no sampling). */
  readonly splitQps: number;
  /** Interval of the checks, ms (> 0). */
  readonly checkMs: number;
  /** How long the smoothed load must stay above `splitQps`, ms. */
  readonly holdMs: number;
  /** The smoothed loads this member keeps (shared with its reports). */
  readonly load: ShardLoad;
  /** Splits the shard holding `key` at `key` (ShardSplits.requestSplit). */
  readonly requestSplit: (key: Uint8Array) => Promise<ShardMap>;
  readonly logger: Logger;
}

/** This member's load-split decisions since it started (/status figures and /metrics). */
export interface LoadSplitCounters {
  /** Splits asked for because a shard's load stayed above --shard-split-qps. */
  decided: number;
  /** Hot shards the key chooser found no useful split key for (one hot key, too few keys). */
  refused: number;
  /** Split requests that failed (the next hold tries again). */
  failed: number;
}

interface HotShard {
  readonly sinceMs: number;
  readonly sampler: KeySampler;
  /** The last refusal logged in this hot period (each reason is logged once). */
  refusal?: string;
}

export class ShardLoadSplits {
  readonly counters: LoadSplitCounters = { decided: 0, refused: 0, failed: 0 };
  private readonly hot = new Map<number, HotShard>();
  private readonly rounds: Rounds;

  constructor(private readonly options: ShardLoadSplitsOptions) {
    this.rounds = new Rounds(options.clock, options.splitQps > 0 ? options.checkMs : 0, () => this.check(), options.logger, 'a shard load check failed; checking again later');
    this.rounds.start();
  }

  /** A request for `key` reached this member's replica of `shard`: sampled while the shard is hot here. */
  offer(shard: number, key: Uint8Array): void {
    if (this.hot.size > 0) this.hot.get(shard)?.sampler.offer(key);
  }

  close(): void {
    this.rounds.stop();
    this.hot.clear();
  }

  /** One check of every shard this member leads (see the file comment). */
  async check(): Promise<void> {
    const { groups, meta, nodeId, load } = this.options;
    const map = meta.group.machine.shardMap;
    if (map === undefined) return;
    const led = new Set<number>();
    for (const shard of map.shards) {
      const hosted = groups.get(shard.id);
      const bounds = hosted?.group.machine.bounds;
      if (this.rounds.isStopped || hosted === undefined || bounds === undefined || hosted.group.state !== 'running' || hosted.group.leader !== nodeId) continue;
      led.add(shard.id);
      const { proposals, reads } = hosted.group.driver.metrics();
      const rate = load.observe(shard.id, proposals + reads, hosted.group.machine.dataGeneration);
      const busy = !sameShardBounds(bounds, shard) || shard.move !== undefined || mergingShard(map, shard.id); // a split, merge or move of it is under way
      if (rate === null || rate <= this.options.splitQps || busy) {
        this.hot.delete(shard.id);
        continue;
      }
      await this.checkHot(shard.id, bounds, rate);
    }
    for (const shard of this.hot.keys()) if (!led.has(shard)) this.hot.delete(shard);
    load.keepOnly(led); // a leadership lost and regained starts afresh (a follower's counters say nothing)
  }

  private async checkHot(shard: number, bounds: ShardBounds, rate: number): Promise<void> {
    const { clock, random, splitQps, holdMs, logger } = this.options;
    const state = this.hot.get(shard);
    if (state === undefined) {
      this.hot.set(shard, { sinceMs: clock.now(), sampler: new KeySampler(random, LOAD_SAMPLE_KEYS) });
      return;
    }
    if (clock.now() - state.sinceMs < holdMs) return;
    const choice = chooseLoadSplitKey(state.sampler.keys(), bounds);
    if (choice.kind === 'refused') {
      this.counters.refused++;
      if (state.refusal !== choice.reason) logger.info({ shard, requestsPerSecond: rate, splitQps, reason: choice.reason }, 'a shard is above --shard-split-qps but no split key would spread its load; not splitting');
      state.refusal = choice.reason;
      state.sampler.clear();
      return;
    }
    this.hot.delete(shard);
    this.counters.decided++;
    logger.info({ shard, requestsPerSecond: rate, splitQps, key: choice.key.toString('hex'), leftShare: choice.leftShare, sampled: state.sampler.offered }, 'a shard stayed above --shard-split-qps: splitting it where its sampled load halves');
    try {
      await this.options.requestSplit(choice.key);
    } catch (error) {
      this.counters.failed++;
      logger.warn({ err: error, shard }, 'a load split could not be committed; the shard is checked again');
    }
  }
}
