/**
 * The chaos tester catches real bugs: each deliberate bug of
 * src/test-hooks/bugs.ts (`impulse serve --test-bug NAME`) planted in every
 * member of a short seeded run must make the verdict INVALID, through the
 * checks named here. The seed that caught each is in the test's name;
 * `impulse chaos --test-bug NAME --nemesis partition --seed 10 --duration 15s`
 * (with each test's nemesis, seed and workload) replays the schedule
 * (docs/chaos.md, "Does it catch bugs?").
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ChaosOptions, describeFailure, runChaos } from './runner.js';

async function caught(bugs: string, expectedChecks: readonly string[], extra: Partial<ChaosOptions> = {}): Promise<void> {
  const options: ChaosOptions = { nodes: 3, replication: 'raft', engine: 'lsm', durationS: 15, nemesis: ['partition'], seed: 10, workload: 'register', bugs, ...extra };
  const result = await runChaos(options);
  const failed = result.checks.filter((check) => !check.ok).map((check) => check.name);
  assert.equal(result.valid, false, `the ${bugs} bug slipped through seed ${options.seed}`);
  for (const name of expectedChecks) assert.ok(failed.includes(name), `expected ${name} among the failed checks; ${describeFailure(result, options)}`);
}

describe('chaos: the tester catches planted bugs (real processes)', { concurrency: false }, () => {
  it('no-check-quorum (an isolated leader keeps serving reads) is caught by seed 10 (partitions): not linearizable', async () => {
    await caught('no-check-quorum', ['linearizable']);
  });

  // A plain partition leaves a deposed leader only the gap between the new leader's election and its
  // own check-quorum step-down (often none); a slow clock on the isolated leader stretches it to seconds.
  it('no-read-index (a deposed leader serves reads until it steps down) is caught by seed 25 (clock: the leader slowed and isolated, twice; 300 ms client timeouts): not linearizable', async () => {
    // 300 ms client timeouts: the old leader's clients give up their stuck writes quickly and read again.
    await caught('no-read-index', ['linearizable'], { nemesis: ['clock'], seed: 25, opTimeoutMs: 300 });
  });

  // With the register workload a lost write is only sometimes visible to linearizability (a later
  // write on the majority side hides it); the set workload's final read misses every lost add.
  it('ack-before-majority (writes acknowledged before a majority holds them) is caught by seed 10 (partitions, set workload): acknowledged adds lost, replicas diverge', async () => {
    await caught('ack-before-majority', ['no-lost-writes', 'convergence'], { workload: 'set' });
  });
});

describe('chaos: the tester catches planted bugs in leaderless clusters (real processes)', { concurrency: false }, () => {
  // Acknowledged by one replica, a put is missing from a read quorum of the other two until it is replicated
  // (at once without faults, not at all across a partition): the quorum-reads check sees it; repair hides it at the end.
  it('ack-before-w (a put acknowledged once the coordinating replica holds it, whatever W) is caught by seed 10 (partitions, causal register), 8 s: reads miss acknowledged puts', async () => {
    await caught('ack-before-w', ['quorum-reads'], { replication: 'leaderless', durationS: 8 });
  });

  // The killed member misses the adds made while it is down; the set's final read is a range read (no read
  // repair), so only anti-entropy brings them, and it skips half of the ring.
  it('anti-entropy-skips-range (half the ring never repaired) is caught by seed 4 (kill -9 of the first member, set workload), 8 s: replicas never converge', async () => {
    await caught('anti-entropy-skips-range', ['convergence'], { replication: 'leaderless', nemesis: ['kill'], seed: 4, workload: 'set', durationS: 8 });
  });

  // Concurrent puts from nine clients on five hot keys are enough: no fault is needed.
  it('overwrite-concurrent (a put supersedes siblings its client never saw) is caught by seed 10 with no faults (causal register), 6 s: acknowledged puts lost', async () => {
    await caught('overwrite-concurrent', ['no-lost-writes'], { replication: 'leaderless', nemesis: [], durationS: 6 });
  });
});
