/**
 * Compaction policy: which compaction runs next, and where a flushed table
 * goes. Pure decisions over a `Version`; no I/O (compaction.ts does the work).
 *
 * Leveled, as in LevelDB: a level's score is its table count over
 * `level0CompactionTrigger` (level 0) or its bytes over its target (deeper
 * levels); the highest score >= 1 is compacted next. Level 0 is compacted
 * whole (its tables overlap); a deeper level gives one table, chosen
 * round-robin by key so every part of the level is rewritten in turn.
 */
import type { LsmTuning } from './options.js';
import { type Table, type Version, levelBytes } from './version.js';

/** Tables of `level` to merge with the `overlapping` tables of `level + 1`. */
export interface Compaction {
  readonly level: number;
  readonly inputs: readonly Table[];
  readonly overlapping: readonly Table[];
}

type PickerTuning = Pick<LsmTuning, 'level0CompactionTrigger' | 'level1TargetBytes' | 'levelSizeMultiplier'>;

export class CompactionPicker {
  /** Per level, the largest key of the last table compacted there: the round-robin position. */
  private readonly compactPointers: Array<Buffer | undefined> = [];

  constructor(private readonly tuning: PickerTuning) {}

  /** Size target of `level` (>= 1). */
  levelTargetBytes(level: number): number {
    return this.tuning.level1TargetBytes * Math.pow(this.tuning.levelSizeMultiplier, level - 1);
  }

  /** Whether some level of `version` is over its target (what `pick` would act on). No side effects. */
  due(version: Version): boolean {
    return this.mostUrgentLevel(version.levels) >= 0;
  }

  /**
   * The most urgent compaction (score >= 1) of `version`, or undefined when
   * the tree is within its targets. Advances that level's round-robin
   * position, so call it only for a compaction that is about to run.
   */
  pick(version: Version): Compaction | undefined {
    const levels = version.levels;
    const level = this.mostUrgentLevel(levels);
    if (level < 0) return undefined;
    let inputs: Table[];
    if (level === 0) {
      // All of level 0: its tables overlap, and leaving an older one behind would let it shadow newer data.
      inputs = [...levels[0]!];
    } else {
      const tables = levels[level]!;
      const pointer = this.compactPointers[level];
      const next = pointer === undefined ? undefined : tables.find((table) => Buffer.compare(table.smallest, pointer) > 0);
      inputs = [next ?? tables[0]!];
    }
    let smallest = inputs[0]!.smallest;
    let largest = inputs[0]!.largest;
    for (const table of inputs) {
      if (Buffer.compare(table.smallest, smallest) < 0) smallest = table.smallest;
      if (Buffer.compare(table.largest, largest) > 0) largest = table.largest;
    }
    const overlapping = levels[level + 1]!.filter((table) => Buffer.compare(table.largest, smallest) >= 0 && Buffer.compare(table.smallest, largest) <= 0);
    this.compactPointers[level] = inputs[inputs.length - 1]!.largest;
    return { level, inputs, overlapping };
  }

  /**
   * Where a flushed table with keys [smallest, largest] goes: level 0, unless
   * it overlaps nothing in level 0 and the next level, in which case it may go
   * straight down (at most to level 2), as LevelDB does: sequential loads
   * then skip level-0 compactions. Safe because the table is newer than
   * everything below it and nothing at or above its new level covers its keys.
   */
  levelForFlush(version: Version, table: { readonly smallest: Buffer; readonly largest: Buffer }): number {
    const levels = version.levels;
    const overlaps = (level: number): boolean =>
      levels[level]!.some((other) => Buffer.compare(other.largest, table.smallest) >= 0 && Buffer.compare(other.smallest, table.largest) <= 0);
    if (overlaps(0)) return 0;
    let level = 0;
    while (level < 2 && level + 1 < levels.length - 1 && !overlaps(level + 1)) level++;
    return level;
  }

  /** Bytes over target summed over the levels, plus level 0 when it is at its trigger (for stats). */
  backlogBytes(version: Version): number {
    const levels = version.levels;
    let backlog = 0;
    for (let level = 0; level < levels.length; level++) {
      const bytes = levelBytes(levels[level]!);
      if (level === 0) {
        if (levels[0]!.length >= this.tuning.level0CompactionTrigger) backlog += bytes;
      } else if (level < levels.length - 1) {
        backlog += Math.max(0, bytes - this.levelTargetBytes(level));
      }
    }
    return backlog;
  }

  /** The level with the highest score >= 1, or -1. The last level has no level below to compact into. */
  private mostUrgentLevel(levels: ReadonlyArray<readonly Table[]>): number {
    let bestLevel = -1;
    let bestScore = 1;
    const level0Score = levels[0]!.length / this.tuning.level0CompactionTrigger;
    if (level0Score >= bestScore) {
      bestLevel = 0;
      bestScore = level0Score;
    }
    for (let level = 1; level < levels.length - 1; level++) {
      const score = levelBytes(levels[level]!) / this.levelTargetBytes(level);
      if (score > bestScore) {
        bestLevel = level;
        bestScore = score;
      }
    }
    return bestLevel;
  }
}
