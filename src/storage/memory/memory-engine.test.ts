import { runEngineConformance } from '../../../testkit/storage/conformance.js';
import { MemoryEngine } from './memory-engine.js';

runEngineConformance({ name: 'memory', create: (dir, options) => new MemoryEngine({ ...options, dataDir: dir }), readsSync: true });
