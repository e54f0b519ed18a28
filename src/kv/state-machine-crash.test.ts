/**
 * The applied index is stored atomically with what it applied: crash the
 * state machine at every I/O operation (MemVfs, through the generic crash
 * harness), recover, and check that the recovered applied index I and the
 * data agree exactly (contents and revisions = the model after entries 1..I),
 * that nothing acknowledged is lost (I >= the last acknowledged index), and
 * that applying the rest of the log from I + 1 gives the model's results and
 * final state (nothing re-applied, nothing skipped).
 *
 * Two write modes: every batch synced (the single-node service), and batches
 * unsynced with a periodic `flush()` (the Raft driver's way: acknowledged =
 * flushed). On lsm (small memtable: flushes and WAL rotation inside the
 * workload) and btree.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Engine } from '../storage/engine.js';
import { BTreeEngine } from '../storage/btree/btree-engine.js';
import { LsmEngine } from '../storage/lsm/lsm-engine.js';
import type { Vfs } from '../vfs/vfs.js';
import { sweepCrashPoints } from '../../testkit/vfs/crash-harness.js';
import type { MemVfs, RecoverMode } from '../../testkit/vfs/mem-vfs.js';
import { TEST_LIMITS, asModelResult, dumpMachine } from '../../testkit/kv/state-machine-suite.js';
import { KEYS, SESSIONS, type Script, makeScript } from '../../testkit/kv/workload.js';
import { DirectoryEngineHome } from './engine-home.js';
import { KvStateMachine, engineLimitsFor } from './state-machine.js';

type EngineFactory = (dir: string, vfs: Vfs) => Engine;
const limits = engineLimitsFor(TEST_LIMITS, SESSIONS);
const ENGINES: Record<string, EngineFactory> = {
  lsm: (dir, vfs) => new LsmEngine({ dataDir: dir, vfs, limits, memtableBytes: 512 }),
  btree: (dir, vfs) => new BTreeEngine({ dataDir: dir, vfs, limits }),
};

function open(vfs: Vfs, engine: EngineFactory): Promise<KvStateMachine> {
  return KvStateMachine.open({ home: new DirectoryEngineHome(vfs, 'store', (dir) => engine(dir, vfs)), limits: TEST_LIMITS, sessions: SESSIONS });
}

/** What the workload got acknowledged: every entry up to `durable` survives a crash. */
interface Acknowledged {
  durable: number;
}

async function workload(vfs: MemVfs, acknowledged: Acknowledged, script: Script, engine: EngineFactory, mode: 'sync' | 'flush'): Promise<void> {
  const machine = await open(vfs, engine);
  let next = 0;
  for (const [batchNumber, size] of script.batches.entries()) {
    const batch = script.entries.slice(next, next + size);
    next += size;
    await machine.applyBatch(batch, { sync: mode === 'sync' });
    if (mode === 'sync') acknowledged.durable = machine.appliedIndex;
    else if (batchNumber % 3 === 2) {
      await machine.flush();
      acknowledged.durable = machine.durableAppliedIndex;
    }
  }
  await machine.close();
}

async function verify(vfs: MemVfs, acknowledged: Acknowledged, script: Script, engine: EngineFactory): Promise<string | undefined> {
  const machine = await open(vfs, engine);
  try {
    const applied = machine.appliedIndex;
    if (applied < acknowledged.durable) return `applied index ${applied} is below the acknowledged ${acknowledged.durable}: acknowledged entries lost`;
    if (applied > script.entries.length) return `applied index ${applied} is past the log (${script.entries.length} entries)`;
    const contents = await dumpMachine(machine);
    if (JSON.stringify(contents) !== JSON.stringify(script.dumps[applied])) {
      return `at applied index ${applied} the data is ${JSON.stringify(contents)}, the model has ${JSON.stringify(script.dumps[applied])}`;
    }
    // Resume from applied + 1: the results and the end state must be the model's.
    const rest = script.entries.slice(applied);
    const results = rest.length === 0 ? [] : (await machine.applyBatch(rest)).map(asModelResult);
    if (JSON.stringify(results) !== JSON.stringify(script.results.slice(applied))) {
      return `replaying entries ${applied + 1}..${script.entries.length} gave ${JSON.stringify(results)}, the model ${JSON.stringify(script.results.slice(applied))}`;
    }
    const final = await dumpMachine(machine);
    if (JSON.stringify(final) !== JSON.stringify(script.dumps[script.entries.length])) return `after the replay the data is ${JSON.stringify(final)}`;
    return undefined;
  } finally {
    await machine.close();
  }
}

describe('kv state machine under crashes', () => {
  const script = makeScript(11, 36);

  it('the script exercises conditions that fail, session duplicates and expiries (so the sweep tests what it claims)', () => {
    const failed = script.results.filter((result) => !result.ok && 'failed' in result).length;
    const expired = script.results.filter((result) => !result.ok && 'error' in result).length;
    const commands = script.entries.filter((entry) => entry.type === 'command');
    const sessionKeys = new Set(commands.map((entry) => JSON.stringify(entry.command instanceof Uint8Array ? entry.command.length : entry.command.session)));
    assert.ok(failed >= 2, `only ${failed} failed conditions`);
    assert.ok(expired >= 1, `only ${expired} expired sessions`);
    assert.ok(sessionKeys.size > 3);
    assert.ok(KEYS.length > 0);
  });

  const sweep = async (engine: EngineFactory, mode: 'sync' | 'flush', modes: readonly RecoverMode[]): Promise<void> => {
    const summary = await sweepCrashPoints<Acknowledged>({
      seed: 5,
      maxPoints: 120,
      modes,
      newRecord: () => ({ durable: 0 }),
      workload: (vfs, acknowledged) => workload(vfs, acknowledged, script, engine, mode),
      verify: (vfs, acknowledged) => verify(vfs, acknowledged, script, engine),
    });
    assert.ok(summary.points > 20, `only ${summary.points} crash points`);
  };

  for (const [name, engine] of Object.entries(ENGINES)) {
    it(`${name}, every batch synced: after a crash at every I/O point the applied index and the data agree, and replay from it matches the model`, () =>
      sweep(engine, 'sync', ['lose-unsynced', 'torn', 'reorder']));
  }

  // Unsynced applies + flush (what the Raft driver would like to do) need an engine that keeps
  // unsynced writes in order across a power loss (the `_write` contract in src/storage/engine.ts).
  it('btree, unsynced batches + flush, power loss keeping a prefix of unsynced writes: the applied index and the data agree', () =>
    sweep(ENGINES['btree']!, 'flush', ['lose-unsynced', 'torn']));
  // btree: every meta page proves the pages written since the last synced commit, and opening falls back to that commit
  // when they are not all there (src/storage/btree/commit-proof.ts).
  it('btree, unsynced batches + flush, writeback in any order: the applied index and the data agree', () =>
    sweep(ENGINES['btree']!, 'flush', ['reorder', 'reorder-dirs']));
  it('lsm, unsynced batches + flush, power loss keeping a prefix of unsynced writes: the applied index and the data agree', () =>
    sweep(ENGINES['lsm']!, 'flush', ['lose-unsynced', 'torn']));
  it(
    'lsm, unsynced batches + flush, writeback in any order',
    { todo: "lsm's WAL cannot tell a hole left by reordered writeback of unsynced records (in a segment of an fsync-mode engine written with per-write sync off) from damage to synced records, so it refuses to open" },
    () => sweep(ENGINES['lsm']!, 'flush', ['reorder']),
  );
});
