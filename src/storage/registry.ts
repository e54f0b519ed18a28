/**
 * The engines `--engine` can name. Each entry builds an unopened engine; the
 * caller opens it. Adding an engine = one line here plus its folder beside
 * `memory/` and `leveldb/`, and a conformance test that runs the shared suite.
 */
import { ImpulseError } from '../errors.js';
import { assert } from '../util/assert.js';
import { ENGINE_NAMES, type EngineName } from './engine-names.js';
import type { Engine, EngineOptions } from './engine.js';
import { BTreeEngine } from './btree/btree-engine.js';
import { LevelDbEngine } from './leveldb/leveldb-engine.js';
import { LsmEngine } from './lsm/lsm-engine.js';
import { MemoryEngine } from './memory/memory-engine.js';

type EngineFactory = (options: EngineOptions) => Engine;

const ENGINES: Record<EngineName, EngineFactory> = {
  memory: (options) => new MemoryEngine(options),
  leveldb: (options) => new LevelDbEngine(options),
  btree: (options) => new BTreeEngine(options),
  lsm: (options) => new LsmEngine(options),
};

export { ENGINE_NAMES };
assert(Object.keys(ENGINES).join() === ENGINE_NAMES.join(), 'the registry builds exactly the engines engine-names.ts lists');

/** Builds the engine called `name` (not yet opened). Unknown names are a config error. */
export function createEngine(name: string, options: EngineOptions): Engine {
  const factory = Object.hasOwn(ENGINES, name) ? ENGINES[name as EngineName] : undefined;
  if (factory === undefined) {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `unknown engine ${JSON.stringify(name)}; choose one of: ${ENGINE_NAMES.join(', ')}`);
  }
  return factory(options);
}
