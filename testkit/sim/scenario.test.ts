/**
 * The scripted scenarios (testdata/*.txt): with the correct core, no
 * violation and every expectation met; with each mutant a file declares
 * (`# catches:`), a safety violation. A new bug becomes a new file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MUTANT_NAMES, type RaftMutations } from '../../src/raft/types.js';
import { SAFETY_KINDS } from './invariants.js';
import { runScenario } from './scenario.js';
import { scenarioFiles } from './scenarios.js';

const files = scenarioFiles();

test('there are scenario files, and every mutant is claimed by one', () => {
  assert.ok(files.length >= 8);
  const claimed = new Set(files.flatMap((file) => runScenario(file.text).catches));
  for (const mutant of MUTANT_NAMES) assert.ok(claimed.has(mutant), `no scenario catches ${mutant}`);
  for (const name of claimed) assert.ok((MUTANT_NAMES as readonly string[]).includes(name), `unknown mutant ${name}`);
});

for (const file of files) {
  test(`scenario ${file.name}`, () => {
    const correct = runScenario(file.text);
    assert.deepEqual(correct.violations, [], 'the correct core passes');
    assert.deepEqual(correct.failedExpectations, []);
    for (const mutant of correct.catches) {
      const broken = runScenario(file.text, { [mutant]: true } as RaftMutations);
      const violation = broken.violations[0];
      assert.ok(violation !== undefined, `${mutant} survived`);
      assert.ok(SAFETY_KINDS.includes(violation.kind), `${mutant} caught by ${violation.kind}, not a safety invariant`);
    }
  });
}

test('a script error names its line', () => {
  assert.throws(() => runScenario('cluster 3\nfrobnicate 1'), /line 2: unknown command frobnicate/);
  assert.throws(() => runScenario('tick 1'), /line 1: start with a cluster command/);
});
