/**
 * Versions: which tables make up the tree, and the one place that changes it.
 *
 * A `Version` is an immutable list of open tables per level. Readers pin the
 * version they started on (`VersionSet.ref`/`unref`), so a flush or
 * compaction can install a new version underneath a running scan. A table
 * counts the versions that list it (`versionRefs`); its file is closed and
 * deleted only when that count drops to zero, i.e. when no version a reader
 * could still hold lists it.
 *
 * `VersionSet.logAndApply` is the only way the tree changes: it writes the
 * manifest for `current - removed + added` (atomically, see manifest.ts) and
 * only then installs that version, one edit at a time.
 */
import { assert } from '../../util/assert.js';
import { compareBytes, partitionPoint } from '../../util/bytes.js';
import type { Vfs } from '../../vfs/vfs.js';
import { type ManifestState, type TableMeta, writeManifest } from './manifest.js';
import type { LsmMutations } from './options.js';
import type { TableReader } from './table.js';

/** An open table and how many versions list it. */
export class Table implements TableMeta {
  /** Versions that list this table; the file is deleted when this drops to 0 after it left the current version. */
  versionRefs = 0;
  /** Key bounds as latin1 strings, for the point-read hot path (string `<` is byte order). */
  readonly smallestString: string;
  readonly largestString: string;

  constructor(
    readonly meta: TableMeta,
    readonly reader: TableReader,
  ) {
    this.smallestString = meta.smallest.toString('latin1');
    this.largestString = meta.largest.toString('latin1');
  }

  get fileNumber(): number {
    return this.meta.fileNumber;
  }
  get sizeBytes(): number {
    return this.meta.sizeBytes;
  }
  get entryCount(): number {
    return this.meta.entryCount;
  }
  get smallest(): Buffer {
    return this.meta.smallest;
  }
  get largest(): Buffer {
    return this.meta.largest;
  }
}

/** An immutable set of tables per level: level 0 newest first, deeper levels sorted by key without overlap. Readers pin it with `refs`. */
export class Version {
  refs = 0;
  constructor(readonly levels: ReadonlyArray<readonly Table[]>) {}
}

/** A table joining the tree at `level`. */
export interface AddedTable {
  readonly level: number;
  readonly table: Table;
}

/** One change to the tree (see `VersionSet.logAndApply`). */
export interface VersionEdit {
  readonly added?: readonly AddedTable[];
  readonly removed?: ReadonlySet<number>;
  /** WAL segments below this number are no longer needed. Default: unchanged. */
  readonly logNumber?: number;
}

/** The current version, the file-number counter and the WAL log number, changed only through `logAndApply`. */
export class VersionSet {
  /** The live tree. Holds one reference of its own (released when replaced). */
  current: Version;
  /** File numbers at or above this are unused. */
  nextFileNumber = 1;
  /** WAL segments numbered below this are flushed into tables and may be deleted. */
  logNumber = 0;
  /** Set by close: tables leaving the tree are closed but not unlinked any more. */
  closing = false;
  private readonly pendingDeletes = new Set<Promise<void>>();
  /** The last `logAndApply` in progress; the next one waits for it. */
  private installing: Promise<void> = Promise.resolve();

  constructor(
    private readonly vfs: Vfs,
    private readonly dir: string,
    /** Levels including level 0: every manifest lists this many. */
    private readonly levelCount: number,
    private readonly mutations: LsmMutations = {},
  ) {
    this.current = new Version([]);
    this.current.refs = 1;
  }

  allocateFileNumber(): number {
    const number = this.nextFileNumber++;
    assert(Number.isSafeInteger(number), 'lsm file numbers exhausted', number);
    return number;
  }

  /** Pins `version` for a reader; pair with `unref`. */
  ref(version: Version): Version {
    version.refs++;
    return version;
  }

  /**
   * Applies an edit: `edit(current)` says which tables join (`added`), which
   * leave (`removed`, by file number) and, optionally, the new log number.
   * The manifest for the result is replaced atomically first, then the result
   * becomes current, so a crash leaves either the old tree or the new one.
   * Calls are serialized: `edit` sees the version the previous call installed
   * (a flush and a compaction may finish at the same time).
   */
  async logAndApply(edit: (current: Version) => VersionEdit): Promise<void> {
    const previous = this.installing;
    let done!: () => void;
    this.installing = new Promise((resolve) => (done = resolve));
    await previous;
    try {
      const { added = [], removed = new Set<number>(), logNumber = this.logNumber } = edit(this.current);
      assert(logNumber >= this.logNumber, 'lsm log number must not go back', this.logNumber, logNumber);
      const levels = this.current.levels.map((tables) => tables.filter((table) => !removed.has(table.fileNumber)));
      for (const { level, table } of added) levels[level]!.push(table);
      levels[0]!.sort((a, b) => b.fileNumber - a.fileNumber);
      for (let level = 1; level < levels.length; level++) levels[level]!.sort((a, b) => Buffer.compare(a.smallest, b.smallest));
      // The new tables' names must be durable before the manifest naming them can be: without this
      // directory sync a crash may keep the manifest's rename and lose a table's creation (they are
      // different names, which POSIX does not order).
      const created = added.some(({ table }) => !removed.has(table.fileNumber)); // not a table moving level
      if (created && this.mutations.skipTableDirSync !== true) await this.vfs.syncDir(this.dir);
      await this.writeManifest(this.manifestOf(levels, this.nextFileNumber, logNumber));
      this.logNumber = logNumber;
      this.install(new Version(levels));
    } finally {
      done();
    }
  }

  /** Replaces the manifest on disk with `state` atomically (manifest.ts). */
  async writeManifest(state: ManifestState): Promise<void> {
    await writeManifest(this.vfs, this.dir, state, this.mutations.skipManifestDirSync === true);
  }

  /** The manifest describing `levels` (padded to `levelCount` levels). */
  manifestOf(levels: ReadonlyArray<readonly TableMeta[]>, nextFileNumber: number, logNumber: number): ManifestState {
    const padded: Array<readonly TableMeta[]> = [];
    for (let level = 0; level < this.levelCount; level++) {
      padded.push((levels[level] ?? []).map((table) => ({ fileNumber: table.fileNumber, sizeBytes: table.sizeBytes, entryCount: table.entryCount, smallest: table.smallest, largest: table.largest })));
    }
    return { nextFileNumber, logNumber, levels: padded };
  }

  /** Makes `version` current without writing a manifest (open installs what the manifest on disk already says). */
  install(version: Version): void {
    version.refs++;
    for (const tables of version.levels) for (const table of tables) table.versionRefs++;
    const previous = this.current;
    this.current = version;
    this.unref(previous);
  }

  unref(version: Version): void {
    version.refs--;
    assert(version.refs >= 0, 'lsm version reference count went negative');
    if (version.refs > 0) return;
    for (const tables of version.levels) {
      for (const table of tables) {
        table.versionRefs--;
        if (table.versionRefs === 0) this.deleteTable(table);
      }
    }
  }

  /** Waits for every table deletion started so far (close calls this last). */
  async settleDeletes(): Promise<void> {
    await Promise.all([...this.pendingDeletes]);
  }

  /** Closes and deletes a table no version lists any more. A failed unlink leaves an orphan that the next open removes. */
  private deleteTable(table: Table): void {
    const deletion = (async () => {
      await table.reader.close();
      if (!this.closing) await this.vfs.unlink(table.reader.path);
    })()
      .catch(() => undefined)
      .finally(() => this.pendingDeletes.delete(deletion));
    this.pendingDeletes.add(deletion);
  }
}

/** Total bytes of `tables`. */
export function levelBytes(tables: readonly Table[]): number {
  let bytes = 0;
  for (const table of tables) bytes += table.sizeBytes;
  return bytes;
}

/** Index of the first of `tables` (sorted by key, non-overlapping) whose largest key is >= `key`; `tables.length` when none is. */
export function findTable(tables: ReadonlyArray<{ readonly largest: Buffer }>, key: Buffer): number {
  return partitionPoint(0, tables.length, (index) => compareBytes(tables[index]!.largest, key) >= 0);
}
