import { runEngineConformance } from '../../../testkit/storage/conformance.js';
import { NodeVfs } from '../../vfs/node-vfs.js';
import { LsmEngine } from './lsm-engine.js';

// Small memtables and tables so the suite's workloads cross flushes and compactions too.
runEngineConformance({
  name: 'lsm',
  create: (dir, options) => new LsmEngine({ ...options, dataDir: dir, vfs: new NodeVfs(), memtableBytes: 64 * 1024, tableTargetBytes: 32 * 1024, level1TargetBytes: 128 * 1024 }),
  propertyRuns: 40,
  // On the real disk a block that is not cached is read with readSync: getSync never declines.
  readsSync: true,
});
