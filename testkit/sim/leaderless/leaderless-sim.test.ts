/**
 * The leaderless simulator in CI: a sweep of seeds with zero violations, the
 * same-seed-same-trace check, and the mutation check (each deliberately
 * broken coordinator is caught within the sweep's seeds).
 * `SIM_LEADERLESS_SEEDS=N` widens the sweep.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LeaderlessMutations } from '../../../src/leaderless/coordinator.js';
import { runLeaderlessSimulation } from './simulator.js';

const SEEDS = Number(process.env['SIM_LEADERLESS_SEEDS'] ?? 30);
/** Membership seeds (a join and a leave under the clients) cost more each: a smaller sweep; `SIM_LEADERLESS_MEMBERSHIP_SEEDS=N` widens it. */
const MEMBERSHIP_SEEDS = Number(process.env['SIM_LEADERLESS_MEMBERSHIP_SEEDS'] ?? 6);

describe('leaderless simulator', () => {
  it(`sweep: ${SEEDS} seeds, every quorum shape, zero violations`, async () => {
    const failures: string[] = [];
    const totals = { writesOk: 0, readsOk: 0, crashes: 0, hintsDelivered: 0, readRepairs: 0, antiEntropyKeys: 0 };
    const shapes = new Set<string>();
    for (let seed = 1; seed <= SEEDS; seed++) {
      const result = await runLeaderlessSimulation({ seed });
      shapes.add(result.setup.replace(/^\d+ nodes, /, ''));
      for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += result.stats[key];
      for (const violation of result.violations) failures.push(`seed ${seed} (${result.setup}): ${violation.kind}: ${violation.message} (replay: npm run sim -- --mode leaderless --seed ${seed})`);
    }
    console.log(`leaderless sweep: ${SEEDS} seeds, shapes ${[...shapes].join('; ')}, ${JSON.stringify(totals)}`);
    assert.deepEqual(failures, []);
    assert.ok(totals.hintsDelivered > 0 && totals.readRepairs > 0 && totals.antiEntropyKeys > 0 && totals.crashes > 0, 'the sweep exercised hints, read repair, anti-entropy and crashes');
  });

  it('one seed replays exactly: equal trace hashes', async () => {
    const first = await runLeaderlessSimulation({ seed: 7 });
    const second = await runLeaderlessSimulation({ seed: 7 });
    assert.equal(first.traceHash, second.traceHash);
    assert.deepEqual(first.stats, second.stats);
  });

  it(`membership sweep: ${MEMBERSHIP_SEEDS} seeds with a join and a leave under the clients, zero violations, the changes completed`, async () => {
    const failures: string[] = [];
    let changes = 0;
    for (let seed = 1; seed <= MEMBERSHIP_SEEDS; seed++) {
      const result = await runLeaderlessSimulation({ seed, membership: true });
      changes += result.stats.membershipChanges;
      for (const violation of result.violations) failures.push(`seed ${seed} (${result.setup}): ${violation.kind}: ${violation.message} (replay: npm run sim -- --mode leaderless --membership --seed ${seed})`);
    }
    assert.deepEqual(failures, []);
    // Two changes per seed; a change may fail only if a step found no answer after its retries (1% message loss).
    assert.ok(changes >= MEMBERSHIP_SEEDS, `${changes} changes completed over ${MEMBERSHIP_SEEDS} seeds`);
  });

  it('catches the broken handoff "handoffMovesNothing" (handoff-missed) within the membership seeds', async () => {
    for (let seed = 1; seed <= MEMBERSHIP_SEEDS; seed++) {
      const result = await runLeaderlessSimulation({ seed, membership: true, mutations: { handoffMovesNothing: true } });
      if (result.violations.some((violation) => violation.kind === 'handoff-missed')) return;
    }
    assert.fail(`no seed in 1..${MEMBERSHIP_SEEDS} caught handoffMovesNothing`);
  });

  const mutants: [string, LeaderlessMutations, string][] = [
    ['acknowledgeEarly', { acknowledgeEarly: true }, 'stale-read'],
    ['skipReadRepair', { skipReadRepair: true }, 'divergence'],
    ['antiEntropySkipsOddLeaves', { antiEntropySkipsOddLeaves: true }, 'divergence'],
  ];
  for (const [name, mutations, kind] of mutants) {
    it(`catches the broken coordinator "${name}" (${kind}) within the sweep's seeds`, async () => {
      for (let seed = 1; seed <= SEEDS; seed++) {
        const result = await runLeaderlessSimulation({ seed, mutations });
        if (result.violations.some((violation) => violation.kind === kind)) {
          console.log(`${name}: caught by seed ${seed} (${result.setup}); replay: npm run sim -- --mode leaderless --seed ${seed} --mutation ${name}`);
          return;
        }
      }
      assert.fail(`no seed in 1..${SEEDS} caught ${name}`);
    });
  }
});
