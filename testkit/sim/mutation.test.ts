/**
 * The mutation check: each deliberately broken variant of the Raft core
 * (`RaftMutations`, test-only) is switched on alone and must produce a SAFETY
 * violation — found by the ordinary invariant checks or the linearizability
 * checker; nothing in the simulator looks at the flags.
 *
 *   1. Every scripted scenario that claims a mutant catches it, every time
 *      (testdata/*.txt; milliseconds each).
 *   2. The random sweep is searched too, over at most SIM_MUTATION_SEEDS of
 *      the CI sweep's seeds (default 20): the seed that catches it is printed
 *      with its replay command. Not asserted: some classic bugs show in well
 *      under 1% of random seeds (that is why the scenarios exist); a longer
 *      search is `npm run sim -- --seeds N --mutation NAME`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MUTANT_NAMES, type RaftMutations } from '../../src/raft/types.js';
import { SAFETY_KINDS } from './invariants.js';
import { runScenario } from './scenario.js';
import { scenarioFiles } from './scenarios.js';
import { runSimulation } from './simulator.js';
import { sweepSeeds } from './sweep.js';

const RANDOM_SEEDS_MAX = Number(process.env.SIM_MUTATION_SEEDS ?? 20);
const files = scenarioFiles().map((file) => ({ ...file, catches: runScenario(file.text).catches }));

for (const mutant of MUTANT_NAMES) {
  test(`mutant ${mutant} is caught by a safety invariant`, () => {
    const mutations = { [mutant]: true } as RaftMutations;
    const claiming = files.filter((file) => file.catches.includes(mutant));
    assert.ok(claiming.length > 0, `no scenario claims ${mutant}`);
    for (const file of claiming) {
      const violation = runScenario(file.text, mutations).violations[0];
      assert.ok(violation !== undefined, `${mutant} survived scenario ${file.name}`);
      assert.ok(SAFETY_KINDS.includes(violation.kind), `caught by ${violation.kind}, not by a safety invariant`);
      console.log(`mutant ${mutant} caught by scenario ${file.name}: ${violation.kind}: ${violation.message.split('\n')[0]}`);
    }
    const started = performance.now();
    const seeds = sweepSeeds().slice(0, RANDOM_SEEDS_MAX);
    for (const seed of seeds) {
      const violation = runSimulation({ seed, mutations }).violations[0];
      if (violation === undefined) continue;
      assert.ok(SAFETY_KINDS.includes(violation.kind), `seed ${seed} caught ${mutant} by ${violation.kind}, not by a safety invariant`);
      console.log(`mutant ${mutant} also caught at random seed ${seed} (${((performance.now() - started) / 1000).toFixed(1)} s): ${violation.kind}\n  replay: npm run sim -- --seed ${seed} --mutation ${mutant}`);
      return;
    }
    console.log(`mutant ${mutant}: not within the first ${seeds.length} random seeds (the scenarios catch it)`);
  });
}
