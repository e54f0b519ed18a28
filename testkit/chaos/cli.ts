/**
 * `impulse chaos`: the command-line face of the chaos tester (src/cli/main.ts
 * declares the flags and loads this module with `import()`; product code
 * never imports testkit statically). Validates the flags, runs, prints a
 * progress line while it runs and the verdict at the end.
 *
 * Exit status: 0 when every check holds, 1 when one does not, 2 for bad flags.
 */
import { resolve } from 'node:path';
import { ImpulseError } from '../../src/errors.js';
import { type ChaosOptions, REPLICATION_MODES, type ReplicationMode, runChaos } from './runner.js';
import { NEMESIS_FAMILIES, type NemesisFamily } from './schedule.js';
import { WORKLOAD_NAMES, type WorkloadName, workloadNames } from './workloads.js';

export interface ChaosFlags {
  nodes?: string;
  replication?: string;
  engine?: string;
  duration?: string;
  nemesis?: string;
  seed?: string;
  out?: string;
  workload?: string;
  workers?: string;
  net?: string;
  testBug?: string;
  recoveryBoundMs?: string;
  opTimeoutMs?: string;
  splitKeys?: string;
}

const DURATION_S_MAX = 24 * 3600;

/** Parses `--duration` (30, 30s, 10m, 1h) into seconds. */
export function parseDuration(text: string): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)(s|m|h)?$/.exec(text.trim());
  const value = match === null ? NaN : Number(match[1]) * (match[2] === 'h' ? 3600 : match[2] === 'm' ? 60 : 1);
  if (!(value >= 5 && value <= DURATION_S_MAX)) throw invalid(`--duration must be 5s to 24h (e.g. 30s, 10m); got ${JSON.stringify(text)}`);
  return value;
}

/** Parses `--nemesis` (families, comma-separated; "all": every family the cluster offers — no membership in leaderless or sharded clusters; "none"). */
export function parseNemesis(text: string, withoutMembership = false): NemesisFamily[] {
  if (text === 'all') return NEMESIS_FAMILIES.filter((family) => !withoutMembership || family !== 'membership');
  if (text === 'none' || text === '') return [];
  const families = text.split(',').map((part) => part.trim());
  for (const family of families) if (!(NEMESIS_FAMILIES as readonly string[]).includes(family)) throw invalid(`--nemesis takes ${NEMESIS_FAMILIES.join(', ')}, all or none; got ${JSON.stringify(family)}`);
  return [...new Set(families)] as NemesisFamily[];
}

export function parseChaosFlags(flags: ChaosFlags): ChaosOptions {
  const nodes = Number(flags.nodes ?? '3');
  if (nodes !== 3 && nodes !== 5) throw invalid('--nodes must be 3 or 5');
  const replication = flags.replication ?? 'raft';
  if (!(REPLICATION_MODES as readonly string[]).includes(replication)) throw invalid(`--replication must be ${REPLICATION_MODES.join(' or ')}`);
  const leaderless = replication === 'leaderless';
  const engine = flags.engine ?? 'lsm';
  if (!['lsm', 'btree', 'leveldb'].includes(engine)) throw invalid('--engine must be lsm, btree or leveldb (a member needs a durable engine)');
  const workload = flags.workload ?? 'register';
  if (!(WORKLOAD_NAMES as readonly string[]).includes(workload)) throw invalid(`--workload must be one of ${WORKLOAD_NAMES.join(', ')}`);
  if (!workloadNames(leaderless).includes(workload as WorkloadName)) throw invalid(`--workload ${workload} needs conditional batches, which --replication leaderless does not offer; use ${workloadNames(leaderless).join(' or ')}`);
  const seed = flags.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(flags.seed);
  if (!Number.isSafeInteger(seed) || seed < 0) throw invalid('--seed must be a non-negative integer');
  const workers = Number(flags.workers ?? String(3 * nodes));
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw invalid('--workers must be 1 to 64');
  const network = flags.net ?? 'proxy';
  if (network !== 'proxy' && network !== 'netns') throw invalid('--net must be proxy or netns');
  const splitKeys = flags.splitKeys === undefined ? undefined : flags.splitKeys.split(',').filter((key) => key !== '');
  const nemesis = parseNemesis(flags.nemesis ?? 'kill,pause,partition,link', leaderless || splitKeys !== undefined);
  if (network === 'netns' && nemesis.includes('link')) throw invalid('link faults need --net proxy (netns mode cuts links with iptables only)');
  if (splitKeys !== undefined && leaderless) throw invalid('--split-keys shards a Raft cluster; a leaderless cluster places keys on its ring');
  if (splitKeys !== undefined && splitKeys.length === 0) throw invalid('--split-keys must name at least one key');
  if (splitKeys !== undefined && nemesis.includes('membership')) throw invalid('the membership nemesis replaces members, which a sharded cluster does not offer yet (--join with --split-keys is refused)');
  if (leaderless && nemesis.includes('membership')) throw invalid('the membership nemesis needs membership changes, which --replication leaderless does not offer yet (its members are the --initial-cluster)');
  const opTimeoutMs = Number(flags.opTimeoutMs ?? '2000');
  if (!(opTimeoutMs >= 50 && opTimeoutMs <= 60_000)) throw invalid('--op-timeout-ms must be 50 to 60000');
  const recoveryBoundMs = Number(flags.recoveryBoundMs ?? '15000');
  if (!(recoveryBoundMs >= 100)) throw invalid('--recovery-bound-ms must be at least 100');
  return {
    nodes,
    replication: replication as ReplicationMode,
    engine,
    durationS: parseDuration(flags.duration ?? '30s'),
    nemesis,
    seed,
    workload: workload as WorkloadName,
    workers,
    network,
    recoveryBoundMs,
    opTimeoutMs,
    ...(flags.testBug !== undefined ? { bugs: flags.testBug } : {}),
    ...(splitKeys !== undefined ? { splitKeys } : {}),
    ...(flags.out !== undefined ? { out: resolve(flags.out) } : {}),
  };
}

/** Runs `impulse chaos` with `flags`; returns the exit status. */
export async function chaosCommand(flags: ChaosFlags): Promise<number> {
  let options: ChaosOptions;
  try {
    options = parseChaosFlags(flags);
  } catch (error) {
    process.stderr.write(`impulse chaos: ${(error as Error).message}\n`);
    return 2;
  }
  const tty = process.stderr.isTTY;
  const result = await runChaos({
    ...options,
    log: (line) => process.stderr.write(`${tty ? '\r\x1b[K' : ''}${line}\n`),
    progress: (line) => process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`),
  });
  if (tty) process.stderr.write('\r\x1b[K');
  for (const check of result.checks) {
    process.stdout.write(`${check.ok ? 'ok  ' : 'FAIL'} ${check.name}: ${check.summary}\n`);
    for (const line of check.details) process.stdout.write(`       ${line}\n`);
  }
  process.stdout.write(`${result.valid ? 'VALID' : 'INVALID'} (seed ${options.seed}${result.out !== undefined ? `, results in ${result.out}` : ''})\n`);
  return result.valid ? 0 : 1;
}

function invalid(message: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', message);
}
