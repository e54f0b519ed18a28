/**
 * Builds the single-node service for `impulse serve`: the engine named by
 * --engine in its home under `dataDir` (src/kv/engine-home.ts), the state
 * machine on it, and `LocalKvService` on that.
 */
import type { KvLimits } from '../kv/command.js';
import { DirectoryEngineHome, type EngineHome, MemoryEngineHome } from '../kv/engine-home.js';
import { KvStateMachine, engineLimitsFor } from '../kv/state-machine.js';
import type { SyncMode } from '../storage/engine.js';
import { type EngineChoices, createEngine } from '../storage/registry.js';
import { NodeVfs } from '../vfs/node-vfs.js';
import { LocalKvService } from './local-kv-service.js';

export interface LocalServiceConfig {
  /** An engine name from the registry (--engine). */
  readonly engine: string;
  /** The engine's home directory: LIVE and its slots live here. Unused by the memory engine. */
  readonly dataDir: string;
  readonly sync: SyncMode;
  readonly limits: KvLimits;
  /** Engine-specific options (recovery modes, the log); each must be one the engine takes (registry.ts). */
  readonly engineChoices?: EngineChoices;
  /** Queued write bytes before IMPULSE_ERR_OVERLOADED. Default 256 MiB. */
  readonly writeQueueBytesMax?: number;
}

/** The home for `config.engine`: in memory for an engine that keeps nothing, else a directory. */
export function engineHomeFor(config: LocalServiceConfig): EngineHome {
  const options = { sync: config.sync, limits: engineLimitsFor(config.limits) };
  const choices = config.engineChoices ?? {};
  const probe = createEngine(config.engine, { ...options, dataDir: config.dataDir }, choices); // never opened: only asks what it is
  if (!probe.supports.durable) return new MemoryEngineHome(() => createEngine(config.engine, options, choices));
  // lsm and btree default to NodeVfs, leveldb writes itself: all reach the same real files the home manages.
  return new DirectoryEngineHome(new NodeVfs(), config.dataDir, (dir) => createEngine(config.engine, { ...options, dataDir: dir }, choices));
}

/** Opens (or creates) the store and the service on it. */
export async function openLocalKvService(config: LocalServiceConfig): Promise<LocalKvService> {
  const machine = await KvStateMachine.open({ home: engineHomeFor(config), limits: config.limits });
  return new LocalKvService({ machine, ...(config.writeQueueBytesMax !== undefined ? { writeQueueBytesMax: config.writeQueueBytesMax } : {}) });
}
