/**
 * What the leveldb engine checks in its directory around LevelDB itself, and
 * how LevelDB's errors become catalog errors naming the file:
 *   - `createIfMissingFor(dir)`: LevelDB with `createIfMissing` silently
 *     starts a NEW, empty store when CURRENT is missing and then deletes the
 *     old tables as obsolete (issue #10: 50,000 keys became 2,000). So a new
 *     store is created only in a directory that holds no LevelDB data file at
 *     all; data files without CURRENT refuse to open.
 *   - `translateLevelError`: classic-level's error codes onto the catalog,
 *     keeping the original as the cause; a corruption found while opening
 *     names the file LevelDB was reading (its messages, e.g. "Corruption:
 *     checksum mismatch" for a damaged MANIFEST, do not).
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ImpulseError } from '../../errors.js';
import { corruption } from '../../util/corruption.js';

/**
 * Files that hold (or point at) LevelDB data: the descriptor (MANIFEST-*), tables (*.ldb, *.sst) and
 * write-ahead logs (*.log). LOCK, LOG and LOG.old hold none: a directory with only those is empty.
 */
const DATA_FILE = /^(MANIFEST-[0-9]+|[0-9]+\.(ldb|sst|log))$/;

/**
 * Whether LevelDB may create a new store in `dir`: true when the directory
 * holds no LevelDB data file; false when it holds a store (CURRENT present).
 * Data files without CURRENT: IMPULSE_ERR_ENGINE_CORRUPTION naming the
 * missing CURRENT and what is there. A missing directory counts as empty.
 */
export async function createIfMissingFor(dir: string): Promise<boolean> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return true;
    throw new ImpulseError('IMPULSE_ERR_ENGINE_IO', `listing the LevelDB directory ${dir}: ${(error as Error).message}`, { cause: error });
  }
  const dataFiles = names.filter((name) => DATA_FILE.test(name)).sort();
  if (dataFiles.length === 0) return true;
  if (names.includes('CURRENT')) return false;
  const shown = dataFiles.slice(0, 5).join(', ') + (dataFiles.length > 5 ? `, ... (${dataFiles.length} files)` : '');
  throw corruption(
    'leveldb',
    join(dir, 'CURRENT'),
    `missing, while the directory holds LevelDB data (${shown}); refusing to start a new, empty store over it ` +
      '(CURRENT holds the name of the newest MANIFEST-* file and a newline: restore it, or move the directory away to start empty)',
  );
}

/** classic-level's error (or one it wraps) as a catalog error; `what` says what was being done. */
export function translateLevelError(error: unknown, what: string): ImpulseError {
  if (error instanceof ImpulseError) return error;
  const { code, detail } = levelErrorParts(error, what);
  if (code === 'LEVEL_LOCKED') return new ImpulseError('IMPULSE_ERR_ENGINE_LOCKED', detail, { cause: error });
  if (code === 'LEVEL_CORRUPTION') return new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', detail, { cause: error });
  if (code === 'LEVEL_DATABASE_NOT_OPEN') return new ImpulseError('IMPULSE_ERR_ENGINE_NOT_OPEN', detail, { cause: error });
  return new ImpulseError('IMPULSE_ERR_ENGINE_IO', detail, { cause: error });
}

/**
 * An error from opening LevelDB in `dir`. A corruption names the file it is
 * in: CURRENT when the message says so, else the MANIFEST that CURRENT names
 * (opening reads only those two and replays the logs, whose damage LevelDB
 * skips without paranoid checks). Any other failure to open is an I/O error:
 * never ENGINE_NOT_OPEN, which is what classic-level's wrapper code says.
 */
export async function translateOpenError(error: unknown, dir: string): Promise<ImpulseError> {
  if (error instanceof ImpulseError) return error;
  const { code, detail } = levelErrorParts(error, `opening LevelDB at ${dir}`);
  if (code === 'LEVEL_LOCKED') return new ImpulseError('IMPULSE_ERR_ENGINE_LOCKED', detail, { cause: error });
  if (code !== 'LEVEL_CORRUPTION') return new ImpulseError('IMPULSE_ERR_ENGINE_IO', detail, { cause: error });
  const file = /\bCURRENT\b/.test(detail) ? 'CURRENT' : ((await readFile(join(dir, 'CURRENT'), 'utf8').catch(() => '')).trim() || 'MANIFEST');
  return Object.assign(corruption('leveldb', join(dir, file), detail), { cause: error });
}

/** The specific code (abstract-level wraps open failures: it sits on the cause) and a one-line description. */
function levelErrorParts(error: unknown, what: string): { code: string | undefined; detail: string } {
  const cause = (error as { cause?: { message?: string; code?: string } } | undefined)?.cause;
  const code = cause?.code ?? (error as { code?: string } | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return { code, detail: `${what}: ${message}${cause?.message ? ` (${cause.message})` : ''}` };
}
