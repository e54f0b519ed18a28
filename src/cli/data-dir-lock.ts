/**
 * One process per data directory, for every engine. `serve` takes the lock
 * `<dataDir>/<engine>.lock` before opening the engine and releases it on every
 * way out (a clean stop, a failed stop, `process.exit`). LevelDB also locks its
 * own directory; our engines (lsm, btree) rely on this one, since the Vfs has
 * no lock primitive.
 *
 * The lock is a directory of claims. A process claims it by creating a file
 * `<pid>.<random>.claim` holding its identity (process-identity.ts: PID, and
 * on Linux the process start time and boot id), and holds it when no OTHER
 * claim belongs to a running process. A claim whose process no longer runs is
 * stale and is deleted, so a node killed with -9 restarts without manual
 * clean-up, also when the old process is a zombie its parent has not reaped
 * yet (common in containers) and when its PID now belongs to another process.
 *
 * Taking it, step by step:
 *   1. Write our identity to a temporary file in the directory and rename it
 *      to our claim: atomic, so no claim is ever seen half-written (an empty
 *      claim can only come from a power loss, and is stale).
 *   2. List the claims. Delete each stale one. If another claim's process
 *      runs, withdraw (delete ours), wait a little and retry; after a few
 *      tries refuse with IMPULSE_ERR_ENGINE_LOCKED naming that process.
 *   3. Otherwise the lock is ours.
 * Why two processes never both hold it: each checks AFTER its claim exists.
 * Of two holders, the one that checked later would have seen the earlier
 * one's claim (created before that one's check, removed only at its release)
 * and withdrawn. Two starters racing may both withdraw; the retries with a
 * random wait settle it, or both refuse, which is safe.
 *
 * Limits: all processes sharing a data directory must share a PID namespace
 * (a PID from another container means nothing here); without /proc (not
 * Linux) a zombie or recycled PID keeps its claim looking alive (delete the
 * claim file after checking; the error names it).
 */
import { randomBytes, randomInt } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { lstat, mkdir, readFile, readdir, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ImpulseError } from '../errors.js';
import { isRunning, selfIdentity, type ProcOptions, type ProcessIdentity } from './process-identity.js';

export interface DataDirLock {
  /** The lock directory. */
  readonly path: string;
  /** Deletes our claim. Idempotent; never rejects. */
  release(): Promise<void>;
  /** `release` for a `process.on('exit')` handler, where nothing asynchronous runs. */
  releaseSync(): void;
}

export interface LockOptions extends ProcOptions {
  /** Tries (at least 1) before refusing while another claim's process runs; the wait between them is random, up to 50 ms. Default 4. */
  readonly attempts?: number;
}

const CLAIM = /^([0-9]+)\.[0-9a-f]+\.claim$/;
const TEMPORARY = /^([0-9]+)\.[0-9a-f]+\.tmp$/;
const RETRY_WAIT_MS_MAX = 50;

/**
 * Takes the lock at `lockPath` (a directory, created if missing) or rejects
 * with IMPULSE_ERR_ENGINE_LOCKED naming the running owner. Other failures
 * (e.g. the parent directory is missing) reject with IMPULSE_ERR_ENGINE_IO.
 */
export async function lockDataDir(lockPath: string, options: LockOptions = {}): Promise<DataDirLock> {
  const self = selfIdentity(options);
  const attempts = Math.max(1, options.attempts ?? 4);
  try {
    await prepareLockDirectory(lockPath, self, options);
    let owner: ProcessIdentity | undefined;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, randomInt(1, RETRY_WAIT_MS_MAX + 1)));
      const claim = await createClaim(lockPath, self);
      owner = await runningRival(lockPath, claim, options);
      if (owner === undefined) return heldLock(lockPath, claim);
      await unlink(join(lockPath, claim)).catch(() => undefined);
    }
    throw new ImpulseError(
      'IMPULSE_ERR_ENGINE_LOCKED',
      `the data directory is in use by process ${owner?.pid ?? '?'} (lock ${lockPath}); stop that process first`,
    );
  } catch (error) {
    if (error instanceof ImpulseError) throw error;
    throw new ImpulseError('IMPULSE_ERR_ENGINE_IO', `cannot take the lock ${lockPath}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Creates the lock directory. A lock FILE at that path is the single-file
 * lock of older versions (its owner's bare PID): refused while that process
 * runs, else replaced by the directory.
 */
async function prepareLockDirectory(lockPath: string, self: ProcessIdentity, options: ProcOptions): Promise<void> {
  const existing = await lstat(lockPath).catch(() => undefined);
  if (existing !== undefined && !existing.isDirectory()) {
    const owner = parseIdentity(await readFile(lockPath, 'utf8').catch(() => ''));
    if (owner !== undefined && owner.pid !== self.pid && isRunning(owner, options)) {
      throw new ImpulseError('IMPULSE_ERR_ENGINE_LOCKED', `the data directory is in use by process ${owner.pid} (lock file ${lockPath}); stop that process first`);
    }
    await unlink(lockPath).catch(() => undefined);
  }
  await mkdir(lockPath, { recursive: true });
}

/** Step 1: our claim's file name. */
async function createClaim(lockPath: string, self: ProcessIdentity): Promise<string> {
  const name = `${process.pid}.${randomBytes(6).toString('hex')}`;
  const temporary = join(lockPath, `${name}.tmp`);
  await writeFile(temporary, JSON.stringify(self) + '\n', { flag: 'wx' });
  await rename(temporary, join(lockPath, `${name}.claim`));
  return `${name}.claim`;
}

/**
 * Step 2: the identity of a running process holding another claim, or
 * undefined when there is none. Deletes stale claims, and temporary files
 * left by processes that no longer run, on the way.
 */
async function runningRival(lockPath: string, ours: string, options: ProcOptions): Promise<ProcessIdentity | undefined> {
  for (const name of await readdir(lockPath)) {
    if (name === ours) continue;
    const temporary = TEMPORARY.exec(name);
    if (temporary !== null) {
      if (!isRunning({ pid: Number(temporary[1]) }, options)) await unlink(join(lockPath, name)).catch(() => undefined);
      continue;
    }
    if (!CLAIM.test(name)) continue;
    const text = await readFile(join(lockPath, name), 'utf8').catch((error: unknown) => {
      if ((error as { code?: string }).code === 'ENOENT') return undefined; // released meanwhile
      throw error;
    });
    if (text === undefined) continue;
    const owner = parseIdentity(text);
    if (owner !== undefined && isRunning(owner, options)) return owner;
    await unlink(join(lockPath, name)).catch(() => undefined);
  }
  return undefined;
}

/** An identity from a claim (a JSON line) or an old lock file (a bare PID); undefined when it is neither (stale). */
function parseIdentity(text: string): ProcessIdentity | undefined {
  const trimmed = text.trim();
  if (/^[0-9]{1,10}$/.test(trimmed)) return validPid(Number(trimmed)) ? { pid: Number(trimmed) } : undefined;
  try {
    const value = JSON.parse(trimmed) as Partial<Record<keyof ProcessIdentity, unknown>>;
    if (typeof value.pid !== 'number' || !validPid(value.pid)) return undefined;
    return {
      pid: value.pid,
      ...(typeof value.startTime === 'string' ? { startTime: value.startTime } : {}),
      ...(typeof value.bootId === 'string' ? { bootId: value.bootId } : {}),
    };
  } catch {
    return undefined;
  }
}

function validPid(pid: number): boolean {
  return Number.isSafeInteger(pid) && pid > 0;
}

function heldLock(lockPath: string, claim: string): DataDirLock {
  const claimPath = join(lockPath, claim);
  let released = false;
  return {
    path: lockPath,
    release: async () => {
      if (released) return;
      released = true;
      await unlink(claimPath).catch(() => undefined);
    },
    releaseSync: () => {
      if (released) return;
      released = true;
      try {
        unlinkSync(claimPath);
      } catch {
        // gone already
      }
    },
  };
}
