import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRandom } from '../util/random.js';
import { NodeVfs } from '../vfs/node-vfs.js';
import { MemVfs } from '../../testkit/vfs/mem-vfs.js';
import { TEST_LIMITS, runStateMachineSuite } from '../../testkit/kv/state-machine-suite.js';
import { createEngine } from '../storage/registry.js';
import { BTreeEngine } from '../storage/btree/btree-engine.js';
import { LsmEngine } from '../storage/lsm/lsm-engine.js';
import { DirectoryEngineHome, MemoryEngineHome } from './engine-home.js';
import { engineLimitsFor } from './state-machine.js';

const limits = engineLimitsFor(TEST_LIMITS, { windowSeqs: 4, clientsMax: 2 });

runStateMachineSuite({
  name: 'memory',
  create: async () => ({ home: () => new MemoryEngineHome(() => createEngine('memory', { limits })), durable: false, cleanup: async () => undefined }),
});

// lsm and btree on MemVfs: the same code paths as on disk, without the disk's fsync cost.
runStateMachineSuite({
  name: 'lsm',
  create: async () => {
    const vfs = new MemVfs({ random: new SeededRandom(7) });
    return { home: () => new DirectoryEngineHome(vfs, 'store', (dir) => new LsmEngine({ dataDir: dir, vfs, limits, memtableBytes: 4096 })), durable: true, cleanup: async () => undefined };
  },
});

runStateMachineSuite({
  name: 'btree',
  create: async () => {
    const vfs = new MemVfs({ random: new SeededRandom(7) });
    return { home: () => new DirectoryEngineHome(vfs, 'store', (dir) => new BTreeEngine({ dataDir: dir, vfs, limits })), durable: true, cleanup: async () => undefined };
  },
});

// leveldb writes its own files: a real temporary directory, the home through NodeVfs.
runStateMachineSuite({
  name: 'leveldb',
  propertyRuns: 25,
  create: async () => {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-kv-leveldb-'));
    return {
      home: () => new DirectoryEngineHome(new NodeVfs(), dir, (engineDir) => createEngine('leveldb', { dataDir: engineDir, limits, sync: 'none' })),
      durable: true,
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
});
