/**
 * State-machine snapshots: an image streamed while applies go on equals the
 * state at its applied index; a damaged or incomplete image is refused and
 * leaves nothing behind; staging + install is atomic under a crash at every
 * I/O operation (the old state or the new one, never a mix, never leftovers).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import type { Engine } from '../storage/engine.js';
import { BTreeEngine } from '../storage/btree/btree-engine.js';
import { LsmEngine } from '../storage/lsm/lsm-engine.js';
import { createEngine } from '../storage/registry.js';
import { SeededRandom } from '../util/random.js';
import { NodeVfs } from '../vfs/node-vfs.js';
import type { Vfs } from '../vfs/vfs.js';
import { sweepCrashPoints } from '../../testkit/vfs/crash-harness.js';
import { MemVfs } from '../../testkit/vfs/mem-vfs.js';
import { KvModel } from '../../testkit/kv/model.js';
import { TEST_LIMITS, dumpMachine } from '../../testkit/kv/state-machine-suite.js';
import { SESSIONS } from '../../testkit/kv/workload.js';
import type { KvCommand } from './command.js';
import { DirectoryEngineHome, type EngineHome, MemoryEngineHome } from './engine-home.js';
import { type ApplyEntry, KvStateMachine, engineLimitsFor } from './state-machine.js';

const limits = engineLimitsFor(TEST_LIMITS, SESSIONS);
const CHUNK_BYTES = 2048;

/** Entries that write and rewrite hundreds of keys (several snapshot pages), with the model's dump after each index. */
function bulkScript(count: number): { entries: ApplyEntry[]; dumps: string[][]; model: KvModel } {
  const model = new KvModel(SESSIONS);
  const entries: ApplyEntry[] = [];
  const dumps: string[][] = [model.dump()];
  for (let index = 1; index <= count; index++) {
    const ops: KvCommand['ops'] = Array.from({ length: 8 }, (_, i) => {
      // Entries 1-60 write keys 8-487 (two snapshot pages); later ones delete and add keys across the range.
      const key = Buffer.from(`key-${String(index <= 60 ? index * 8 + i : (index * 53 + i * 7) % 700).padStart(4, '0')}`);
      return (index + i) % 5 === 0 ? { type: 'del' as const, key } : { type: 'put' as const, key, value: Buffer.from(`value-${index}-${i}`) };
    });
    const command: KvCommand = { ops, session: { clientId: `c${index % 3}`, seq: Math.ceil(index / 3) } };
    const entry: ApplyEntry = index % 17 === 0 ? { index, term: 2, type: 'meta', name: 'members', value: Buffer.from(`m${index}`) } : { index, term: 2, type: 'command', command };
    model.apply(entry, entry.type === 'command' ? command : undefined);
    entries.push(entry);
    dumps.push(model.dump());
  }
  return { entries, dumps, model };
}

interface Store {
  home(): EngineHome;
  /** Files in slots that LIVE does not name (must be none after an install or a refused image). */
  leftovers(): Promise<string[]>;
  cleanup(): Promise<void>;
}

function vfsStore(vfs: Vfs, engine: (dir: string, vfs: Vfs) => Engine, dir = 'store'): Store {
  return {
    home: () => new DirectoryEngineHome(vfs, dir, (engineDir) => engine(engineDir, vfs)),
    leftovers: async () => {
      const live = (await vfs.readFile(`${dir}/LIVE`)).toString().split(' ')[0];
      const staged = (await vfs.exists(`${dir}/STAGED`)) ? (await vfs.readFile(`${dir}/STAGED`)).toString().split(' ')[0] : undefined;
      const found: string[] = [];
      for (const name of await vfs.list(dir)) {
        if (name.startsWith('engine-') && name !== live && name !== staged) for (const file of await vfs.list(`${dir}/${name}`)) found.push(`${name}/${file}`);
        if (name.endsWith('.tmp')) found.push(name);
      }
      return found;
    },
    cleanup: async () => undefined,
  };
}

const STORES: Record<string, () => Promise<Store>> = {
  memory: async () => ({ home: () => new MemoryEngineHome(() => createEngine('memory', { limits })), leftovers: async () => [], cleanup: async () => undefined }),
  lsm: async () => vfsStore(new MemVfs({ random: new SeededRandom(1) }), (dir, vfs) => new LsmEngine({ dataDir: dir, vfs, limits, memtableBytes: 8192 })),
  btree: async () => vfsStore(new MemVfs({ random: new SeededRandom(2) }), (dir, vfs) => new BTreeEngine({ dataDir: dir, vfs, limits })),
  leveldb: async () => {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-kv-snapshot-'));
    const store = vfsStore(new NodeVfs(), (engineDir) => createEngine('leveldb', { dataDir: engineDir, limits }), dir);
    return { ...store, cleanup: () => rm(dir, { recursive: true, force: true }) };
  },
};

async function openMachine(store: Store): Promise<KvStateMachine> {
  return KvStateMachine.open({ home: store.home(), limits: TEST_LIMITS, sessions: SESSIONS, chunkBytesMax: CHUNK_BYTES });
}

async function applyInBatches(machine: KvStateMachine, entries: readonly ApplyEntry[], size = 4): Promise<void> {
  for (let at = 0; at < entries.length; at += size) await machine.applyBatch(entries.slice(at, at + size));
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Buffer[]> {
  const all: Buffer[] = [];
  for await (const chunk of chunks) all.push(Buffer.from(chunk));
  return all;
}

async function* replay(chunks: readonly Buffer[]): AsyncGenerator<Uint8Array> {
  yield* chunks;
}

describe('kv state machine snapshots', () => {
  const script = bulkScript(120);
  const at = 60;

  for (const [name, makeStore] of Object.entries(STORES)) {
    it(`${name}: an image streamed while applies go on equals the state at its applied index, and the receiver carries on from there`, async () => {
      const [sourceStore, targetStore] = [await makeStore(), await makeStore()];
      const source = await openMachine(sourceStore);
      const target = await openMachine(targetStore);
      try {
        await applyInBatches(source, script.entries.slice(0, at));
        const image = await source.snapshot();
        assert.equal(image.appliedIndex, at);
        assert.equal(image.appliedTerm, 2);
        // Pull chunks one at a time and apply more entries between pulls: the image must not see them.
        const rest = script.entries.slice(at);
        let applied = 0;
        async function* interleaved(): AsyncGenerator<Uint8Array> {
          for await (const chunk of image.chunks) {
            yield chunk;
            if (applied < rest.length) {
              await source.applyBatch(rest.slice(applied, applied + 6));
              applied += 6;
            }
          }
        }
        const staged = await target.stageSnapshot(interleaved());
        image.release();
        assert.ok(applied >= 12, `only ${applied} entries applied while streaming: the image had too few chunks`);
        assert.notDeepEqual(await dumpMachine(source), script.dumps[at], 'the writes during streaming changed nothing');
        assert.equal(staged.appliedIndex, at);
        assert.deepEqual(staged.metadata.get('members'), Buffer.from('m51'));
        await staged.install();
        assert.equal(target.appliedIndex, at);
        assert.deepEqual(await dumpMachine(target), script.dumps[at]);
        assert.deepEqual(await targetStore.leftovers(), []);
        // The receiver applies the rest of the log itself and agrees with the source.
        await applyInBatches(source, rest.slice(applied));
        await applyInBatches(target, rest);
        assert.deepEqual(await dumpMachine(target), script.dumps[script.entries.length]);
        assert.deepEqual(await dumpMachine(source), script.dumps[script.entries.length]);
      } finally {
        await source.close();
        await target.close();
        await sourceStore.cleanup();
        await targetStore.cleanup();
      }
    });
  }

  it('refuses a damaged, reordered or truncated image, deletes what it staged, and keeps serving the old state', async () => {
    const source = await openMachine(await STORES['memory']!());
    await applyInBatches(source, script.entries.slice(0, at));
    const image = await source.snapshot();
    const chunks = await collect(image.chunks);
    image.release();
    assert.ok(chunks.length >= 4, `${chunks.length} chunks`);
    const targetStore = await STORES['lsm']!();
    const target = await openMachine(targetStore);
    await applyInBatches(target, script.entries.slice(0, 5));
    const flipped = chunks.map((chunk, i) => (i === 1 ? Buffer.from(chunk).fill(0x55, 40, 41) : chunk));
    const variants: Record<string, Buffer[]> = {
      'a flipped byte': flipped,
      'two chunks swapped': [chunks[0]!, chunks[2]!, chunks[1]!, ...chunks.slice(3)],
      'the last chunk missing': chunks.slice(0, -1),
      'a chunk twice': [chunks[0]!, ...chunks],
    };
    for (const [what, variant] of Object.entries(variants)) {
      await assert.rejects(target.stageSnapshot(replay(variant)), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_SNAPSHOT_INVALID'), what);
      assert.deepEqual(await targetStore.leftovers(), [], what);
    }
    assert.equal(target.appliedIndex, 5);
    assert.deepEqual(await dumpMachine(target), script.dumps[5]);
    await source.close();
    await target.close();
  });

  it('aborts an image whose engine snapshot must keep too many overwritten values, and a new one can be taken', async () => {
    const tight = { ...limits, snapshotRetainedBytesMax: 16 * 1024 };
    const machine = await KvStateMachine.open({ home: new MemoryEngineHome(() => createEngine('memory', { limits: tight })), limits: TEST_LIMITS, sessions: SESSIONS, chunkBytesMax: CHUNK_BYTES });
    await applyInBatches(machine, script.entries.slice(0, at));
    const image = await machine.snapshot();
    const chunks = image.chunks[Symbol.asyncIterator]();
    await chunks.next();
    await applyInBatches(machine, script.entries.slice(at)); // rewrites hundreds of keys while the image is open
    await assert.rejects(
      (async () => {
        for (let next = await chunks.next(); !next.done; next = await chunks.next());
      })(),
      (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_SNAPSHOT_ABORTED'),
    );
    image.release();
    const again = await machine.snapshot();
    assert.equal(again.appliedIndex, script.entries.length);
    assert.ok((await collect(again.chunks)).length > 1);
    again.release();
    await machine.close();
  });

  for (const engineName of ['lsm', 'btree'] as const) {
    it(`${engineName}: staging and installing an image is atomic under a crash at every I/O point, a staged image survives until installed, and recovery leaves no leftovers`, async () => {
      const source = await openMachine(await STORES['memory']!());
      await applyInBatches(source, script.entries.slice(0, at));
      const image = await source.snapshot();
      const chunks = await collect(image.chunks);
      image.release();
      await source.close();
      const engine = (dir: string, vfs: Vfs): Engine =>
        engineName === 'lsm' ? new LsmEngine({ dataDir: dir, vfs, limits, memtableBytes: 8192 }) : new BTreeEngine({ dataDir: dir, vfs, limits });
      const summary = await sweepCrashPoints<{ staged: boolean; installed: boolean }>({
        seed: 9,
        maxPoints: 150,
        // 'reorder-dirs': directory changes not yet synced survive in any order (LIVE and STAGED renames, slot deletions).
        modes: ['lose-unsynced', 'torn', 'reorder-dirs'],
        crashDuringRecovery: true,
        newRecord: () => ({ staged: false, installed: false }),
        workload: async (vfs, record) => {
          const machine = await openMachine(vfsStore(vfs, engine));
          await applyInBatches(machine, script.entries.slice(0, 5));
          const staged = await machine.stageSnapshot(replay(chunks));
          record.staged = true;
          await staged.install();
          record.installed = true;
          await machine.close();
        },
        verify: async (vfs, record) => {
          const store = vfsStore(vfs, engine);
          const machine = await openMachine(store);
          try {
            let applied = machine.appliedIndex;
            if (record.installed && (applied !== at || machine.staged !== undefined)) return `the install was acknowledged but the applied index is ${applied}`;
            if (applied !== at && applied > 5) return `applied index ${applied} is neither the old state's nor the image's`;
            if (JSON.stringify(await dumpMachine(machine)) !== JSON.stringify(script.dumps[applied])) return `at applied index ${applied} the contents do not match`;
            const leftovers = await store.leftovers();
            if (leftovers.length > 0) return `leftovers after recovery: ${leftovers.join(', ')}`;
            // A staged image survives until installed: acknowledged staging must be there (or already installed).
            if (record.staged && applied !== at && machine.staged?.appliedIndex !== at) return `the staging was acknowledged but after recovery nothing is staged (applied ${applied})`;
            if (machine.staged !== undefined) {
              await machine.installStaged();
              applied = machine.appliedIndex;
              if (applied !== at || JSON.stringify(await dumpMachine(machine)) !== JSON.stringify(script.dumps[at])) return `installing the staged image after recovery gave applied index ${applied}`;
            }
            return undefined;
          } finally {
            await machine.close();
          }
        },
      });
      assert.ok(summary.points > 50, `only ${summary.points} crash points`);
    });
  }
});
