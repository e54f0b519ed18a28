/**
 * The file-system seam. Every byte impulse's own engines (lsm, btree) and the
 * Raft log write to disk goes through a `Vfs`, never through node:fs directly,
 * so the same code runs on the real disk (`NodeVfs`) and on the in-memory,
 * fault-injecting one (`MemVfs`) that crash tests and the simulator use.
 *
 * Durability model (POSIX, as the ALICE study describes it):
 *   - `VfsFile.write` reaches the file's volatile state; only `VfsFile.sync`
 *     makes the file's CONTENTS durable.
 *   - creating, renaming and unlinking change the directory; only
 *     `Vfs.syncDir(dir)` makes those NAME changes durable.
 *   - `rename` is atomic: after a crash the target name holds either the old
 *     file or the new one, never a mix.
 * So the crash-safe way to replace a file is: write new file, `sync` it,
 * `rename` over the old name, `syncDir` the directory.
 *
 * Paths are plain strings joined with '/'. All methods may reject with an
 * `ImpulseError` of code IMPULSE_ERR_ENGINE_IO (the cause carries the errno).
 */
import { ImpulseError } from '../errors.js';

export interface Vfs {
  /** Short description, e.g. "node-fs" or "mem(crash at op 17)". */
  readonly name: string;

  /**
   * Opens `path` for reading and writing. With `create`, creates it when
   * missing; with `exclusive` too, fails when it exists. With `truncate`,
   * empties it. Without `create`, a missing file rejects with code ENOENT in
   * the cause (see `isNotFound`).
   */
  open(path: string, options?: { create?: boolean; exclusive?: boolean; truncate?: boolean; readOnly?: boolean }): Promise<VfsFile>;
  /** The whole file's current contents. */
  readFile(path: string): Promise<Buffer>;
  /** Atomically replaces `to` with `from` (both in the same directory tree). */
  rename(from: string, to: string): Promise<void>;
  /** Removes a file. A missing file rejects (isNotFound). */
  unlink(path: string): Promise<void>;
  /** Names (not paths) of the entries in `dir`, sorted. */
  list(dir: string): Promise<string[]>;
  /** Creates `dir` and its parents; succeeds when it exists. */
  mkdir(dir: string): Promise<void>;
  /**
   * Optional: removes the EMPTY directory `dir` (durable after `syncDir` of
   * its parent). Where a Vfs lacks it, callers leave empty directories behind,
   * so they must never reuse a directory name they meant to remove.
   */
  removeDir?(dir: string): Promise<void>;
  /** Makes the creates, renames and unlinks in `dir` durable (fsync of the directory). */
  syncDir(dir: string): Promise<void>;
  /** True when a file or directory exists at `path`. */
  exists(path: string): Promise<boolean>;
  /** Size in bytes of the file at `path`. */
  size(path: string): Promise<number>;
}

export interface VfsFile {
  readonly path: string;
  /**
   * Reads up to `length` bytes at `position`. Returns fewer only at end of
   * file (an empty buffer past it).
   */
  read(position: number, length: number): Promise<Buffer>;
  /**
   * Optional: `read` done synchronously, blocking the caller's thread (same
   * contract, errors thrown instead of rejected). Worth it only for small reads
   * that are usually in the OS page cache (~microseconds), where the thread-pool
   * round trip of `read` costs several times more than the copy itself.
   * Implementations must count and fault-inject it exactly like `read`.
   */
  readSync?(position: number, length: number): Buffer;
  /** Writes all of `data` at `position`, extending the file if needed. Not durable until `sync`. */
  write(position: number, data: Uint8Array): Promise<void>;
  /**
   * Optional: `write` done synchronously, blocking the caller's thread (same
   * contract, errors thrown instead of rejected). For small appends with sync
   * off, where the bytes only have to reach the OS: a thread-pool round trip
   * costs several times the copy into the page cache. Implementations must
   * count and fault-inject it exactly like `write`.
   */
  writeSync?(position: number, data: Uint8Array): void;
  /** Current size in bytes (including unsynced writes). */
  size(): Promise<number>;
  /** Shrinks or extends (with zeros) to `length`. Not durable until `sync`. */
  truncate(length: number): Promise<void>;
  /** Makes the file's contents durable (fdatasync). */
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** Joins path parts with '/'. */
export function joinPath(...parts: string[]): string {
  return parts
    .filter((part) => part.length > 0)
    .join('/')
    .replace(/\/{2,}/g, '/');
}

/** The directory part of a path ('' for a bare name). */
export function dirName(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? (slash === 0 ? '/' : '.') : path.slice(0, slash);
}

/**
 * The errno-style code (e.g. 'ENOENT', 'EIO') carried by `error` or by the
 * first error in its `cause` chain that has one; `undefined` when none does.
 * Follows at most 8 causes (the chain is bounded so a cyclic cause cannot hang).
 */
export function errorCodeOf(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current !== null && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    // ImpulseError's own code is 'IMPULSE_ERR_...', never an errno: skip it and look at the cause.
    if (typeof code === 'string' && !code.startsWith('IMPULSE_ERR_')) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** True when `error` (a Vfs rejection) says the file or directory does not exist (errno ENOENT). */
export function isNotFound(error: unknown): boolean {
  return errorCodeOf(error) === 'ENOENT';
}

/** Options of `Vfs.open`, named for implementations. */
export type VfsOpenOptions = NonNullable<Parameters<Vfs['open']>[1]>;

/**
 * The error every Vfs implementation rejects with: IMPULSE_ERR_ENGINE_IO, a
 * message naming the operation and path, and the underlying error (with its
 * errno `code`) as the cause.
 */
export function vfsError(operation: string, path: string, cause: unknown): ImpulseError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new ImpulseError('IMPULSE_ERR_ENGINE_IO', `${operation} ${JSON.stringify(path)} failed: ${detail}`, { cause });
}

/** An Error carrying an errno-style `code`, shaped like the ones node:fs rejects with. */
export function errnoError(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}
