import { runEngineConformance } from '../../../testkit/storage/conformance.js';
import { BTreeEngine } from './btree-engine.js';

// NodeVfs on the suite's temp dir (the default vfs). Small pages would make the suite's
// data span more levels, but the default 4 KiB is what users run, so that is what conformance checks.
runEngineConformance({ name: 'btree', create: (dir, options) => new BTreeEngine({ ...options, dataDir: dir }) });
