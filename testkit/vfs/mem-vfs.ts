/**
 * `MemVfs`: an in-memory `Vfs` that models POSIX durability exactly as
 * vfs.ts documents it, counts every I/O operation, and injects faults.
 * Crash tests (the sweeps of crash-harness.ts) and fast engine tests run on it.
 *
 * How to use:
 *   const vfs = new MemVfs({ random: new SeededRandom(seed) });
 *   vfs.inject({ kind: 'crash', at: 17 });      // operation #17 and all later ones fail
 *   await runWorkload(vfs).catch((e) => { if (!isCrashError(e)) throw e; });
 *   const afterPowerLoss = vfs.recover('torn'); // what the disk holds after the crash
 *   // open the engine on `afterPowerLoss` and check it.
 *
 * The model (what survives `recover(mode)`):
 *   - A file (inode) has DURABLE contents and CURRENT contents. Every `write`
 *     and `truncate` changes the current contents at once and is appended to
 *     the file's list of pending operations; `sync` applies the pending list
 *     to the durable contents and empties it.
 *   - A directory has a DURABLE name → inode map and a CURRENT one. Creating
 *     (open with create), renaming and unlinking change the current map at once
 *     and are appended to the directory's pending list; `syncDir` makes the
 *     durable map equal the current one. A name maps to an inode, so an open
 *     file keeps working after its name is unlinked, and a rename not yet made
 *     durable leaves the OLD name pointing at the file after a crash.
 *   - A rename within one directory is one atomic pending operation of that
 *     directory. A rename across directories is modelled as two independent
 *     operations: "unlink" in the source directory and "link" in the target
 *     directory, each made durable only by `syncDir` of ITS directory; so after
 *     a crash the file may be under both names, or (if only the source was
 *     synced) under neither. Sync the target directory first, then the source.
 *   - Simplification: directories themselves (`mkdir`) are durable at once and
 *     never removed (the Vfs has no rmdir); `rename` of a directory is not
 *     supported (rejects with EISDIR).
 *   - `recover('lose-unsynced')`: durable maps and durable contents only (power
 *     loss, worst case). `recover('keep-unsynced')`: everything current (a
 *     process crash: the OS page cache survives). `recover('torn')`: power loss
 *     where the disk had written SOME of the unsynced work: each directory keeps
 *     a random prefix of its pending operations, each file a random prefix of its
 *     pending writes, and the first write not kept may be torn: a random number
 *     of its leading bytes reach the disk; if that write extended the file, the
 *     file may also come back with the full new size, the bytes that did not
 *     arrive reading as zeros or as random garbage (metadata persisted before the
 *     data, as on ext4 data=writeback). Files are torn independently of each
 *     other and of directories (a rename may survive while the renamed file's
 *     unsynced contents do not: the classic "rename without fsync" bug).
 *     `recover('reorder')`: power loss where the page cache wrote unsynced
 *     pages back in any order: each file keeps a random SUBSET of its pending
 *     writes and truncates (each kept with probability 1/2, applied in their
 *     original order; a later write past a missing one leaves a zero-filled
 *     hole), directories keep a random prefix as in 'torn'. This catches a
 *     missing fsync BETWEEN two writes of one file (data then commit marker),
 *     which 'torn' cannot, since a prefix never has the later write without
 *     the earlier one.
 *     `recover('reorder-dirs')`: 'reorder', and directories are reordered
 *     too: each directory keeps a random subset of its pending creates,
 *     renames and unlinks with per-name order: each kept with probability
 *     1/2, except that once an operation on a name is lost, every later
 *     operation on that name is lost too; a rename changes two names and is
 *     kept or lost whole (see `reorderedEntries`). POSIX orders none of this
 *     without a directory fsync, and file systems differ in what they keep.
 *     This catches a missing `syncDir` BETWEEN two directory changes the
 *     recovery depends on the order of (rename a new manifest into place,
 *     then unlink the tables only the old one named; or create a table, then
 *     rename a manifest naming it into place), which a prefix cannot show.
 *
 * Counting and faults: every call of a `Vfs` method or a `VfsFile` method is ONE
 * operation, numbered from 0 in call order (`ioCount` is the next number). A
 * fault policy (fault-policy.ts: `onIndex`, `fromIndex`, `withProbability`,
 * `onlyOperations`, ..., the same policies `FaultVfs` takes) may make an
 * operation fail with an injected error (`ImpulseError` IMPULSE_ERR_ENGINE_IO,
 * cause code 'EIO' or the chosen errno) or crash the vfs: the operation and
 * every later one then reject with `CrashError`. A failed operation has no
 * effect. Delays are not supported here (an operation takes effect when
 * called); wrap a MemVfs in `FaultVfs` for a slow disk. The numbering is
 * deterministic when the code driving the vfs is (no real timers or real
 * randomness deciding the order of I/O).
 *
 * Not safe to share between worker threads; within one event loop any
 * interleaving of calls is fine (each operation takes effect when called).
 */
import { assert } from '../../src/util/assert.js';
import { SeededRandom, type Random } from '../../src/util/random.js';
import { errnoError, joinPath, vfsError, type Vfs, type VfsFile, type VfsOpenOptions } from '../../src/vfs/vfs.js';
import { CrashError, FaultInjectingVfs, FaultInjector, fromIndex, onIndex, type FaultPolicy, type VfsOperation } from './fault-policy.js';

// These lived here before fault-policy.ts; tests on other branches still import them from here.
export { CrashError, isCrashError, fromIndex, onIndex, onlyOperations, withProbability } from './fault-policy.js';
export type { FaultAction, FaultPolicy, IoOperation, VfsOperation } from './fault-policy.js';

/** Shorthands for the common faults; `inject` turns them into policies. */
export type FaultSpec =
  | { readonly kind: 'error'; readonly at: number; readonly persistent?: boolean }
  | { readonly kind: 'crash'; readonly at: number };

/**
 * What survives a crash: 'lose-unsynced' (power loss, nothing unsynced
 * survives), 'torn' (power loss, a random part of the unsynced work survives,
 * the last write possibly torn), 'reorder' (power loss, a random subset of
 * each file's unsynced writes survives), 'reorder-dirs' ('reorder', and a
 * random subset of each directory's unsynced changes survives, the changes to
 * one name in order), 'keep-unsynced' (process crash: everything survives,
 * synced or not).
 */
export type RecoverMode = 'lose-unsynced' | 'torn' | 'reorder' | 'reorder-dirs' | 'keep-unsynced';

export interface MemVfsOptions {
  /** Drives torn-write choices and is forked into recovered copies. Default `new SeededRandom(1)`. */
  readonly random?: Random;
  /**
   * Model Linux's fsync failure ("fsyncgate"): an injected EIO on `file.sync`
   * throws away that file's unsynced writes for durability (they stay visible
   * in the current contents, are lost on `recover` except 'keep-unsynced', and a
   * later successful sync does NOT make them durable). Default false: a failed
   * sync has no effect at all, so a retry would persist the writes.
   */
  readonly syncFailureDropsWrites?: boolean;
  /** Keep a log of every operation in `operations` (memory grows with the run; for tests and harness messages). Default false. */
  readonly recordOperations?: boolean;
}

/** Counters of what the vfs was asked to do (for tests and engine write-amplification figures). */
export interface MemVfsCounters {
  bytesWritten: number;
  bytesRead: number;
  fileSyncs: number;
  dirSyncs: number;
  /** Operations that were refused by an injected error (EIO or another errno). */
  injectedErrors: number;
}

export class MemVfs extends FaultInjectingVfs implements Vfs {
  readonly counters: MemVfsCounters = { bytesWritten: 0, bytesRead: 0, fileSyncs: 0, dirSyncs: 0, injectedErrors: 0 };

  /** See `MemVfsOptions.syncFailureDropsWrites`. */
  readonly syncFailureDropsWrites: boolean;
  private readonly random: Random;
  private readonly recordOperations: boolean;
  /** Normalized directory path → directory. Roots '.' and '/' always exist. */
  private readonly dirs = new Map<string, MemDir>();

  constructor(options: MemVfsOptions = {}) {
    super(new FaultInjector(options.recordOperations ?? false));
    this.random = options.random ?? new SeededRandom(1);
    this.recordOperations = options.recordOperations ?? false;
    this.syncFailureDropsWrites = options.syncFailureDropsWrites ?? false;
    this.dirs.set('.', new MemDir());
    this.dirs.set('/', new MemDir());
  }

  /** "mem", plus the injected faults, e.g. "mem(crash at op 17)". */
  get name(): string {
    const parts = this.faults.description;
    return parts.length === 0 ? 'mem' : `mem(${parts.join(', ')})`;
  }

  /** Adds a fault. Specs: `{kind:'error', at, persistent?}`, `{kind:'crash', at}`; or any `FaultPolicy` (no delays). */
  inject(fault: FaultSpec | FaultPolicy): this {
    if ('decide' in fault) {
      this.faults.add(fault);
    } else if (fault.kind === 'crash') {
      this.faults.add(onIndex(fault.at, 'crash'));
    } else {
      this.faults.add(fault.persistent ? fromIndex(fault.at, 'error') : onIndex(fault.at, 'error'));
    }
    return this;
  }


  /**
   * A NEW MemVfs holding exactly what survives a crash at this moment (see the
   * module comment for the modes). Works whether or not this vfs is crashed and
   * leaves this vfs unchanged (except that it draws from its Random). The copy
   * has no faults, a fresh operation count, and a Random forked from this one.
   * `random`, when given, replaces this vfs's Random for this call (the crash
   * harness passes one per crash point and mode so a replay draws the same choices).
   */
  recover(mode: RecoverMode = 'lose-unsynced', random: Random = this.random): MemVfs {
    const copy = new MemVfs({ random: random.fork(), recordOperations: this.recordOperations, syncFailureDropsWrites: this.syncFailureDropsWrites });
    const copies = new Map<MemInode, MemInode>();
    const surviving = (inode: MemInode): MemInode => {
      let result = copies.get(inode);
      if (result === undefined) {
        result = MemInode.withContents(this.survivingContents(inode, mode, random));
        copies.set(inode, result);
      }
      return result;
    };
    for (const [path, dir] of this.dirs) {
      const entries = this.survivingEntries(dir, mode, random);
      const target = copy.ensureDir(path);
      for (const name of dir.subdirs) target.subdirs.add(name);
      for (const [name, inode] of entries) {
        target.current.set(name, surviving(inode));
        target.durable.set(name, surviving(inode));
      }
    }
    return copy;
  }

  /**
   * Flips bit `bit` (0..7) of byte `byteOffset` of the file at `path`, in its
   * current AND durable contents (where they are that long), like a bit rot on
   * the medium. For checksum tests; not counted as an operation.
   */
  flipBit(path: string, byteOffset: number, bit: number): void {
    assert(Number.isInteger(bit) && bit >= 0 && bit < 8, 'flipBit: bit must be 0..7', bit);
    const { dir, name } = this.splitPath(normalizePath(path));
    const inode = dir === undefined ? undefined : dir.current.get(name) ?? dir.durable.get(name);
    if (inode === undefined) throw new RangeError(`flipBit: no file at ${path}`);
    const flippedCurrent = inode.current.flipBit(byteOffset, bit);
    const flippedDurable = inode.durable.flipBit(byteOffset, bit);
    if (!flippedCurrent && !flippedDurable) throw new RangeError(`flipBit: offset ${byteOffset} is past the end of ${path}`);
  }

  /** Paths of every file in the current state, sorted. Not counted as an operation. */
  fileNames(): string[] {
    const names: string[] = [];
    for (const [dirPath, dir] of this.dirs) {
      for (const name of dir.current.keys()) names.push(dirPath === '.' ? name : joinPath(dirPath, name));
    }
    return names.sort();
  }

  // ---- Vfs ----

  async open(path: string, options: VfsOpenOptions = {}): Promise<VfsFile> {
    this.begin('open', path);
    const { dir, name } = this.splitPath(normalizePath(path));
    if (dir === undefined) throw vfsError('open', path, errnoError('ENOENT', 'no such directory'));
    if (dir.subdirs.has(name) || name === '') throw vfsError('open', path, errnoError('EISDIR', 'is a directory'));
    let inode = dir.current.get(name);
    if (inode === undefined) {
      if (!options.create) throw vfsError('open', path, errnoError('ENOENT', 'no such file'));
      inode = new MemInode();
      dir.link(name, inode);
    } else if (options.create && options.exclusive) {
      throw vfsError('open', path, errnoError('EEXIST', 'file exists'));
    }
    if (options.truncate) inode.truncate(0);
    return new MemFile(this, path, inode, options.readOnly === true);
  }

  async readFile(path: string): Promise<Buffer> {
    this.begin('readFile', path);
    const inode = this.lookupFile('readFile', path);
    this.counters.bytesRead += inode.current.length;
    return inode.current.read(0, inode.current.length);
  }

  async rename(from: string, to: string): Promise<void> {
    this.begin('rename', `${from} -> ${to}`);
    const source = this.splitPath(normalizePath(from));
    const target = this.splitPath(normalizePath(to));
    const described = `${from} -> ${to}`;
    if (source.dir === undefined || target.dir === undefined) throw vfsError('rename', described, errnoError('ENOENT', 'no such directory'));
    if (source.dir.subdirs.has(source.name) || target.dir.subdirs.has(target.name) || source.name === '' || target.name === '') {
      throw vfsError('rename', described, errnoError('EISDIR', 'MemVfs renames files only'));
    }
    const inode = source.dir.current.get(source.name);
    if (inode === undefined) throw vfsError('rename', described, errnoError('ENOENT', 'no such file'));
    if (source.dir === target.dir) {
      if (source.name !== target.name) source.dir.renameWithin(source.name, target.name, inode);
    } else {
      // Two independent directory changes; see the module comment.
      source.dir.unlink(source.name);
      target.dir.link(target.name, inode);
    }
  }

  async unlink(path: string): Promise<void> {
    this.begin('unlink', path);
    const { dir, name } = this.splitPath(normalizePath(path));
    if (dir === undefined) throw vfsError('unlink', path, errnoError('ENOENT', 'no such directory'));
    if (dir.subdirs.has(name) || name === '') throw vfsError('unlink', path, errnoError('EISDIR', 'is a directory'));
    if (!dir.current.has(name)) throw vfsError('unlink', path, errnoError('ENOENT', 'no such file'));
    dir.unlink(name);
  }

  async list(dirPath: string): Promise<string[]> {
    this.begin('list', dirPath);
    const dir = this.lookupDir('list', dirPath);
    return [...dir.current.keys(), ...dir.subdirs].sort();
  }

  async mkdir(dirPath: string): Promise<void> {
    this.begin('mkdir', dirPath);
    const normalized = normalizePath(dirPath);
    // Check every component first so a failed mkdir has no effect.
    for (let prefix = normalized; !isRoot(prefix); prefix = parentOf(prefix)) {
      const { dir, name } = this.splitPath(prefix);
      if (dir?.current.has(name)) throw vfsError('mkdir', dirPath, errnoError('ENOTDIR', `${prefix} is a file`));
    }
    this.ensureDir(normalized);
  }

  async syncDir(dirPath: string): Promise<void> {
    this.begin('syncDir', dirPath);
    this.lookupDir('syncDir', dirPath).sync();
    this.counters.dirSyncs++;
  }

  async exists(path: string): Promise<boolean> {
    this.begin('exists', path);
    const normalized = normalizePath(path);
    if (this.dirs.has(normalized)) return true;
    const { dir, name } = this.splitPath(normalized);
    return dir !== undefined && dir.current.has(name);
  }

  async size(path: string): Promise<number> {
    this.begin('size', path);
    return this.lookupFile('size', path).current.length;
  }

  // ---- internals shared with MemFile ----

  /**
   * Counts the operation and applies the fault policies. Throws (so the
   * calling async method rejects) BEFORE the operation has any effect.
   */
  begin(operation: VfsOperation, path: string, onInjectedError?: () => void): void {
    const { delayMs, failure } = this.faults.next(operation, path);
    assert(delayMs === 0, 'MemVfs applies an operation when it is called and cannot delay it: wrap it in FaultVfs for latency', delayMs);
    if (failure === undefined) return;
    if (!(failure instanceof CrashError)) {
      this.counters.injectedErrors++;
      onInjectedError?.();
    }
    throw failure;
  }

  private lookupFile(operation: VfsOperation, path: string): MemInode {
    const { dir, name } = this.splitPath(normalizePath(path));
    if (dir === undefined) throw vfsError(operation, path, errnoError('ENOENT', 'no such directory'));
    if (dir.subdirs.has(name) || name === '') throw vfsError(operation, path, errnoError('EISDIR', 'is a directory'));
    const inode = dir.current.get(name);
    if (inode === undefined) throw vfsError(operation, path, errnoError('ENOENT', 'no such file'));
    return inode;
  }

  private lookupDir(operation: VfsOperation, path: string): MemDir {
    const normalized = normalizePath(path);
    const dir = this.dirs.get(normalized);
    if (dir !== undefined) return dir;
    const { dir: parent, name } = this.splitPath(normalized);
    if (parent?.current.has(name)) throw vfsError(operation, path, errnoError('ENOTDIR', 'not a directory'));
    throw vfsError(operation, path, errnoError('ENOENT', 'no such directory'));
  }

  /** The directory holding `normalized` (undefined when missing) and the last path component. */
  private splitPath(normalized: string): { dir: MemDir | undefined; name: string } {
    if (isRoot(normalized)) return { dir: undefined, name: '' };
    const slash = normalized.lastIndexOf('/');
    const dirPath = slash < 0 ? '.' : slash === 0 ? '/' : normalized.slice(0, slash);
    return { dir: this.dirs.get(dirPath), name: normalized.slice(slash + 1) };
  }

  /** Creates the directory and its parents (durably, see the module comment). */
  private ensureDir(normalized: string): MemDir {
    const existing = this.dirs.get(normalized);
    if (existing !== undefined) return existing;
    const parent = this.ensureDir(parentOf(normalized));
    parent.subdirs.add(normalized.slice(normalized.lastIndexOf('/') + 1));
    const dir = new MemDir();
    this.dirs.set(normalized, dir);
    return dir;
  }

  private survivingEntries(dir: MemDir, mode: RecoverMode, random: Random): Map<string, MemInode> {
    switch (mode) {
      case 'keep-unsynced':
        return dir.current;
      case 'lose-unsynced':
        return dir.durable;
      case 'torn':
      case 'reorder': {
        // A journal that commits directory changes in order: a prefix.
        const entries = new Map(dir.durable);
        const kept = random.int(dir.pending.length + 1);
        for (const op of dir.pending.slice(0, kept)) applyDirOp(entries, op);
        return entries;
      }
      case 'reorder-dirs':
        return reorderedEntries(dir, random);
    }
  }

  private survivingContents(inode: MemInode, mode: RecoverMode, random: Random): ByteArray {
    switch (mode) {
      case 'keep-unsynced':
        return inode.current.clone();
      case 'lose-unsynced':
        return inode.durable.clone();
      case 'torn':
        return this.tornContents(inode, random);
      case 'reorder':
      case 'reorder-dirs': {
        const contents = inode.durable.clone();
        for (const op of inode.pending) if (random.chance(0.5)) applyFileOp(contents, op);
        return contents;
      }
    }
  }

  /** Durable contents + a random prefix of the pending operations, the next write possibly torn. */
  private tornContents(inode: MemInode, random: Random): ByteArray {
    const contents = inode.durable.clone();
    const kept = random.int(inode.pending.length + 1);
    for (const op of inode.pending.slice(0, kept)) applyFileOp(contents, op);
    const next = inode.pending[kept];
    if (next === undefined || next.kind !== 'write' || next.data.length === 0 || !random.chance(0.5)) return contents;
    const sizeBefore = contents.length;
    const arrivedBytes = random.int(next.data.length); // 0 .. length-1: a strict prefix
    contents.write(next.position, next.data.subarray(0, arrivedBytes));
    const end = next.position + next.data.length;
    if (end > sizeBefore) {
      // The size may have been persisted before the data: the missing tail reads as zeros or garbage.
      const tail = random.int(3);
      const tailStart = Math.max(sizeBefore, next.position + arrivedBytes);
      if (tail === 1) contents.truncate(end);
      if (tail === 2) {
        const garbage = Buffer.alloc(end - tailStart);
        for (let i = 0; i < garbage.length; i++) garbage[i] = random.int(256);
        contents.write(tailStart, garbage);
      }
    }
    return contents;
  }
}

class MemFile implements VfsFile {
  private closed = false;

  constructor(
    private readonly vfs: MemVfs,
    readonly path: string,
    private readonly inode: MemInode,
    private readonly readOnly: boolean,
  ) {}

  async read(position: number, length: number): Promise<Buffer> {
    return this.readSync(position, length);
  }

  /** `read` without the promise: the same operation ('file.read') for counting, faults and crashes. */
  readSync(position: number, length: number): Buffer {
    checkRange('read', position, length);
    this.vfs.begin('file.read', this.path);
    this.checkOpen('file.read');
    const data = this.inode.current.read(position, length);
    this.vfs.counters.bytesRead += data.length;
    return data;
  }

  async write(position: number, data: Uint8Array): Promise<void> {
    this.writeSync(position, data);
  }

  /** `write` without the promise: the same operation ('file.write') for counting, faults and crashes. */
  writeSync(position: number, data: Uint8Array): void {
    checkRange('write', position, data.byteLength);
    this.vfs.begin('file.write', this.path);
    this.checkWritable('file.write');
    this.inode.write(position, data);
    this.vfs.counters.bytesWritten += data.byteLength;
  }

  async size(): Promise<number> {
    this.vfs.begin('file.size', this.path);
    this.checkOpen('file.size');
    return this.inode.current.length;
  }

  async truncate(length: number): Promise<void> {
    checkRange('truncate', 0, length);
    this.vfs.begin('file.truncate', this.path);
    this.checkWritable('file.truncate');
    this.inode.truncate(length);
  }

  async sync(): Promise<void> {
    this.vfs.begin('file.sync', this.path, () => {
      if (this.vfs.syncFailureDropsWrites) this.inode.dropPending();
    });
    this.checkOpen('file.sync');
    this.inode.sync();
    this.vfs.counters.fileSyncs++;
  }

  /** Closing twice is a no-op (like NodeVfs); it still counts as an operation. */
  async close(): Promise<void> {
    this.vfs.begin('file.close', this.path);
    this.closed = true;
  }

  private checkOpen(operation: VfsOperation): void {
    if (this.closed) throw vfsError(operation, this.path, errnoError('EBADF', 'file is closed'));
  }

  private checkWritable(operation: VfsOperation): void {
    this.checkOpen(operation);
    if (this.readOnly) throw vfsError(operation, this.path, errnoError('EBADF', 'file is open read-only'));
  }
}

function checkRange(operation: string, position: number, length: number): void {
  assert(Number.isSafeInteger(position) && position >= 0, `${operation}: position must be a non-negative integer`, position);
  assert(Number.isSafeInteger(length) && length >= 0, `${operation}: length must be a non-negative integer`, length);
}

type PendingFileOp = { readonly kind: 'write'; readonly position: number; readonly data: Buffer } | { readonly kind: 'truncate'; readonly length: number };

type PendingDirOp =
  | { readonly kind: 'link'; readonly name: string; readonly inode: MemInode }
  | { readonly kind: 'unlink'; readonly name: string }
  | { readonly kind: 'rename'; readonly from: string; readonly to: string; readonly inode: MemInode };

function applyFileOp(contents: ByteArray, op: PendingFileOp): void {
  if (op.kind === 'write') contents.write(op.position, op.data);
  else contents.truncate(op.length);
}

function applyDirOp(entries: Map<string, MemInode>, op: PendingDirOp): void {
  switch (op.kind) {
    case 'link':
      entries.set(op.name, op.inode);
      break;
    case 'unlink':
      entries.delete(op.name);
      break;
    case 'rename':
      entries.delete(op.from);
      entries.set(op.to, op.inode);
      break;
  }
}

/** The names a pending directory operation changes (a rename changes two, atomically). */
function namesOf(op: PendingDirOp): readonly string[] {
  return op.kind === 'rename' ? [op.from, op.to] : [op.name];
}

/**
 * 'reorder-dirs' for one directory: each pending operation survives with
 * probability 1/2, independently of operations on OTHER names, but the
 * operations on one name stay in order: once one is lost, every later one
 * touching that name is lost too. A rename touches two names and survives or
 * is lost whole (rename is atomic), so it also ties the two names' histories
 * together. Thus a later unlink of one file may survive while an earlier
 * rename of another is lost, which no prefix shows; but a file is never
 * renamed after a create that was lost, or unlinked before a rename onto its
 * name that was kept.
 */
function reorderedEntries(dir: MemDir, random: Random): Map<string, MemInode> {
  const entries = new Map(dir.durable);
  const lostNames = new Set<string>();
  for (const op of dir.pending) {
    const names = namesOf(op);
    if (!names.some((name) => lostNames.has(name)) && random.chance(0.5)) {
      applyDirOp(entries, op);
    } else {
      for (const name of names) lostNames.add(name);
    }
  }
  return entries;
}

/** A file: durable contents, current contents, and the operations between them. */
class MemInode {
  durable = new ByteArray();
  current = new ByteArray();
  /** Writes and truncates since the last sync, in order; applied to `durable` by `sync`. */
  pending: PendingFileOp[] = [];

  static withContents(contents: ByteArray): MemInode {
    const inode = new MemInode();
    inode.durable = contents;
    inode.current = contents.clone();
    return inode;
  }

  write(position: number, data: Uint8Array): void {
    const copy = Buffer.from(data); // the caller may reuse its buffer
    this.current.write(position, copy);
    this.pending.push({ kind: 'write', position, data: copy });
  }

  truncate(length: number): void {
    this.current.truncate(length);
    this.pending.push({ kind: 'truncate', length });
  }

  /**
   * A failed fsync on Linux marks the dirty pages clean without writing them:
   * the data stays readable (current) but will never become durable, and the
   * next fsync succeeds. Models that (`syncFailureDropsWrites`).
   */
  dropPending(): void {
    this.pending = [];
  }

  sync(): void {
    // Applying the pending list (rather than copying `current`) keeps a sync's cost proportional to what changed.
    for (const op of this.pending) applyFileOp(this.durable, op);
    this.pending = [];
  }
}

/** A directory: durable and current name → file maps, the changes between them, and its subdirectories. */
class MemDir {
  durable = new Map<string, MemInode>();
  readonly current = new Map<string, MemInode>();
  pending: PendingDirOp[] = [];
  /** Subdirectory names (durable at once; see the module comment). */
  readonly subdirs = new Set<string>();

  link(name: string, inode: MemInode): void {
    this.current.set(name, inode);
    this.pending.push({ kind: 'link', name, inode });
  }

  unlink(name: string): void {
    this.current.delete(name);
    this.pending.push({ kind: 'unlink', name });
  }

  renameWithin(from: string, to: string, inode: MemInode): void {
    this.current.delete(from);
    this.current.set(to, inode);
    this.pending.push({ kind: 'rename', from, to, inode });
  }

  sync(): void {
    this.durable = new Map(this.current);
    this.pending = [];
  }
}

/**
 * A growable byte array. Invariant: bytes of `storage` past `length` are zero,
 * so extending (by write past the end or truncate upwards) exposes zeros.
 */
class ByteArray {
  private storage: Buffer;
  length: number;

  constructor(initial?: Buffer) {
    this.storage = Buffer.alloc(initial?.length ?? 0);
    initial?.copy(this.storage);
    this.length = initial?.length ?? 0;
  }

  clone(): ByteArray {
    return new ByteArray(this.storage.subarray(0, this.length));
  }

  /** A copy of [position, position + length) clipped to the end. */
  read(position: number, length: number): Buffer {
    if (position >= this.length) return Buffer.alloc(0);
    return Buffer.from(this.storage.subarray(position, Math.min(this.length, position + length)));
  }

  write(position: number, data: Uint8Array): void {
    const end = position + data.byteLength;
    this.reserve(end);
    this.storage.set(data, position);
    if (end > this.length) this.length = end;
  }

  truncate(length: number): void {
    if (length < this.length) this.storage.fill(0, length, this.length);
    else this.reserve(length);
    this.length = length;
  }

  /** Flips one bit when `offset` is inside the array; false when it is not. */
  flipBit(offset: number, bit: number): boolean {
    if (!(offset >= 0 && offset < this.length)) return false;
    this.storage[offset] = (this.storage[offset] ?? 0) ^ (1 << bit);
    return true;
  }

  private reserve(capacity: number): void {
    if (capacity <= this.storage.length) return;
    // Doubling keeps appends amortized O(1) per byte.
    const grown = Buffer.alloc(Math.max(capacity, this.storage.length * 2, 64));
    this.storage.copy(grown, 0, 0, this.length);
    this.storage = grown;
  }
}

/** Collapses '//' and '.', resolves '..', drops a trailing '/'. '' and '.' are the relative root. */
function normalizePath(path: string): string {
  const absolute = path.startsWith('/');
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  if (absolute) return '/' + parts.join('/');
  return parts.length === 0 ? '.' : parts.join('/');
}

function isRoot(normalized: string): boolean {
  return normalized === '.' || normalized === '/';
}

function parentOf(normalized: string): string {
  const slash = normalized.lastIndexOf('/');
  return slash < 0 ? '.' : slash === 0 ? '/' : normalized.slice(0, slash);
}
