/**
 * The CI sweep (every fault shape, zero violations allowed), the determinism
 * check, and the simulated storage's crash model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { SeededRandom } from '../../src/util/random.js';
import type { Entry } from '../../src/raft/types.js';
import { FAULT_KINDS, runSimulation, type FaultKind } from './simulator.js';
import { SimStorage } from './storage.js';
import { sweepSeeds } from './sweep.js';

test('CI sweep: every seed runs with zero invariant or linearizability violations', () => {
  const seeds = sweepSeeds();
  assert.ok(seeds.length >= 500 || process.env.SIM_SWEEP_SEEDS !== undefined, 'the CI sweep covers at least 500 seeds');
  const started = performance.now();
  const faults = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])) as Record<FaultKind, number>;
  const failures: string[] = [];
  let simulatedMs = 0;
  let opsChecked = 0;
  let unknownVerdicts = 0;
  const clusterSizes = new Set<number>();
  let snapshotsInstalled = 0;
  for (const seed of seeds) {
    const result = runSimulation({ seed });
    simulatedMs += result.stats.simulatedMs;
    opsChecked += result.stats.opsChecked;
    snapshotsInstalled += result.stats.snapshotsInstalled;
    clusterSizes.add(result.nodeCount);
    if (result.check?.verdict === 'unknown') unknownVerdicts++;
    for (const kind of FAULT_KINDS) faults[kind] += result.stats.faults[kind];
    for (const violation of result.violations) failures.push(`seed ${seed}: ${violation.kind}: ${violation.message} (replay: npm run sim -- --seed ${seed})`);
  }
  const wallSeconds = (performance.now() - started) / 1000;
  console.log(
    `sweep: ${seeds.length} seeds in ${wallSeconds.toFixed(1)} s wall, ${(simulatedMs / 3_600_000).toFixed(2)} simulated hours, ` +
      `${opsChecked} operations checked, ${unknownVerdicts} checker budget outs, faults ${JSON.stringify(faults)}`,
  );
  assert.deepEqual(failures, []);
  for (const kind of FAULT_KINDS) assert.ok(faults[kind] >= 10, `fault ${kind} injected only ${faults[kind]} times`);
  assert.deepEqual([...clusterSizes].sort(), [3, 5]);
  assert.ok(snapshotsInstalled > 0, 'InstallSnapshot was exercised');
  assert.ok(unknownVerdicts <= seeds.length / 100, `too many checker budget outs: ${unknownVerdicts}`);
});

test('determinism: one seed run twice gives the same trace hash; another seed a different one', () => {
  const first = runSimulation({ seed: 4242 });
  const second = runSimulation({ seed: 4242 });
  assert.equal(first.traceHash, second.traceHash);
  assert.deepEqual(first.stats, second.stats);
  assert.notEqual(runSimulation({ seed: 4243 }).traceHash, first.traceHash);
});

test('the CLI replays a seed line for line (apart from wall-clock lines)', () => {
  const run = (): string[] => {
    const child = spawnSync(process.execPath, ['dist/testkit/sim/cli.js', '--seed', '77'], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    return child.stdout.split('\n').filter((line) => !line.startsWith('wall'));
  };
  const first = run();
  assert.equal(first[0], 'seed 77', 'the seed is printed first');
  assert.deepEqual(run(), first);
});

test('simulated storage: a crash loses unsynced writes and keeps synced ones', () => {
  const entry = (index: number, term: number): Entry => ({ kind: 'normal', index, term, data: new Uint8Array([index]) });
  const storage = new SimStorage();
  storage.writeEntries([entry(1, 1), entry(2, 1)]);
  storage.writeHardState({ term: 1, vote: 1, commit: 1 });
  storage.sync();
  const random = new SeededRandom(1);
  for (let attempt = 0; attempt < 20; attempt++) {
    storage.writeEntries([entry(3, 2)]);
    storage.writeHardState({ term: 2, vote: 3, commit: 3 });
    storage.crash(random);
    const state = storage.load();
    assert.ok(state.entries.length >= 2 && state.entries[1]!.index === 2, 'synced entries survive');
    // Order matters: the hard state is written after the entries, so a surviving commit implies surviving entries.
    if (state.hardState.commit === 3) assert.equal(state.entries.length, 3);
    // Reset to the synced state for the next attempt.
    storage.writeEntries([entry(3, 2)]);
    storage.writeHardState({ term: 1, vote: 1, commit: 1 });
    storage.sync();
    storage.writeEntries([entry(3, 1)]);
    storage.sync();
  }
  assert.ok(storage.lostWrites > 0, 'some writes were lost');
});
