#!/usr/bin/env node
/**
 * `npm run sim -- --seed S`   replays one seed exactly (add --verbose for the full trace).
 * `npm run sim -- --seeds N`  runs N seeds (from --from, default a fresh random base), with a
 *                             progress bar on a terminal and a summary table; exits 1 on any violation.
 *
 * Output is a pure function of the arguments except the lines starting with
 * "wall" (wall-clock timings), so two runs of one seed print the same lines.
 */
import { Command, InvalidArgumentError } from 'commander';
import { freshSeed } from '../../src/util/random.js';
import { MUTANT_NAMES, type RaftMutations } from '../../src/raft/types.js';
import { FAULT_KINDS, runSimulation, type FaultKind, type SimOptions, type SimResult } from './simulator.js';
import { runLeaderlessCli } from './leaderless/cli.js';

const MUTATIONS: readonly string[] = MUTANT_NAMES;

function integer(value: string): number {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return parsed;
}

interface CliOptions {
  seed?: number;
  seeds?: number;
  from?: number;
  nodes?: number;
  chaosMs?: number;
  quietMs?: number;
  mutation?: string;
  verbose?: boolean;
  mode?: string;
  membership?: boolean;
}

function simOptions(seed: number, options: CliOptions, trace?: (line: string) => void): SimOptions {
  let mutations: RaftMutations | undefined;
  if (options.mutation !== undefined) {
    if (!MUTATIONS.includes(options.mutation)) throw new InvalidArgumentError(`unknown mutation; one of ${MUTATIONS.join(', ')}`);
    mutations = { [options.mutation]: true };
  }
  return {
    seed,
    ...(options.nodes === 1 || options.nodes === 3 || options.nodes === 5 ? { nodeCount: options.nodes } : {}),
    ...(options.chaosMs !== undefined ? { chaosMs: options.chaosMs } : {}),
    ...(options.quietMs !== undefined ? { quietMs: options.quietMs } : {}),
    ...(mutations !== undefined ? { mutations } : {}),
    ...(trace !== undefined ? { trace } : {}),
  };
}

function replayHint(seed: number, options: CliOptions): string {
  const extra = [
    options.nodes !== undefined ? `--nodes ${options.nodes}` : '',
    options.chaosMs !== undefined ? `--chaos-ms ${options.chaosMs}` : '',
    options.quietMs !== undefined ? `--quiet-ms ${options.quietMs}` : '',
    options.mutation !== undefined ? `--mutation ${options.mutation}` : '',
  ].filter((part) => part.length > 0);
  return `npm run sim -- --seed ${seed}${extra.length > 0 ? ' ' + extra.join(' ') : ''}`;
}

function printFailure(result: SimResult, options: CliOptions): void {
  console.log(`FAILED seed ${result.seed} (${result.setup})`);
  for (const violation of result.violations) console.log(`  ${violation.kind} at ${violation.atMs.toFixed(3)} ms: ${violation.message}`);
  console.log(`  replay: ${replayHint(result.seed, options)}`);
}

function runOne(seed: number, options: CliOptions): number {
  console.log(`seed ${seed}`);
  const started = performance.now();
  const result = runSimulation(simOptions(seed, options, options.verbose ? (line) => console.log(line) : undefined));
  const wallMs = performance.now() - started;
  console.log(`setup: ${result.setup}`);
  const stats = result.stats;
  const faults = FAULT_KINDS.filter((kind) => stats.faults[kind] > 0)
    .map((kind) => `${kind}=${stats.faults[kind]}`)
    .join(' ');
  console.log(`faults: ${faults || 'none'}`);
  console.log(
    `simulated ${stats.simulatedMs.toFixed(0)} ms, ${stats.events} events, ${stats.messagesSent} messages (${stats.messagesDropped} dropped; ${stats.coalescedMessages} coalesced heartbeat messages carrying ${stats.coalescedHeartbeats}), ` +
      `${stats.elections} leaders elected, ${stats.compactions} compactions, snapshots ${stats.snapshotsSent} sent / ${stats.snapshotsFailed} failed / ${stats.snapshotsInstalled} installed`,
  );
  console.log(`crashes: ${stats.crashes} (${stats.crashesWithUnsyncedSave} with a save in flight), ${stats.removedStops} removed nodes stopped`);
  console.log(
    `operations: ${stats.opsOk} ok, ${stats.opsUnknown} unknown outcome, ${stats.opsRejected} rejected (${stats.opsOverloaded} overloaded); ${stats.opsChecked} checked`,
  );
  console.log(`linearizability: ${result.check?.verdict ?? 'not checked (violation first)'}`);
  console.log(`trace hash: ${result.traceHash}`);
  console.log(`wall time: ${wallMs.toFixed(0)} ms`);
  if (result.violations.length > 0) {
    printFailure(result, options);
    return 1;
  }
  console.log(`seed ${seed}: ok`);
  return 0;
}

function runMany(count: number, options: CliOptions): number {
  const from = options.from ?? freshSeed();
  console.log(`seeds ${from}..${from + count - 1}`);
  const tty = process.stderr.isTTY === true;
  const started = performance.now();
  const faults = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])) as Record<FaultKind, number>;
  const violationsByKind = new Map<string, number>();
  let simulatedMs = 0;
  let opsChecked = 0;
  let unknownVerdicts = 0;
  let failedSeeds = 0;
  const sizes = new Map<number, number>();
  let crashes = 0;
  let crashesUnsynced = 0;
  for (let i = 0; i < count; i++) {
    const seed = from + i;
    const result = runSimulation(simOptions(seed, options));
    simulatedMs += result.stats.simulatedMs;
    opsChecked += result.stats.opsChecked;
    sizes.set(result.nodeCount, (sizes.get(result.nodeCount) ?? 0) + 1);
    crashes += result.stats.crashes;
    crashesUnsynced += result.stats.crashesWithUnsyncedSave;
    if (result.check?.verdict === 'unknown') unknownVerdicts++;
    for (const kind of FAULT_KINDS) faults[kind] += result.stats.faults[kind];
    if (result.violations.length > 0) {
      failedSeeds++;
      for (const violation of result.violations) violationsByKind.set(violation.kind, (violationsByKind.get(violation.kind) ?? 0) + 1);
      if (tty) process.stderr.write('\n');
      printFailure(result, options);
    }
    if (tty && (i % 5 === 0 || i === count - 1)) {
      const width = 30;
      const filled = Math.round(((i + 1) / count) * width);
      process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${i + 1}/${count} seeds, ${failedSeeds} failing`);
    }
  }
  if (tty) process.stderr.write('\n');
  const rows: [string, string][] = [
    ['seeds', `${count} (${[...sizes.entries()].sort(([a], [b]) => a - b).map(([size, n]) => `${n} with ${size} node${size === 1 ? '' : 's'}`).join(', ')})`],
    ['simulated hours', (simulatedMs / 3_600_000).toFixed(3)],
    ...FAULT_KINDS.map((kind): [string, string] => [`faults: ${kind}`, String(faults[kind])]),
    ['crashes (with a save in flight)', `${crashes} (${crashesUnsynced})`],
    ['operations checked', String(opsChecked)],
    ['checker verdict unknown (budget)', String(unknownVerdicts)],
    ['seeds with violations', String(failedSeeds)],
    ...[...violationsByKind.entries()].map(([kind, n]): [string, string] => [`  violations: ${kind}`, String(n)]),
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  console.log('summary');
  for (const [name, value] of rows) console.log(`  ${name.padEnd(width)}  ${value}`);
  console.log(`wall time: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return failedSeeds > 0 ? 1 : 0;
}

const program = new Command()
  .name('sim')
  .description('Deterministic Raft cluster simulator with fault injection, invariant checks and a linearizability check')
  .option('--seed <S>', 'run (replay) exactly this seed', integer)
  .option('--seeds <N>', 'run N consecutive seeds and print a summary', integer)
  .option('--from <S>', 'first seed for --seeds (default: a fresh random seed, printed)', integer)
  .option('--nodes <n>', 'initial cluster size, 1, 3 or 5 (default: chosen by the seed)', integer)
  .option('--chaos-ms <ms>', 'virtual milliseconds of faults (default 3000)', integer)
  .option('--quiet-ms <ms>', 'virtual milliseconds after healing (default 1500)', integer)
  .option('--mutation <name>', `TEST-ONLY: run a deliberately broken core (${MUTATIONS.join(', ')})`)
  .option('--verbose', 'print the whole trace (with --seed)')
  .option('--mode <mode>', 'raft (default) or leaderless (testkit/sim/leaderless/)')
  .option('--membership', 'leaderless mode: after the chaos, a member joins and another leaves under the clients')
  .action((options: CliOptions) => {
    if (options.seed !== undefined && options.seeds !== undefined) throw new InvalidArgumentError('give --seed or --seeds, not both');
    if (options.mode === 'leaderless') {
      void runLeaderlessCli(options, freshSeed).then((code) => (process.exitCode = code));
      return;
    }
    if (options.mode !== undefined && options.mode !== 'raft') throw new InvalidArgumentError('--mode must be raft or leaderless');
    if (options.seeds !== undefined) process.exitCode = runMany(options.seeds, options);
    else process.exitCode = runOne(options.seed ?? freshSeed(), options);
  });

program.parse();
