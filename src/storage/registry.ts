/**
 * The engines `--engine` can name. Each entry builds an unopened engine; the
 * caller opens it. Adding an engine = one line here plus its folder beside
 * `memory/` and `leveldb/`, and a conformance test that runs the shared suite.
 *
 * Engine-specific choices (`EngineChoices`, engine-names.ts: recovery modes,
 * a log) go only to the engines that take them; `createEngine` refuses a
 * choice the named engine does not take, so a flag is never silently ignored.
 */
import { ImpulseError } from '../errors.js';
import { assert } from '../util/assert.js';
import { ENGINE_CHOICE_FLAGS, ENGINE_NAMES, type EngineChoices, type EngineName, checkEngineChoices } from './engine-names.js';
import type { Engine, EngineOptions } from './engine.js';
import { BTreeEngine } from './btree/btree-engine.js';
import { BTREE_RECOVERY_MODES } from './btree/recovery.js';
import { LevelDbEngine } from './leveldb/leveldb-engine.js';
import { LsmEngine } from './lsm/lsm-engine.js';
import { WAL_RECOVERY_MODES } from './lsm/wal-recovery.js';
import { MemoryEngine } from './memory/memory-engine.js';

export type { EngineChoices } from './engine-names.js';

/** Builds an engine; `choices` were checked against `ENGINE_CHOICE_FLAGS` (an engine takes only its own). */
type EngineFactory = (options: EngineOptions, choices: EngineChoices) => Engine;

const ENGINES: Record<EngineName, EngineFactory> = {
  memory: (options) => new MemoryEngine(options),
  leveldb: (options, { rowCache }) => new LevelDbEngine({ ...options, ...(rowCache !== undefined ? { rowCache } : {}) }),
  btree: (options, { btreeRecovery, log, vfs, rowCache }) => new BTreeEngine({ ...options, ...(rowCache !== undefined ? { rowCache } : {}), ...(btreeRecovery !== undefined ? { recovery: btreeRecovery } : {}), ...(log !== undefined ? { log } : {}), ...(vfs !== undefined ? { vfs } : {}) }),
  lsm: (options, { walRecovery, log, vfs }) => new LsmEngine({ ...options, ...(walRecovery !== undefined ? { walRecovery } : {}), ...(log !== undefined ? { log } : {}), ...(vfs !== undefined ? { vfs } : {}) }),
};

export { ENGINE_NAMES };
assert(Object.keys(ENGINES).join() === ENGINE_NAMES.join(), 'the registry builds exactly the engines engine-names.ts lists');
assert(ENGINE_CHOICE_FLAGS.walRecovery.values.join() === WAL_RECOVERY_MODES.join(), 'engine-names.ts lists the lsm WAL recovery modes');
assert(ENGINE_CHOICE_FLAGS.btreeRecovery.values.join() === BTREE_RECOVERY_MODES.join(), 'engine-names.ts lists the btree recovery modes');

/** Builds the engine called `name` (not yet opened). Unknown names, and choices the engine does not take, are config errors. */
export function createEngine(name: string, options: EngineOptions, choices: EngineChoices = {}): Engine {
  const factory = Object.hasOwn(ENGINES, name) ? ENGINES[name as EngineName] : undefined;
  if (factory === undefined) {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `unknown engine ${JSON.stringify(name)}; choose one of: ${ENGINE_NAMES.join(', ')}`);
  }
  checkEngineChoices(name, choices);
  return factory(options, choices);
}
