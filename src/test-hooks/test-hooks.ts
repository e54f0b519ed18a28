/**
 * TEST-ONLY hooks of `impulse serve` for the chaos tester (testkit/chaos/,
 * docs/chaos.md). Every hook is off unless its flag is given; none changes
 * what a member does when it is on but idle. A member with any of them logs a
 * warning at start, so a production log shows it.
 *
 *   --test-dial-via T=V,...   dial V where the address book says T (a proxy per directed link)   dial-via.ts
 *   --test-control            commands on stdin: clock faults (a FaultClock in place of the
 *                             SystemClock) and disk faults (a FaultVfs around the NodeVfs)    control.ts
 *   --test-bug NAME,...       deliberate bugs the chaos tester must catch                      bugs.ts
 *
 * `serve` wires them with one line: `openMember({ ..., ...(await openTestHooks(...)) })`
 * (a leaderless member: `openLeaderlessMember`, which takes the same clock, vfs
 * and socket factory, and the leaderless bugs as `leaderlessMutations`).
 * The disk hook is test tooling (testkit/vfs/fault-vfs.ts); product code never
 * imports testkit statically, so it is loaded with `import()` only when
 * `--test-control` is given.
 */
import type { Logger } from 'pino';
import type { LeaderlessMutations } from '../leaderless/coordinator.js';
import type { SocketFactory } from '../transport/socket-factory.js';
import type { HostPort } from '../transport/socket-factory.js';
import { type Clock, SystemClock } from '../util/clock.js';
import { configInvalid } from '../util/config-values.js';
import type { Vfs } from '../vfs/vfs.js';
import { type RaftOverrides, type TestBugs, parseTestBugs } from './bugs.js';
import { type DiskFaultControl, listenForControl } from './control.js';
import { DialViaSocketFactory, parseDialVia } from './dial-via.js';
import { FaultClock } from './fault-clock.js';

export interface TestHookFlags {
  testDialVia?: string;
  testControl?: boolean;
  testBug?: string;
}

export interface TestHookConfig {
  readonly dialVia: ReadonlyMap<string, HostPort> | undefined;
  readonly control: boolean;
  readonly bugs: TestBugs | undefined;
}

/** What the member is built with instead of the defaults (spread into `openMember`'s options). */
export interface TestHookOptions {
  readonly clock?: Clock;
  readonly vfs?: Vfs;
  readonly socketFactory?: SocketFactory;
  readonly raftOverrides?: RaftOverrides;
  /** A leaderless member's deliberate bugs (its coordinator's test-only mutations). */
  readonly leaderlessMutations?: LeaderlessMutations;
}

/** The hooks asked for, validated for a member of `mode`; undefined when none is. Throws IMPULSE_ERR_CONFIG_INVALID on a bad value. */
export function parseTestHooks(flags: TestHookFlags, isMember: boolean, mode: 'raft' | 'leaderless' = 'raft'): TestHookConfig | undefined {
  if (flags.testDialVia === undefined && flags.testControl !== true && flags.testBug === undefined) return undefined;
  if (!isMember) throw configInvalid('the --test-* hooks are for cluster members (--node-id)');
  return {
    dialVia: flags.testDialVia === undefined ? undefined : parseDialVia(flags.testDialVia),
    control: flags.testControl === true,
    bugs: flags.testBug === undefined ? undefined : parseTestBugs(flags.testBug, mode),
  };
}

/** Builds the hooks of `config` (none when undefined). `baseVfs` is the disk the member would use. */
export async function openTestHooks(config: TestHookConfig | undefined, baseVfs: Vfs, seed: number, logger: Logger, baseSockets?: SocketFactory): Promise<TestHookOptions> {
  if (config === undefined) return {};
  logger.warn({ dialVia: config.dialVia?.size ?? 0, control: config.control, bugs: config.bugs?.names ?? [] }, 'TEST-ONLY hooks are on: this member is for testing, not for data');
  let clock: FaultClock | undefined;
  let vfs: Vfs | undefined;
  if (config.control) {
    clock = new FaultClock(new SystemClock());
    const disk = await loadDiskFaults(baseVfs, seed);
    vfs = disk.vfs;
    listenForControl(process.stdin, { clock, disk, logger });
  }
  return {
    ...(clock !== undefined ? { clock } : {}),
    ...(vfs !== undefined ? { vfs } : {}),
    ...(config.dialVia !== undefined ? { socketFactory: new DialViaSocketFactory(config.dialVia, baseSockets) } : {}),
    ...(config.bugs !== undefined ? { raftOverrides: config.bugs.overrides } : {}),
    ...(config.bugs !== undefined && Object.keys(config.bugs.leaderless).length > 0 ? { leaderlessMutations: config.bugs.leaderless } : {}),
  };
}

interface DiskFaultsModule {
  createDiskFaults(inner: Vfs, seed: number): DiskFaultControl & { readonly vfs: Vfs };
}

async function loadDiskFaults(inner: Vfs, seed: number): Promise<DiskFaultControl & { readonly vfs: Vfs }> {
  const url = new URL('../../testkit/chaos/disk-faults.js', import.meta.url).href;
  let module: DiskFaultsModule;
  try {
    module = (await import(url)) as DiskFaultsModule;
  } catch (error) {
    throw configInvalid(`--test-control needs the test tooling (testkit/chaos/disk-faults.js), which this installation lacks: ${(error as Error).message}`);
  }
  return module.createDiskFaults(inner, seed);
}
