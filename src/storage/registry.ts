/**
 * The engines `--engine` can name. Each entry builds an unopened engine; the
 * caller opens it. Adding an engine = one line here plus its folder beside
 * `memory/` and `leveldb/`, and a conformance test that runs the shared suite.
 *
 * Engine-specific choices (`EngineChoices`: recovery modes, a log) go only to
 * the engines that take them; `checkEngineChoices` refuses a choice the named
 * engine does not take, so a flag is never silently ignored.
 */
import { ImpulseError } from '../errors.js';
import type { Engine, EngineLog, EngineOptions } from './engine.js';
import { BTREE_RECOVERY_MODES, type BTreeRecoveryMode } from './btree/recovery.js';
import { BTreeEngine } from './btree/btree-engine.js';
import { LevelDbEngine } from './leveldb/leveldb-engine.js';
import { LsmEngine } from './lsm/lsm-engine.js';
import { WAL_RECOVERY_MODES, type WalRecoveryMode } from './lsm/wal-recovery.js';
import { MemoryEngine } from './memory/memory-engine.js';

/** Options only some engines take; each names the `impulse serve` flag that sets it. */
export interface EngineChoices {
  /** lsm (`--wal-recovery`): what open does with a damaged WAL. Default 'tolerate-tail'. */
  readonly walRecovery?: WalRecoveryMode;
  /** btree (`--btree-recovery`): what open does when both copies of a meta slot are damaged. Default 'refuse'. */
  readonly btreeRecovery?: BTreeRecoveryMode;
  /** lsm and btree: where they log what recovery found (and lsm its health changes). Not a flag: serve passes its logger. */
  readonly log?: EngineLog;
}

/** The flag of each choice an operator sets, and the values it takes. */
export const ENGINE_CHOICE_FLAGS = {
  walRecovery: { flag: '--wal-recovery', values: WAL_RECOVERY_MODES },
  btreeRecovery: { flag: '--btree-recovery', values: BTREE_RECOVERY_MODES },
} as const satisfies Record<string, { flag: string; values: readonly string[] }>;

type EngineFactory = (options: EngineOptions, choices: EngineChoices) => Engine;

interface EngineEntry {
  readonly create: EngineFactory;
  /** The flag-set choices this engine takes (the log is offered to all and used by those that log). */
  readonly takes: ReadonlyArray<keyof typeof ENGINE_CHOICE_FLAGS>;
}

const ENGINES: Record<string, EngineEntry> = {
  memory: { create: (options) => new MemoryEngine(options), takes: [] },
  leveldb: { create: (options) => new LevelDbEngine(options), takes: [] },
  btree: {
    create: (options, { btreeRecovery, log }) => new BTreeEngine({ ...options, ...(btreeRecovery !== undefined ? { recovery: btreeRecovery } : {}), ...(log !== undefined ? { log } : {}) }),
    takes: ['btreeRecovery'],
  },
  lsm: {
    create: (options, { walRecovery, log }) => new LsmEngine({ ...options, ...(walRecovery !== undefined ? { walRecovery } : {}), ...(log !== undefined ? { log } : {}) }),
    takes: ['walRecovery'],
  },
};

export const ENGINE_NAMES: readonly string[] = Object.keys(ENGINES);

/** Builds the engine called `name` (not yet opened). Unknown names, and choices the engine does not take, are config errors. */
export function createEngine(name: string, options: EngineOptions, choices: EngineChoices = {}): Engine {
  checkEngineChoices(name, choices);
  return engineEntry(name).create(options, choices);
}

/** Throws IMPULSE_ERR_CONFIG_INVALID, naming the flag, when `choices` sets something engine `name` does not take or an unknown value. */
export function checkEngineChoices(name: string, choices: EngineChoices): void {
  const entry = engineEntry(name);
  for (const key of Object.keys(ENGINE_CHOICE_FLAGS) as Array<keyof typeof ENGINE_CHOICE_FLAGS>) {
    const value = choices[key];
    if (value === undefined) continue;
    const { flag, values } = ENGINE_CHOICE_FLAGS[key];
    if (!entry.takes.includes(key)) {
      const takers = ENGINE_NAMES.filter((engine) => ENGINES[engine]!.takes.includes(key));
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `${flag} applies to the ${takers.join(', ')} engine only; --engine ${name} does not take it`);
    }
    if (!(values as readonly string[]).includes(value)) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `${flag} must be one of ${values.join(', ')}; got ${JSON.stringify(value)}`);
  }
}

function engineEntry(name: string): EngineEntry {
  const entry = Object.hasOwn(ENGINES, name) ? ENGINES[name] : undefined;
  if (entry === undefined) {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `unknown engine ${JSON.stringify(name)}; choose one of: ${ENGINE_NAMES.join(', ')}`);
  }
  return entry;
}
