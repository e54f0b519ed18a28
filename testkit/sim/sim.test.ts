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
import { MemLogStore } from './mem-log-store.js';
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
  const totals = { snapshotsInstalled: 0, snapshotsFailed: 0, crashes: 0, crashesWithUnsyncedSave: 0, removedStops: 0, opsOverloaded: 0, coalescedMessages: 0, coalescedHeartbeats: 0 };
  for (const seed of seeds) {
    const result = runSimulation({ seed });
    simulatedMs += result.stats.simulatedMs;
    opsChecked += result.stats.opsChecked;
    for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += result.stats[key];
    clusterSizes.add(result.nodeCount);
    if (result.check?.verdict === 'unknown') unknownVerdicts++;
    for (const kind of FAULT_KINDS) faults[kind] += result.stats.faults[kind];
    for (const violation of result.violations) failures.push(`seed ${seed}: ${violation.kind}: ${violation.message} (replay: npm run sim -- --seed ${seed})`);
  }
  const wallSeconds = (performance.now() - started) / 1000;
  console.log(
    `sweep: ${seeds.length} seeds in ${wallSeconds.toFixed(1)} s wall, ${(simulatedMs / 3_600_000).toFixed(2)} simulated hours, ` +
      `${opsChecked} operations checked, ${unknownVerdicts} checker budget outs, ${JSON.stringify(totals)}, faults ${JSON.stringify(faults)}`,
  );
  assert.deepEqual(failures, []);
  for (const kind of FAULT_KINDS) assert.ok(faults[kind] >= 10, `fault ${kind} injected only ${faults[kind]} times`);
  assert.deepEqual([...clusterSizes].sort(), [1, 3, 5]);
  assert.ok(totals.snapshotsInstalled > 0 && totals.snapshotsFailed > 0, 'snapshot transfers were installed, and some failed');
  assert.ok(totals.crashesWithUnsyncedSave >= totals.crashes / 5, `crashes with a save in flight: ${totals.crashesWithUnsyncedSave} of ${totals.crashes}`);
  assert.ok(totals.removedStops > 0, 'removed nodes learned it and stopped');
  assert.ok(totals.opsOverloaded > 0, 'the overload bounds were hit');
  assert.ok(totals.coalescedMessages > 0 && totals.coalescedHeartbeats >= totals.coalescedMessages, 'heartbeats travelled coalesced, as a real host sends them');
  assert.ok(unknownVerdicts <= seeds.length / 100, `too many checker budget outs: ${unknownVerdicts}`);
});

test('determinism: one seed run twice gives the same trace hash; another seed a different one', () => {
  const first = runSimulation({ seed: 4242 });
  const second = runSimulation({ seed: 4242 });
  assert.equal(first.traceHash, second.traceHash);
  assert.deepEqual(first.stats, second.stats);
  assert.ok(first.stats.events > 1000);
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

test('the in-memory log store: a crash loses unsynced saves (maybe a torn prefix of them) and keeps synced ones', () => {
  const entry = (index: number, term: number): Entry => ({ kind: 'normal', index, term, data: new Uint8Array([index]) });
  const syncs: (() => void)[] = [];
  const store = new MemLogStore({ voters: [1], learners: [] }, (complete) => syncs.push(complete));
  let acknowledged = 0;
  store.save({ snapshot: null, entries: [entry(1, 1), entry(2, 1)], hardState: { term: 1, vote: 1, commit: 1 } }, () => acknowledged++);
  syncs.shift()!();
  assert.equal(acknowledged, 1);
  const random = new SeededRandom(1);
  let lostSomething = false;
  for (let attempt = 0; attempt < 20; attempt++) {
    store.save({ snapshot: null, entries: [entry(3, 2), entry(4, 2)], hardState: { term: 2, vote: 3, commit: 3 } }, () => acknowledged++);
    assert.equal(store.lastIndex(), 4, 'the read side reflects a save at once');
    store.crash(random);
    syncs.length = 0; // completions of the dead process never run
    assert.ok(store.lastIndex() >= 2 && store.term(2) === 1, 'synced entries survive');
    // Order matters: the hard state is written after the entries, so a surviving commit implies surviving entries.
    if (store.hardState().commit === 3) assert.equal(store.lastIndex(), 4);
    if (store.lastIndex() < 4) lostSomething = true;
    // Back to the synced state for the next attempt.
    store.save({ snapshot: null, entries: [entry(3, 1)], hardState: { term: 1, vote: 1, commit: 1 } }, () => acknowledged++);
    syncs.shift()!();
    store.save({ snapshot: null, entries: [], hardState: null }, () => acknowledged++);
    store.compact({ index: 0, term: 0, confState: { voters: [1], learners: [] } }, () => acknowledged++);
    syncs.length = 0;
    store.crash(random);
    assert.equal(store.lastIndex(), 3);
  }
  assert.ok(lostSomething, 'some unsynced writes were lost');
  assert.equal(acknowledged, 21, 'only synced saves were acknowledged');
});
