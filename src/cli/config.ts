/**
 * `impulse serve` configuration: parsed from flags, validated up front, so a
 * bad value stops the program with one clear sentence before anything starts.
 */
import { resolve } from 'node:path';
import { type ClusterConfig, type ClusterFlags, parseClusterConfig } from '../cluster/config.js';
import { type TestHookConfig, type TestHookFlags, parseTestHooks } from '../test-hooks/test-hooks.js';
import { DEFAULT_LIMITS, type EngineLimits, type SyncMode } from '../storage/engine.js';
import { ENGINE_NAMES, type EngineChoices, checkEngineChoices } from '../storage/engine-names.js';
import { type LeaderlessConfig, type LeaderlessFlags, parseLeaderlessConfig } from '../leaderless/config.js';
import { configInvalid as invalid, integerValue as integer } from '../util/config-values.js';
import { type SecurityConfig, type SecurityFlags, parseSecurityConfig } from './security-config.js';

export const DEFAULT_ENGINE = 'lsm';
export const DEFAULT_PORT = 7070;
export const DEFAULT_HOST = '127.0.0.1';
/** --row-cache-mib's default: the node's row caches together. */
export const DEFAULT_ROW_CACHE_MIB = 16;

export interface ServeConfig {
  readonly port: number;
  readonly host: string;
  readonly engine: string;
  /** The engine keeps its files in `<dataDir>/<engine>`, so engines never share files. */
  readonly dataDir: string;
  readonly sync: SyncMode;
  readonly limits: EngineLimits;
  readonly logLevel: string;
  /** Engine-specific flags (--wal-recovery, --btree-recovery), checked against the engine. */
  readonly engineChoices: EngineChoices;
  /**
   * --row-cache-mib, in bytes: the one budget the row caches of every engine
   * this node opens share (leveldb and btree cache point reads; a member with a
   * thousand shards has a thousand engines). 0 turns the caches off.
   */
  readonly rowCacheBytes: number;
  /** The Redis protocol port (--resp-port); absent: no RESP server. Listens on `host`. */
  readonly respPort?: number;
  /** Present with --node-id: this node is a Raft member (src/cluster/config.ts). */
  readonly cluster?: ClusterConfig;
  /** --chaos-results: a directory of chaos runs the dashboard lists (absolute). */
  readonly chaosResultsDir?: string;
  /** Present with --replication leaderless (a cluster member that is leaderless instead of Raft). */
  readonly leaderless?: LeaderlessConfig;
  /** Tokens, TLS, protected mode (security-config.ts). */
  readonly security: SecurityConfig;
  /** TEST-ONLY hooks (src/test-hooks/), present only when a --test-* flag was given. */
  readonly testHooks?: TestHookConfig;
  /**
   * --stop-on-stdin-close: stop as on SIGTERM once standard input ends. A
   * supervisor that holds the other end of the pipe (`impulse cluster`) then
   * never leaves this node running after it dies, kill -9 included: the kernel
   * closes the pipe of a process that is gone.
   */
  readonly stopOnStdinClose: boolean;
}

export interface ServeFlags extends ClusterFlags, SecurityFlags, TestHookFlags, LeaderlessFlags {
  port?: string;
  host?: string;
  engine?: string;
  dataDir?: string;
  sync?: string;
  keyBytesMax?: string;
  valueBytesMax?: string;
  batchOpsMax?: string;
  logLevel?: string;
  chaosResults?: string;
  walRecovery?: string;
  btreeRecovery?: string;
  respPort?: string;
  stopOnStdinClose?: boolean;
  rowCacheMib?: string;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function parseServeConfig(flags: ServeFlags): ServeConfig {
  const port = integer('--port', flags.port ?? String(DEFAULT_PORT), 0, 65535);
  const host = flags.host ?? DEFAULT_HOST;
  if (host.length === 0) throw invalid('--host must not be empty');
  const engine = flags.engine ?? DEFAULT_ENGINE;
  if (!(ENGINE_NAMES as readonly string[]).includes(engine)) throw invalid(`--engine must be one of ${ENGINE_NAMES.join(', ')}; got ${JSON.stringify(engine)}`);
  const sync = flags.sync ?? 'fsync';
  if (sync !== 'fsync' && sync !== 'none') throw invalid(`--sync must be fsync or none; got ${JSON.stringify(sync)}`);
  const logLevel = flags.logLevel ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) throw invalid(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const limits: EngineLimits = {
    ...DEFAULT_LIMITS,
    // 64 KiB less the key-value layer's one-byte key prefix, and within the btree's 65,535-byte keys.
    keyBytesMax: integer('--key-bytes-max', flags.keyBytesMax ?? String(DEFAULT_LIMITS.keyBytesMax), 1, 64 * 1024 - 2),
    valueBytesMax: integer('--value-bytes-max', flags.valueBytesMax ?? String(DEFAULT_LIMITS.valueBytesMax), 0, 512 * 1024 * 1024),
    batchOpsMax: integer('--batch-ops-max', flags.batchOpsMax ?? String(DEFAULT_LIMITS.batchOpsMax), 1, 1_000_000),
  };
  // Typed by the check: it refuses any value outside the engine's modes.
  const engineChoices = {
    ...(flags.walRecovery !== undefined ? { walRecovery: flags.walRecovery } : {}),
    ...(flags.btreeRecovery !== undefined ? { btreeRecovery: flags.btreeRecovery } : {}),
  } as EngineChoices;
  checkEngineChoices(engine, engineChoices);
  const rowCacheBytes = integer('--row-cache-mib', flags.rowCacheMib ?? String(DEFAULT_ROW_CACHE_MIB), 0, 1024 * 1024) * 1024 * 1024;
  const respPort = flags.respPort === undefined ? undefined : integer('--resp-port', flags.respPort, 0, 65535);
  if (respPort !== undefined && respPort !== 0 && respPort === port) throw invalid(`--resp-port ${respPort} is the HTTP --port; give each its own`);
  const cluster = parseClusterConfig(flags, host, port, flags.tlsCert !== undefined ? 'https' : 'http');
  const security = parseSecurityConfig(flags, host, cluster?.peerHost);
  if (cluster !== undefined) {
    if (engine === 'memory') throw invalid('--engine memory keeps nothing across a restart, which a cluster member cannot do (its Raft log and votes outlive its state); use lsm, btree or leveldb');
    if (sync === 'none') throw invalid('a cluster member always fsyncs its Raft log; --sync none is for a single node');
  }
  if (flags.chaosResults !== undefined && flags.chaosResults.length === 0) throw invalid('--chaos-results must name a directory');
  const leaderless = parseLeaderlessConfig(flags, cluster?.initialCluster.size);
  const testHooks = parseTestHooks(flags, cluster !== undefined, leaderless !== undefined ? 'leaderless' : 'raft');
  if (leaderless !== undefined && cluster !== undefined && cluster.splitKeys.length > 0) {
    throw invalid('--split-keys shards a Raft cluster; --replication leaderless places keys on a consistent-hash ring instead');
  }
  return {
    port, host, engine, dataDir: resolve(flags.dataDir ?? 'data'), sync, limits, logLevel, engineChoices, security,
    stopOnStdinClose: flags.stopOnStdinClose === true,
    rowCacheBytes,
    ...(respPort !== undefined ? { respPort } : {}),
    ...(cluster !== undefined ? { cluster } : {}),
    ...(testHooks !== undefined ? { testHooks } : {}),
    ...(flags.chaosResults !== undefined ? { chaosResultsDir: resolve(flags.chaosResults) } : {}),
    ...(leaderless !== undefined ? { leaderless } : {}),
  };
}
