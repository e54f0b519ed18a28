/**
 * The mutation check: each deliberately broken variant of the Raft core
 * (`RaftMutations`, test-only) is switched on alone, and the simulator must
 * report a safety violation on one of the CI sweep's seeds. Detection comes
 * from the simulator's ordinary invariant checks and the linearizability
 * checker; nothing in the simulator looks at the flags.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RaftMutations } from '../../src/raft/types.js';
import { runSimulation, type ViolationKind } from './simulator.js';
import { sweepSeeds } from './sweep.js';

const SAFETY: readonly ViolationKind[] = ['election-safety', 'log-matching', 'leader-completeness', 'state-machine-safety', 'linearizability'];

const MUTANTS: readonly (keyof RaftMutations)[] = ['voteNotPersisted', 'commitOlderTermEntries', 'readsWithoutReadIndex', 'appendWithoutConsistencyCheck'];

for (const mutant of MUTANTS) {
  test(`mutant ${mutant} is caught within the CI sweep`, () => {
    const started = performance.now();
    let runs = 0;
    for (const seed of sweepSeeds()) {
      runs++;
      const result = runSimulation({ seed, mutations: { [mutant]: true } });
      const violation = result.violations[0];
      if (violation === undefined) continue;
      console.log(
        `mutant ${mutant} caught at seed ${seed} (${runs} seeds, ${((performance.now() - started) / 1000).toFixed(1)} s): ${violation.kind}: ${violation.message.split('\n')[0]}` +
          `\n  replay: npm run sim -- --seed ${seed} --mutation ${mutant}`,
      );
      assert.ok(SAFETY.includes(violation.kind), `caught by ${violation.kind}, not by a safety invariant`);
      return;
    }
    assert.fail(`mutant ${mutant} survived all ${runs} seeds of the CI sweep`);
  });
}
