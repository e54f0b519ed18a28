/**
 * The coordinator of a transaction across shards (shard-txn.ts) when its
 * commit's answer is lost: the commit applied in the primary's shard, the
 * proposal reported IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN. The coordinator decides
 * by an abort (which loses to the commit) and reads the record — and answers
 * the commit's real revision, kept in the committed record.
 *
 * The shards are real state machines (src/kv/state-machine.ts), one log each;
 * the port proposes into them as a shard group would (one entry, applied, its
 * result the answer) and loses the answer of the commit it is told to.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ImpulseError } from '../errors.js';
import { createEngine } from '../storage/registry.js';
import { TEST_LIMITS } from '../../testkit/kv/state-machine-suite.js';
import { MemoryEngineHome } from '../kv/engine-home.js';
import { KvStateMachine, engineLimitsFor } from '../kv/state-machine.js';
import { type TxnCommand, decodeTxnCommand } from '../kv/txn.js';
import { initialShardMap } from '../shard/shard-map.js';
import { SystemClock } from '../util/clock.js';
import { ShardTxns, type ShardTxnPort } from './shard-txn.js';

const b = (text: string): Buffer => Buffer.from(text);

/**
 * Two real state machines as shards 2 [.., m) and 3 [m, ..) behind a port that proposes into them as a
 * shard group would (one entry, applied, its result the answer). `onApplied` sees each applied command
 * and may throw in place of its answer; `beforeStatus` may throw in place of a record read.
 */
async function twoShards(hooks: { onApplied?(command: TxnCommand, revision: number): void; beforeStatus?(): void }) {
  const map = initialShardMap([b('m')], [1]);
  const machines = new Map<number, KvStateMachine>();
  for (const shard of map.shards) machines.set(shard.id, await KvStateMachine.open({ home: new MemoryEngineHome(() => createEngine('memory', { limits: engineLimitsFor(TEST_LIMITS) })), limits: TEST_LIMITS }));
  const port: ShardTxnPort = {
    map: () => map,
    propose: async (shard, bytes) => {
      const command = decodeTxnCommand(bytes, TEST_LIMITS);
      const machine = machines.get(shard.id)!;
      // Entries before this one move the shard's log on, so its revisions are not the other shard's.
      const [result] = await machine.applyBatch([{ index: machine.appliedIndex + 1, term: 1, type: 'txn', command }]);
      if (!result!.ok) throw 'error' in result! ? result.error : new ImpulseError('IMPULSE_ERR_PRECONDITION_FAILED', 'a condition failed');
      hooks.onApplied?.(command, result!.revision);
      return { revision: result!.revision };
    },
    status: async (shard, txnId) => {
      hooks.beforeStatus?.();
      const record = await machines.get(shard.id)!.txnRecord(txnId);
      return record === undefined ? undefined : { status: record.status, ...(record.revision !== undefined ? { revision: record.revision } : {}) };
    },
    ledLocks: () => [],
    ledRecords: async () => [],
  };
  const close = async (): Promise<void> => {
    for (const machine of machines.values()) await machine.close();
  };
  return { map, machines, port, close };
}

const LOST_ANSWERS = [
  { code: 'IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN', why: 'answers the commit\'s revision, read from the record, not 0' },
  // A refusal that means "no effect" for a commit that applied after all: the record has the last word (the coordinator must not tell its client nothing happened).
  { code: 'IMPULSE_ERR_RAFT_NOT_LEADER', why: 'answers the commit\'s revision when the lost answer came back as a refusal meaning "no effect"' },
] as const;

describe('a transaction across shards whose commit answer was lost', () => {
  for (const { code, why } of LOST_ANSWERS) it(why, async () => {
    const commitRevisions: number[] = [];
    const { map, machines, port, close } = await twoShards({
      onApplied: (command, revision) => {
        if (command.kind !== 'commit') return;
        commitRevisions.push(revision);
        throw new ImpulseError(code, 'the leader changed before the commit was answered (the test loses the answer)');
      },
    });
    // The primary's shard has a longer log than the other: a revision from the wrong shard, or 0, would show.
    const primaryMachine = machines.get(2)!;
    for (let i = 0; i < 5; i++) await primaryMachine.applyBatch([{ index: primaryMachine.appliedIndex + 1, term: 1, type: 'command', command: { ops: [{ type: 'put', key: b(`filler-${i}`), value: b('x') }] } }]);
    const txns = new ShardTxns(port, { nodeId: 1, clock: new SystemClock() });
    try {
      const outcome = await txns.commit({ ops: [{ type: 'put', key: b('a'), value: b('1') }, { type: 'put', key: b('z'), value: b('2') }] }, map);
      assert.equal(commitRevisions.length, 1, 'the commit applied once');
      assert.deepEqual(outcome, { revision: commitRevisions[0] }, 'the answer is the commit entry\'s revision');
      assert.ok(commitRevisions[0]! > 5);
      assert.deepEqual([(await primaryMachine.get(b('a')))?.revision, (await machines.get(3)!.get(b('z')))?.value.toString()], [commitRevisions[0], '2'], 'committed, and resolved in the other shard');
    } finally {
      txns.close();
      await close();
    }
  });
});

describe('a transaction across shards under a session whose record cannot be read after its commit', () => {
  it('answers ok (the write took effect), not the read\'s refusal, and leaves the locks to readers', async () => {
    let committed = false;
    const { map, machines, port, close } = await twoShards({
      onApplied: (command) => {
        if (command.kind === 'commit') committed = true;
      },
      beforeStatus: () => {
        // The primary's replica moved away under the read that follows the commit (process-shard-history.test.ts found it).
        if (committed) throw new ImpulseError('IMPULSE_ERR_UNAVAILABLE', "this member's replica of shard 2 closed under the read (it moved away or merged into its neighbour); retry");
      },
    });
    const txns = new ShardTxns(port, { nodeId: 1, clock: new SystemClock() });
    try {
      const outcome = await txns.commit({ ops: [{ type: 'put', key: b('a'), value: b('1') }, { type: 'put', key: b('z'), value: b('2') }], session: { clientId: 'c1', seq: 1 } }, map);
      assert.ok(committed && outcome.revision > 0, 'the committed write is answered ok');
      assert.equal((await machines.get(2)!.get(b('a')))?.value.toString(), '1', 'applied in the primary\'s shard');
      assert.equal(await machines.get(3)!.get(b('z')), undefined, 'the other shard\'s lock is left for a reader to resolve by the record');
    } finally {
      txns.close();
      await close();
    }
  });
});
