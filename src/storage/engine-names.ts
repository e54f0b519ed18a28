/**
 * The names `--engine` accepts, and the engine-specific flags of `impulse
 * serve`, in a module that loads no engine: the CLI validates flags and
 * prints help without loading LevelDB or our engines (`registry.ts` builds
 * them and checks it knows exactly these names and modes).
 */
import { ImpulseError } from '../errors.js';
import type { BTreeRecoveryMode } from './btree/recovery.js';
import type { EngineLog } from './engine.js';
import type { WalRecoveryMode } from './lsm/wal-recovery.js';
import type { Vfs } from '../vfs/vfs.js';
import type { RowCacheBudget } from './row-cache.js';

export const ENGINE_NAMES = ['memory', 'leveldb', 'btree', 'lsm'] as const;

export type EngineName = (typeof ENGINE_NAMES)[number];

/** Options only some engines take; each flag-set one names its `impulse serve` flag in `ENGINE_CHOICE_FLAGS`. */
export interface EngineChoices {
  /** lsm (`--wal-recovery`): what open does with a damaged WAL. Default 'tolerate-tail'. */
  readonly walRecovery?: WalRecoveryMode;
  /** btree (`--btree-recovery`): what open does when both copies of a meta slot are damaged. Default 'refuse'. */
  readonly btreeRecovery?: BTreeRecoveryMode;
  /** Where the engines that log (lsm, btree) write what recovery found (and lsm its health changes). Not a flag: serve passes its logger. */
  readonly log?: EngineLog;
  /** The file system the engines that write through the Vfs seam (lsm, btree) use; default the real disk. Not a flag: a leaderless member under `--test-control` passes its fault-injecting disk. */
  readonly vfs?: Vfs;
  /** The row cache budget the engines with a row cache (leveldb, btree) share: one per node (`--row-cache-mib`). Not an engine flag: serve passes one. Absent: each engine has 1 MiB of its own. */
  readonly rowCache?: RowCacheBudget;
}

/** Each operator-set choice: its flag, the values it takes, and the engines that take it. */
export const ENGINE_CHOICE_FLAGS = {
  walRecovery: { flag: '--wal-recovery', values: ['tolerate-tail', 'point-in-time', 'skip-corrupted'], engines: ['lsm'] },
  btreeRecovery: { flag: '--btree-recovery', values: ['refuse', 'previous-commit'], engines: ['btree'] },
} as const satisfies Record<string, { flag: string; values: readonly string[]; engines: readonly EngineName[] }>;

export type EngineChoiceFlag = keyof typeof ENGINE_CHOICE_FLAGS;

/** Throws IMPULSE_ERR_CONFIG_INVALID, naming the flag, when `choices` sets something engine `name` does not take, or a value it does not know. */
export function checkEngineChoices(name: string, choices: EngineChoices): void {
  for (const key of Object.keys(ENGINE_CHOICE_FLAGS) as EngineChoiceFlag[]) {
    const value = choices[key];
    if (value === undefined) continue;
    const { flag, values, engines } = ENGINE_CHOICE_FLAGS[key];
    if (!(engines as readonly string[]).includes(name)) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `${flag} applies to the ${engines.join(', ')} engine only; --engine ${name} does not take it`);
    }
    if (!(values as readonly string[]).includes(value)) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `${flag} must be one of ${values.join(', ')}; got ${JSON.stringify(value)}`);
  }
}
