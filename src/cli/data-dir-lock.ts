/**
 * One process per data directory, for every engine. `serve` takes
 * `<dataDir>/<engine>.lock` before opening the engine: the file is created
 * exclusively and holds the owner's PID. A lock whose PID no longer runs (the
 * owner was killed with -9) is stale and taken over, so a crashed node restarts
 * without manual clean-up. LevelDB also locks its own directory; our engines
 * (lsm, btree) rely on this one, since the Vfs has no lock primitive.
 *
 * Limits: two processes racing for the same stale lock in the same instant may
 * both pass; a recycled PID keeps a stale lock looking alive (remove the file).
 */
import { open, readFile, unlink } from 'node:fs/promises';
import { ImpulseError } from '../errors.js';

export interface DataDirLock {
  readonly path: string;
  release(): Promise<void>;
}

export async function lockDataDir(lockPath: string): Promise<DataDirLock> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(lockPath, 'wx');
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return {
        path: lockPath,
        release: async () => {
          await unlink(lockPath).catch(() => undefined);
        },
      };
    } catch (error) {
      if ((error as { code?: string }).code !== 'EEXIST') throw error;
    }
    const owner = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
    if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && isRunning(owner)) {
      throw new ImpulseError('IMPULSE_ERR_ENGINE_LOCKED', `the data directory is in use by process ${owner} (lock file ${lockPath})`);
    }
    await unlink(lockPath).catch(() => undefined); // stale: its owner is gone
  }
  throw new ImpulseError('IMPULSE_ERR_ENGINE_LOCKED', `cannot take the lock file ${lockPath}: another process keeps taking it`);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}
