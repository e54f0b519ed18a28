/**
 * Fault policies from a flag string, for chaos runs and real-disk tests
 * (e.g. a test-only `impulse serve --vfs-faults '<spec>'` that loads this
 * module with `import()`; product code never imports testkit statically).
 *
 * Grammar (whitespace around tokens is ignored; an empty spec means no faults):
 *
 *   spec      := rule (',' rule)*
 *   rule      := [target '-'] action ['@' condition ('&' condition)*]
 *   target    := group ('+' group)*          which operations (default: all)
 *   group     := read | write | fsync | sync | syncdir | meta | all | <operation>
 *   action    := error | eio | <errno> | crash | latency=<duration>
 *   condition := p=<probability> | op=<index> | from=<index>
 *   duration  := <number>ms | <number>s | <number>us
 *
 *   read    = file.read, readFile          write = file.write, file.truncate
 *   fsync   = file.sync, syncDir           sync = file.sync    syncdir = syncDir
 *   meta    = open, rename, unlink, list, mkdir, exists, size, file.size, file.close
 *   <operation> is any operation name itself, e.g. file.sync or rename.
 *   <errno> is an errno name such as enospc, emfile or edquot (error = eio).
 *   op=N does the action at operation N only, from=N from operation N on
 *   (indexes count ALL operations of the vfs, from 0); p=P with probability
 *   P (0..1) per matching operation, drawn from a seeded Random. op excludes
 *   the other conditions; from and p combine.
 *
 * Examples:
 *   fsync-error@p=0.01              1% of file and directory fsyncs fail with EIO
 *   latency=5ms                     every operation takes 5 ms longer (a slow disk)
 *   write+fsync-latency=20ms@p=0.1  10% of writes and fsyncs take 20 ms longer
 *   write-enospc@from=5000          the disk is full from operation 5000 on
 *   sync-crash@op=120               the disk vanishes at operation 120 (if it is a file.sync)
 *   fsync-latency=50ms,fsync-error@p=0.001   slow fsyncs, and rarely a failed one
 *
 * Rules are tried in order for each operation: latencies add up, the first
 * error or crash decides (see fault-policy.ts).
 */
import { ImpulseError } from '../../src/errors.js';
import { SeededRandom, type Random } from '../../src/util/random.js';
import type { Vfs } from '../../src/vfs/vfs.js';
import {
  VFS_OPERATIONS,
  always,
  delay,
  onIndex,
  onlyOperations,
  startingAt,
  withProbability,
  type FaultAction,
  type FaultPolicy,
  type VfsOperation,
} from './fault-policy.js';
import { FaultVfs, type FaultVfsOptions } from './fault-vfs.js';

const GROUPS: Readonly<Record<string, readonly VfsOperation[]>> = {
  read: ['file.read', 'readFile'],
  write: ['file.write', 'file.truncate'],
  fsync: ['file.sync', 'syncDir'],
  sync: ['file.sync'],
  syncdir: ['syncDir'],
  meta: ['open', 'rename', 'unlink', 'list', 'mkdir', 'exists', 'size', 'file.size', 'file.close'],
  all: VFS_OPERATIONS,
};

/** Longest spec accepted, and most rules in one: a flag, not a program. */
const SPEC_LENGTH_MAX = 4096;
const RULES_MAX = 32;

/**
 * Parses `spec` (grammar in the module comment) into policies, in rule order.
 * Rule i draws from the i-th fork of `random`, so appending a rule does not
 * change the draws of the rules before it. A malformed spec throws
 * `ImpulseError('IMPULSE_ERR_CONFIG_INVALID')` naming the rule and what is wrong.
 */
export function parseFaultSpec(spec: string, random: Random): FaultPolicy[] {
  if (spec.length > SPEC_LENGTH_MAX) throw invalid(spec, `longer than ${SPEC_LENGTH_MAX} characters`);
  const rules = spec.split(',').map((rule) => rule.trim());
  if (rules.length === 1 && rules[0] === '') return [];
  if (rules.length > RULES_MAX) throw invalid(spec, `more than ${RULES_MAX} rules`);
  return rules.map((rule) => parseRule(rule, random.fork()));
}

/** `new FaultVfs(inner, parseFaultSpec(spec, new SeededRandom(seed)), options)`: the one call a test-only flag needs. */
export function faultVfsFromSpec(inner: Vfs, spec: string, options: FaultVfsOptions & { readonly seed: number }): FaultVfs {
  return new FaultVfs(inner, parseFaultSpec(spec, new SeededRandom(options.seed)), options);
}

function parseRule(rule: string, random: Random): FaultPolicy {
  if (rule === '') throw invalid(rule, 'empty rule');
  const [head = '', conditionText, extra] = rule.split('@').map((part) => part.trim());
  if (extra !== undefined) throw invalid(rule, "more than one '@'");
  const dash = head.indexOf('-');
  const targetText = dash < 0 ? undefined : head.slice(0, dash).trim();
  const action = parseAction(rule, (dash < 0 ? head : head.slice(dash + 1)).trim());
  const conditions = parseConditions(rule, conditionText);
  let policy: FaultPolicy;
  if (conditions.op !== undefined) {
    if (conditions.p !== undefined || conditions.from !== undefined) throw invalid(rule, 'op= cannot be combined with p= or from=');
    policy = onIndex(conditions.op, action);
  } else {
    policy = conditions.p === undefined ? always(action) : withProbability(conditions.p, random, action);
    if (conditions.from !== undefined) policy = startingAt(conditions.from, policy);
  }
  return targetText === undefined ? policy : onlyOperations(parseTarget(rule, targetText), policy);
}

function parseTarget(rule: string, text: string): VfsOperation[] {
  const operations = new Set<VfsOperation>();
  for (const name of text.split('+').map((part) => part.trim().toLowerCase())) {
    const group = GROUPS[name] ?? (VFS_OPERATIONS.find((operation) => operation.toLowerCase() === name) as VfsOperation | undefined);
    if (group === undefined) throw invalid(rule, `unknown operation or group ${JSON.stringify(name)} (groups: ${Object.keys(GROUPS).join(', ')})`);
    for (const operation of typeof group === 'string' ? [group] : group) operations.add(operation);
  }
  return [...operations];
}

function parseAction(rule: string, text: string): FaultAction {
  const lower = text.toLowerCase();
  if (lower === 'error' || lower === 'eio') return 'error';
  if (lower === 'crash') return 'crash';
  if (lower.startsWith('latency=')) return delay(parseDuration(rule, lower.slice('latency='.length)));
  if (/^e[a-z]{2,15}$/.test(lower)) return { errno: lower.toUpperCase() };
  throw invalid(rule, `unknown action ${JSON.stringify(text)} (error, eio, an errno such as enospc, crash, or latency=<duration>)`);
}

function parseDuration(rule: string, text: string): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)(us|ms|s)$/.exec(text.trim());
  if (match === null) throw invalid(rule, `bad duration ${JSON.stringify(text)} (e.g. 5ms, 0.5ms, 200us, 1s)`);
  const value = Number(match[1]);
  const ms = match[2] === 's' ? value * 1000 : match[2] === 'us' ? value / 1000 : value;
  if (ms > 60_000) throw invalid(rule, 'a latency above 60 s is not a slow disk but a hung one; use crash');
  return ms;
}

function parseConditions(rule: string, text: string | undefined): { p?: number; op?: number; from?: number } {
  const conditions: { p?: number; op?: number; from?: number } = {};
  if (text === undefined) return conditions;
  for (const condition of text.split('&').map((part) => part.trim())) {
    const [name = '', value = ''] = condition.split('=').map((part) => part.trim());
    if (name !== 'p' && name !== 'op' && name !== 'from') throw invalid(rule, `unknown condition ${JSON.stringify(condition)} (p=, op=, from=)`);
    if (conditions[name] !== undefined) throw invalid(rule, `${name}= given twice`);
    if (name === 'p') {
      const p = /^(0|1|0?\.[0-9]+|1\.0+)$/.test(value) ? Number(value) : NaN;
      if (!(p >= 0 && p <= 1)) throw invalid(rule, `p must be a probability from 0 to 1; got ${JSON.stringify(value)}`);
      conditions.p = p;
    } else {
      if (!/^[0-9]{1,15}$/.test(value)) throw invalid(rule, `${name} must be an operation index (a non-negative integer); got ${JSON.stringify(value)}`);
      conditions[name] = Number(value);
    }
  }
  return conditions;
}

function invalid(rule: string, problem: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `fault spec rule ${JSON.stringify(rule)}: ${problem}`);
}
