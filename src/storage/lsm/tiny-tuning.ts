/**
 * Tuning for tests only: sizes so small that a few dozen writes cross several
 * flushes and compactions into level 2, so crash and error sweeps over a
 * short workload exercise all of the background work.
 */
import type { LsmTuning } from './options.js';

export const TINY_TUNING: Readonly<Partial<LsmTuning>> = Object.freeze({
  memtableBytes: 1024,
  tableTargetBytes: 1024,
  blockBytes: 256,
  level0CompactionTrigger: 2,
  level0StopWritesTrigger: 4,
  level1TargetBytes: 2048,
  levelSizeMultiplier: 2,
  levelCount: 4,
});
