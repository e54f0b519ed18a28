/**
 * The base's generic snapshot and per-write sync, on the memory engine (which
 * has no native snapshot). What every engine must do is in the conformance
 * suite (testkit/storage/conformance.ts); this file covers what only the base
 * mechanism does: its bound, and how group commit combines sync requests.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import type { EngineOptions } from './engine.js';
import { DelegatingEngine } from '../../testkit/storage/delegating-engine.js';
import { MemoryEngine } from './memory/memory-engine.js';

const bytes = (text: string): Buffer => Buffer.from(text);

/** A durable-declaring engine that records the `sync` flag of every `_write` the base makes. */
function recordingEngine(options: EngineOptions): { engine: DelegatingEngine; syncs: boolean[] } {
  const syncs: boolean[] = [];
  const engine = new DelegatingEngine({
    ...options,
    durable: true,
    onWrite: async (_ops, sync, apply) => {
      syncs.push(sync);
      await new Promise((resolve) => setImmediate(resolve)); // let writers queue behind this one
      await apply();
    },
  });
  return { engine, syncs };
}

describe('generic snapshot', () => {
  it('aborts a snapshot that must keep more overwritten bytes than its bound, and frees what it kept', async () => {
    const engine = new MemoryEngine({ limits: { snapshotRetainedBytesMax: 4096 } });
    await engine.open();
    for (let i = 0; i < 10; i++) await engine.put(bytes(`k${i}`), Buffer.alloc(500, i));
    const snapshot = await engine.snapshot();
    assert.equal((await snapshot.get(bytes('k3')))?.[0], 3);
    for (let i = 0; i < 5; i++) await engine.put(bytes(`k${i}`), bytes('new')); // ~2.8 KB kept: under the bound
    assert.equal((await snapshot.get(bytes('k4')))?.length, 500);
    for (let i = 5; i < 10; i++) await engine.put(bytes(`k${i}`), bytes('new')); // past 4 KiB
    await assert.rejects(snapshot.range({ limit: 10 }), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_SNAPSHOT_ABORTED'));
    // Writes went on regardless, and a new snapshot works.
    assert.deepEqual(await engine.get(bytes('k9')), bytes('new'));
    const next = await engine.snapshot();
    assert.deepEqual(await next.get(bytes('k9')), bytes('new'));
    await engine.close();
  });

  it('keeps nothing for keys written only after it is released', async () => {
    const engine = new MemoryEngine({ limits: { snapshotRetainedBytesMax: 2048 } });
    await engine.open();
    const snapshot = await engine.snapshot();
    snapshot.release();
    // Without the release these writes would pass the bound; nothing is kept, nothing fails.
    for (let i = 0; i < 20; i++) await engine.put(bytes(`k${i}`), Buffer.alloc(500));
    const other = await engine.snapshot();
    assert.equal((await other.range({ limit: 100 })).length, 20);
    await engine.close();
  });
});

describe('per-write sync in group commit', () => {
  it('syncs a group when any write in it asks for sync, and not otherwise', async () => {
    const { engine, syncs } = recordingEngine({ sync: 'fsync' });
    await engine.open();
    await engine.batch([{ type: 'put', key: bytes('a'), value: bytes('1') }], { sync: false });
    assert.deepEqual(syncs, [false]);
    await new Promise((resolve) => setImmediate(resolve)); // the commit loop has gone idle
    // One write in flight, three queued behind it: the queued ones form one group.
    const first = engine.batch([{ type: 'put', key: bytes('b'), value: bytes('1') }], { sync: false });
    const queued = [
      engine.batch([{ type: 'put', key: bytes('c'), value: bytes('1') }], { sync: false }),
      engine.put(bytes('d'), bytes('1')), // the engine's default: fsync
      engine.batch([{ type: 'put', key: bytes('e'), value: bytes('1') }], { sync: false }),
    ];
    await Promise.all([first, ...queued]);
    assert.deepEqual(syncs, [false, false, true]);
    await engine.close();
  });

  it('never syncs with sync mode none unless a write asks for it', async () => {
    const { engine, syncs } = recordingEngine({ sync: 'none' });
    await engine.open();
    await engine.put(bytes('a'), bytes('1'));
    await engine.batch([{ type: 'put', key: bytes('b'), value: bytes('1') }], { sync: true });
    assert.deepEqual(syncs, [false, true]);
    await engine.close();
  });
});
