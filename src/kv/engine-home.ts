/**
 * Where the state machine's engine lives, and how a snapshot's engine replaces
 * it atomically.
 *
 * A durable home is one directory:
 *
 *   <home>/LIVE              "engine-000007 <crc32c hex>\n": the live engine's slot
 *   <home>/STAGED            "engine-000008 <index> <term> <crc32c hex>\n": a complete staged image
 *   <home>/engine-000007/    the live engine's files (any engine: lsm, btree, leveldb)
 *   <home>/engine-000008/    a snapshot staged (not live until LIVE names it)
 *
 * Installing a snapshot: the image is written into a FRESH engine in a new slot
 * and made durable; STAGED then names it (`markStaged`), so a complete image
 * survives a restart until it is installed (the Raft log may already start
 * after it); then LIVE is replaced write-fsync-rename-fsync-dir (`promote`),
 * which is the one atomic switch; then the old slot is deleted. Both pointer
 * files are replaced the same crash-safe way.
 *
 * Recovery (`openLive`): a leftover `LIVE.tmp` / `STAGED.tmp` is a switch that
 * did not happen and is deleted (the old pointer stands); a STAGED naming the
 * live slot is an install that finished and is dropped; every slot that
 * neither LIVE nor STAGED names is a leftover (an unfinished staging, or a
 * retired engine not yet deleted) and is deleted.
 *
 * Why this works for all four engines: the home touches only its own files
 * (LIVE, LIVE.tmp) and whole slot directories, through a `Vfs`. lsm and btree
 * write their files through the same Vfs (NodeVfs or MemVfs in crash tests);
 * leveldb writes its files itself, on the real disk, so its home uses NodeVfs,
 * whose list/unlink/rename reach those same files. Deleting a slot unlinks its
 * files (engines keep flat directories) and removes the directory where the Vfs
 * can (`removeDir`); slot numbers only grow, so a name is never reused.
 *
 * A memory home keeps nothing: each slot is a new in-memory engine, and
 * promotion is the state machine swapping objects.
 *
 * A directory that holds anything else and no LIVE (e.g. engine files written
 * directly into it by an older impulse) is refused with
 * IMPULSE_ERR_DATA_FORMAT_UNSUPPORTED, never reinterpreted or deleted.
 */
import { ImpulseError } from '../errors.js';
import type { Engine } from '../storage/engine.js';
import { assert } from '../util/assert.js';
import { crc32c } from '../util/crc32c.js';
import { corruption } from '../util/corruption.js';
import { type Vfs, isNotFound, joinPath } from '../vfs/vfs.js';

/** One engine of a home: live, or being staged. */
export interface EngineSlot {
  readonly name: string;
  readonly engine: Engine;
}

/** A complete, durable staged image waiting to be installed: its slot and the log position it stands for. */
export interface StagedRecord {
  readonly name: string;
  readonly index: number;
  readonly term: number;
}

export interface EngineHome {
  /** For /status and errors, e.g. "/data/lsm (slots through a Vfs)". */
  readonly description: string;
  /**
   * Finishes or rolls back an interrupted switch, deletes leftovers (keeping a
   * complete staged image: `staged`), and opens the live engine (creating the
   * first slot, empty, on first use).
   */
  openLive(): Promise<EngineSlot>;
  /** The complete staged image kept across restarts, if any (known after `openLive`). */
  readonly staged: StagedRecord | undefined;
  /** A fresh, empty, open engine in a new slot that is not live. */
  createStaging(): Promise<EngineSlot>;
  /**
   * Records durably that `slot` holds a complete image at `index`/`term`, so it
   * survives a restart until installed; a previously staged slot is deleted.
   */
  markStaged(slot: EngineSlot, index: number, term: number): Promise<void>;
  /** Opens the engine of the staged slot (after a restart, to install it). */
  openStaged(): Promise<EngineSlot>;
  /**
   * Makes `slot` the live one, atomically and durably (and no longer staged).
   * The previous live slot is still on disk: `remove` it.
   */
  promote(slot: EngineSlot): Promise<void>;
  /** Closes the slot's engine and deletes its files (and its staged mark). Never call it on the live slot. */
  remove(slot: EngineSlot): Promise<void>;
}

const LIVE = 'LIVE';
const STAGED = 'STAGED';
const SLOT_NAME = /^engine-(\d{6,15})$/;

/** A home of one directory through a `Vfs` (see the file comment). */
export class DirectoryEngineHome implements EngineHome {
  readonly description: string;
  staged: StagedRecord | undefined;
  private highestSlot = 0;
  private opened = false;

  /** `createEngine(dir)` builds an unopened engine over `dir` (the engine's own data directory). */
  constructor(
    private readonly vfs: Vfs,
    private readonly dir: string,
    private readonly createEngine: (dir: string) => Engine,
  ) {
    this.description = `${dir} (slots through ${vfs.name})`;
  }

  async openLive(): Promise<EngineSlot> {
    await this.vfs.mkdir(this.dir);
    const names = await this.vfs.list(this.dir);
    // A temporary pointer is a switch that never happened: the old pointer stands.
    for (const temp of [`${LIVE}.tmp`, `${STAGED}.tmp`]) if (names.includes(temp)) await this.vfs.unlink(this.path(temp));
    const slots = names.filter((name) => SLOT_NAME.test(name));
    for (const name of slots) this.highestSlot = Math.max(this.highestSlot, slotNumber(name));
    let live: string;
    if (names.includes(LIVE)) {
      live = await this.readLive(slots);
    } else {
      await this.refuseForeign(names, slots);
      live = this.nextSlotName();
      await this.vfs.mkdir(this.path(live));
      await this.writePointer(LIVE, [live]);
    }
    if (names.includes(STAGED)) this.staged = await this.readStaged(slots, live);
    for (const name of slots) if (name !== live && name !== this.staged?.name) await this.removeFiles(name);
    this.opened = true;
    return { name: live, engine: await this.openEngine(live) };
  }

  async createStaging(): Promise<EngineSlot> {
    assert(this.opened, 'a staging slot before openLive would not know which slot numbers are taken');
    const name = this.nextSlotName();
    await this.vfs.mkdir(this.path(name));
    return { name, engine: await this.openEngine(name) };
  }

  async markStaged(slot: EngineSlot, index: number, term: number): Promise<void> {
    const previous = this.staged;
    await this.writePointer(STAGED, [slot.name, String(index), String(term)]);
    this.staged = { name: slot.name, index, term };
    if (previous !== undefined && previous.name !== slot.name) await this.removeFiles(previous.name);
  }

  async openStaged(): Promise<EngineSlot> {
    assert(this.staged !== undefined, 'no staged image to open');
    return { name: this.staged.name, engine: await this.openEngine(this.staged.name) };
  }

  async promote(slot: EngineSlot): Promise<void> {
    await this.writePointer(LIVE, [slot.name]);
    if (this.staged?.name === slot.name) await this.dropStagedMark();
  }

  async remove(slot: EngineSlot): Promise<void> {
    await slot.engine.close();
    if (this.staged?.name === slot.name) await this.dropStagedMark();
    await this.removeFiles(slot.name);
  }

  private async dropStagedMark(): Promise<void> {
    this.staged = undefined;
    await this.vfs.unlink(this.path(STAGED));
    await this.vfs.syncDir(this.dir);
  }

  private async openEngine(name: string): Promise<Engine> {
    const engine = this.createEngine(this.path(name));
    await engine.open();
    return engine;
  }

  private nextSlotName(): string {
    this.highestSlot++;
    return `engine-${String(this.highestSlot).padStart(6, '0')}`;
  }

  private path(name: string): string {
    return joinPath(this.dir, name);
  }

  private async readLive(slots: readonly string[]): Promise<string> {
    const [live] = await this.readPointer(LIVE, 1);
    if (!slots.includes(live!)) throw corruption('engine home', this.path(LIVE), `names ${live}, which is missing`);
    return live!;
  }

  /** The staged image STAGED names; undefined when it names the live slot (an install that finished). */
  private async readStaged(slots: readonly string[], live: string): Promise<StagedRecord | undefined> {
    const [name, index, term] = await this.readPointer(STAGED, 3);
    if (name === live) {
      await this.dropStagedMark();
      return undefined;
    }
    if (!slots.includes(name!) || !/^[0-9]{1,16}$/.test(index!) || !/^[0-9]{1,16}$/.test(term!)) {
      throw corruption('engine home', this.path(STAGED), `names ${name} at ${index}/${term}, which is missing or malformed`);
    }
    return { name: name!, index: Number(index), term: Number(term) };
  }

  /** The space-separated fields of a pointer file "<fields> <crc32c>\n", checked. */
  private async readPointer(file: string, fieldCount: number): Promise<string[]> {
    const path = this.path(file);
    const text = (await this.vfs.readFile(path)).toString('latin1');
    const parts = text.endsWith('\n') ? text.slice(0, -1).split(' ') : [];
    const checksum = parts.pop();
    if (parts.length !== fieldCount || checksum !== checksumOf(parts) || !SLOT_NAME.test(parts[0]!)) {
      throw corruption('engine home', path, `is not "<slot>${fieldCount > 1 ? ' <index> <term>' : ''} <crc32c>" or its checksum does not match`);
    }
    return parts;
  }

  /** Replaces a pointer file crash-safely: write <file>.tmp, fsync it, rename over <file>, fsync the directory. */
  private async writePointer(file: string, fields: readonly string[]): Promise<void> {
    const temp = this.path(`${file}.tmp`);
    const handle = await this.vfs.open(temp, { create: true, truncate: true });
    try {
      await handle.write(0, Buffer.from(`${fields.join(' ')} ${checksumOf(fields)}\n`, 'latin1'));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.vfs.rename(temp, this.path(file));
    await this.vfs.syncDir(this.dir);
  }

  /**
   * No LIVE: a new home, or an interrupted first start (empty slot directories
   * made before LIVE was written). Anything else is data this layout did not
   * write: refuse it rather than start empty beside it or delete it.
   */
  private async refuseForeign(names: readonly string[], slots: readonly string[]): Promise<void> {
    const foreign = names.filter((name) => !SLOT_NAME.test(name) && !name.endsWith('.tmp'));
    for (const slot of slots) if ((await this.vfs.list(this.path(slot))).length > 0) foreign.push(`${slot}/`);
    if (foreign.length === 0) return;
    throw new ImpulseError(
      'IMPULSE_ERR_DATA_FORMAT_UNSUPPORTED',
      `${this.dir} holds ${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? ', ...' : ''} but no ${LIVE} file: it was written by an older impulse (or ${LIVE} was deleted). ` +
        'It is left untouched; export its data with the impulse that wrote it, or point --data-dir elsewhere.',
    );
  }

  /** Deletes a slot's files and, where the Vfs can, its directory. */
  private async removeFiles(name: string): Promise<void> {
    const dir = this.path(name);
    let files: string[];
    try {
      files = await this.vfs.list(dir);
    } catch (error) {
      if (isNotFound(error)) return;
      throw error;
    }
    for (const file of files) await this.vfs.unlink(joinPath(dir, file));
    if (this.vfs.removeDir !== undefined) await this.vfs.removeDir(dir);
    await this.vfs.syncDir(this.dir);
  }
}

/** A home that keeps nothing: every slot is a new in-memory engine; a staged image lives until the process ends. */
export class MemoryEngineHome implements EngineHome {
  readonly description = 'memory (nothing is kept)';
  staged: StagedRecord | undefined;
  private stagedSlot: EngineSlot | undefined;

  constructor(private readonly createEngine: () => Engine) {}

  async openLive(): Promise<EngineSlot> {
    return this.createStaging();
  }

  async createStaging(): Promise<EngineSlot> {
    const engine = this.createEngine();
    await engine.open();
    return { name: 'memory', engine };
  }

  async markStaged(slot: EngineSlot, index: number, term: number): Promise<void> {
    const previous = this.stagedSlot;
    this.stagedSlot = slot;
    this.staged = { name: slot.name, index, term };
    if (previous !== undefined && previous !== slot) await previous.engine.close();
  }

  async openStaged(): Promise<EngineSlot> {
    assert(this.stagedSlot !== undefined, 'no staged image to open');
    return this.stagedSlot;
  }

  async promote(slot: EngineSlot): Promise<void> {
    if (this.stagedSlot === slot) this.forgetStaged();
  }

  async remove(slot: EngineSlot): Promise<void> {
    if (this.stagedSlot === slot) this.forgetStaged();
    await slot.engine.close();
  }

  private forgetStaged(): void {
    this.stagedSlot = undefined;
    this.staged = undefined;
  }
}

/** The CRC32C of a pointer file's fields, as 8 hex digits. */
function checksumOf(fields: readonly string[]): string {
  return crc32c(Buffer.from(fields.join(' '), 'latin1')).toString(16).padStart(8, '0');
}

function slotNumber(name: string): number {
  return Number(SLOT_NAME.exec(name)?.[1] ?? 0);
}
