/**
 * The names `--engine` accepts, in a module that loads no engine: the CLI
 * validates flags and prints help without loading LevelDB or our engines
 * (`registry.ts` builds them and checks it knows exactly these names).
 */
export const ENGINE_NAMES = ['memory', 'leveldb', 'btree', 'lsm'] as const;

export type EngineName = (typeof ENGINE_NAMES)[number];
