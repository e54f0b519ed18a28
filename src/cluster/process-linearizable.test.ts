/**
 * Linearizability of a real three-member cluster under leader faults: eight
 * clients run gets, puts and conditional puts (unique values) on three hot
 * keys through every member while the leader is killed (kill -9, then
 * restarted) — and, in a second run, paused with SIGSTOP past the election
 * timeout and resumed, when it still believes it leads. The recorded history
 * goes to `checkKvLinearizability` (testkit/check). Writes whose outcome is
 * unknown (no answer, a timeout, IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN) are
 * recorded as such; requests refused before anything happened are left out.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { checkKvLinearizability, formatOperations } from '../../testkit/check/linearizability.js';
import { History } from '../../testkit/cluster/process-history.js';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';

async function runAndCheck(fault: (cluster: ProcessCluster, leader: number) => Promise<void>): Promise<{ operations: number; completed: number }> {
  const cluster = await ProcessCluster.start(3);
  try {
    const leader = await cluster.waitForLeader();
    const history = new History(cluster, { keys: ['x', 'y', 'z'], clients: 8, members: 3 });
    const running = history.run();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await fault(cluster, leader);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    history.stop();
    await running;
    const result = checkKvLinearizability(history.operations);
    if (result.verdict === 'not-linearizable') assert.fail(`not linearizable on key ${result.key}: ${result.explanation}\n${formatOperations(result.operations)}`);
    assert.equal(result.verdict, 'linearizable', JSON.stringify(result));
    const completed = history.operations.filter((operation) => operation.return !== undefined).length;
    assert.ok(completed > 100, `only ${completed} operations completed`);
    return { operations: history.operations.length, completed };
  } finally {
    await cluster.close();
  }
}

describe('linearizability of a process cluster under leader faults', () => {
  after(() => undefined);

  it('kill -9 of the leader (then its restart): the history is linearizable', async (t) => {
    const { operations, completed } = await runAndCheck(async (cluster, leader) => {
      await cluster.kill(leader);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await cluster.start(leader);
    });
    t.diagnostic(`${operations} operations, ${completed} completed`);
  });

  it('SIGSTOP of the leader past the election timeout, then SIGCONT: the history is linearizable', async (t) => {
    const { operations, completed } = await runAndCheck(async (cluster, leader) => {
      cluster.signal(leader, 'SIGSTOP');
      await new Promise((resolve) => setTimeout(resolve, 2500));
      cluster.signal(leader, 'SIGCONT');
    });
    t.diagnostic(`${operations} operations, ${completed} completed`);
  });
});
