/**
 * Who a process is, and whether it still runs, for the data-directory lock.
 *
 * A PID alone does not identify a process: after its owner dies the PID may be
 * given to another process (PID reuse; in a container the server is often
 * PID 1 on every start), and a killed process whose parent has not reaped it
 * yet (a zombie) still answers `kill(pid, 0)`. So on Linux an identity is the
 * PID, the process's start time (field 22 of /proc/<pid>/stat, clock ticks
 * since boot) and the boot id (/proc/sys/kernel/random/boot_id; start times
 * restart at every boot), and a process counts as running only if
 * /proc/<pid>/stat exists, is not in state Z (zombie) or X (dead), and has the
 * recorded start time and boot.
 *
 * Elsewhere (no /proc) an identity is the PID alone and "running" means
 * `kill(pid, 0)` succeeds or fails with EPERM: a zombie or a recycled PID then
 * looks alive, which errs on the side of refusing to start.
 */
import { readFileSync } from 'node:fs';

export interface ProcessIdentity {
  /** A positive integer. */
  readonly pid: number;
  /** Start time in clock ticks since boot (a decimal string: it can exceed 2^53 in theory). Linux only. */
  readonly startTime?: string;
  /** /proc/sys/kernel/random/boot_id. Linux only. */
  readonly bootId?: string;
}

/** Where /proc is; tests pass a directory that does not exist to exercise the fallback. */
export interface ProcOptions {
  readonly procRoot?: string;
}

/** The identity of the process `pid` as /proc shows it now, or undefined when /proc has no such process or no /proc. */
export function identityOf(pid: number, options: ProcOptions = {}): (ProcessIdentity & { readonly state: string }) | undefined {
  const procRoot = options.procRoot ?? '/proc';
  const stat = readText(`${procRoot}/${pid}/stat`);
  if (stat === undefined) return undefined;
  // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so split after the LAST ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const startTime = fields[19]; // field 22 of the line; fields[0] is field 3
  if (state === undefined || startTime === undefined || !/^[0-9]+$/.test(startTime)) return undefined;
  const bootId = readText(`${procRoot}/sys/kernel/random/boot_id`)?.trim();
  return { pid, state, startTime, ...(bootId ? { bootId } : {}) };
}

/** The identity to record for process `pid` now: PID, start time and boot id from /proc, or the PID alone without /proc. */
export function recordedIdentity(pid: number, options: ProcOptions = {}): ProcessIdentity {
  const identity = identityOf(pid, options);
  if (identity === undefined) return { pid };
  return { pid, startTime: identity.startTime, ...(identity.bootId !== undefined ? { bootId: identity.bootId } : {}) };
}

/** This process's identity (see `recordedIdentity`). */
export function selfIdentity(options: ProcOptions = {}): ProcessIdentity {
  return recordedIdentity(process.pid, options);
}

/** True when /proc is readable (Linux); then `isRunning` can see zombies and recycled PIDs. */
export function hasProcfs(options: ProcOptions = {}): boolean {
  return identityOf(process.pid, options) !== undefined;
}

/**
 * Whether the process `owner` describes still runs (see the module comment):
 * with /proc, the same PID, not a zombie, the same start time and boot when
 * those were recorded; without, `kill(pid, 0)`.
 */
export function isRunning(owner: ProcessIdentity, options: ProcOptions = {}): boolean {
  if (!hasProcfs(options)) return signalReaches(owner.pid);
  const current = identityOf(owner.pid, options);
  if (current === undefined) return false;
  if (current.state === 'Z' || current.state === 'X' || current.state === 'x') return false;
  if (owner.bootId !== undefined && current.bootId !== undefined && owner.bootId !== current.bootId) return false;
  return owner.startTime === undefined || owner.startTime === current.startTime;
}

function signalReaches(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

/** The file's text, or undefined when it (or the process it describes) does not exist; other errors throw. */
function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ESRCH' || code === 'ENOTDIR') return undefined;
    throw error;
  }
}
