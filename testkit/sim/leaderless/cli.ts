/**
 * `npm run sim -- --mode leaderless --seed S` replays one leaderless seed
 * (add --verbose for the whole trace); `--seeds N [--from S]` runs N seeds and
 * prints each failing one with its replay command. Exit code 1 on any
 * violation. Output is a pure function of the arguments except the "wall" line.
 */
import type { LeaderlessMutations } from '../../../src/leaderless/coordinator.js';
import { type LeaderlessSimResult, runLeaderlessSimulation } from './simulator.js';

export const LEADERLESS_MUTATIONS = ['acknowledgeEarly', 'skipReadRepair', 'antiEntropySkipsOddLeaves', 'handoffMovesNothing'] as const;

export interface LeaderlessCliOptions {
  readonly seed?: number;
  readonly seeds?: number;
  readonly from?: number;
  readonly chaosMs?: number;
  readonly quietMs?: number;
  readonly mutation?: string;
  readonly verbose?: boolean;
  readonly membership?: boolean;
}

function replay(seed: number, options: LeaderlessCliOptions): string {
  return `npm run sim -- --mode leaderless${options.membership === true ? ' --membership' : ''} --seed ${seed}${options.mutation !== undefined ? ` --mutation ${options.mutation}` : ''}`;
}

function mutationsOf(options: LeaderlessCliOptions): LeaderlessMutations | undefined {
  if (options.mutation === undefined) return undefined;
  if (!(LEADERLESS_MUTATIONS as readonly string[]).includes(options.mutation)) throw new Error(`unknown leaderless mutation; one of ${LEADERLESS_MUTATIONS.join(', ')}`);
  return { [options.mutation]: true };
}

async function run(seed: number, options: LeaderlessCliOptions, trace?: (line: string) => void): Promise<LeaderlessSimResult> {
  const mutations = mutationsOf(options);
  return runLeaderlessSimulation({
    seed,
    ...(options.chaosMs !== undefined ? { chaosMs: options.chaosMs } : {}),
    ...(options.quietMs !== undefined ? { quietMs: options.quietMs } : {}),
    ...(mutations !== undefined ? { mutations } : {}),
    ...(options.membership === true ? { membership: true } : {}),
    ...(trace !== undefined ? { trace } : {}),
  });
}

function report(result: LeaderlessSimResult, options: LeaderlessCliOptions): void {
  if (result.violations.length === 0) return;
  console.log(`FAILED seed ${result.seed} (${result.setup})`);
  for (const violation of result.violations.slice(0, 10)) console.log(`  ${violation.kind}: ${violation.message}`);
  if (result.violations.length > 10) console.log(`  ... ${result.violations.length - 10} more`);
  console.log(`  replay: ${replay(result.seed, options)}`);
}

/** Runs the command; resolves with the exit code. */
export async function runLeaderlessCli(options: LeaderlessCliOptions, freshSeed: () => number): Promise<number> {
  const started = performance.now();
  if (options.seeds === undefined) {
    const seed = options.seed ?? freshSeed();
    console.log(`seed ${seed}`);
    const result = await run(seed, options, options.verbose === true ? (line) => console.log(line) : undefined);
    console.log(`setup: ${result.setup}`);
    console.log(`stats: ${JSON.stringify(result.stats)}`);
    console.log(`trace hash: ${result.traceHash}`);
    console.log(`wall time: ${(performance.now() - started).toFixed(0)} ms`);
    report(result, options);
    if (result.violations.length === 0) console.log(`seed ${seed}: ok`);
    return result.violations.length > 0 ? 1 : 0;
  }
  const from = options.from ?? freshSeed();
  console.log(`seeds ${from}..${from + options.seeds - 1}`);
  let failed = 0;
  for (let seed = from; seed < from + options.seeds; seed++) {
    const result = await run(seed, options);
    if (result.violations.length > 0) failed++;
    report(result, options);
  }
  console.log(`${options.seeds} seeds, ${failed} with violations`);
  console.log(`wall time: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return failed > 0 ? 1 : 0;
}
