/**
 * Where the state machine's engine lives, and how a snapshot's engine replaces
 * it atomically.
 *
 * A durable home is one directory:
 *
 *   <home>/LIVE              "engine-000007 <crc32c hex>\n": the live engine's slot
 *   <home>/engine-000007/    the live engine's files (any engine: lsm, btree, leveldb)
 *   <home>/engine-000008/    a snapshot being staged (not live until LIVE names it)
 *
 * Installing a snapshot: the image is written into a FRESH engine in a new slot
 * and made durable; then LIVE is replaced write-fsync-rename-fsync-dir
 * (`promote`), which is the one atomic switch; then the old slot is deleted.
 * Recovery (`openLive`): a leftover `LIVE.tmp` is an unfinished switch (the
 * rename did not happen) and is deleted, so the old slot stays live; every slot
 * LIVE does not name is a leftover (an unfinished staging, or a retired engine
 * not yet deleted) and is deleted.
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

export interface EngineHome {
  /** For /status and errors, e.g. "/data/lsm (slots through a Vfs)". */
  readonly description: string;
  /**
   * Finishes or rolls back an interrupted switch, deletes leftovers, and opens
   * the live engine (creating the first slot, empty, on first use).
   */
  openLive(): Promise<EngineSlot>;
  /** A fresh, empty, open engine in a new slot that is not live. */
  createStaging(): Promise<EngineSlot>;
  /** Makes `slot` the live one, atomically and durably. The previous live slot is still on disk: `remove` it. */
  promote(slot: EngineSlot): Promise<void>;
  /** Closes the slot's engine and deletes its files. Never call it on the live slot. */
  remove(slot: EngineSlot): Promise<void>;
}

const POINTER = 'LIVE';
const POINTER_TEMP = 'LIVE.tmp';
const SLOT_NAME = /^engine-(\d{6,15})$/;

/** A home of one directory through a `Vfs` (see the file comment). */
export class DirectoryEngineHome implements EngineHome {
  readonly description: string;
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
    if (names.includes(POINTER_TEMP)) await this.vfs.unlink(this.path(POINTER_TEMP)); // the switch never happened
    const slots = names.filter((name) => SLOT_NAME.test(name));
    for (const name of slots) this.highestSlot = Math.max(this.highestSlot, slotNumber(name));
    let live: string;
    if (names.includes(POINTER)) {
      live = await this.readPointer(slots);
    } else {
      await this.refuseForeign(names, slots);
      live = this.nextSlotName();
      await this.vfs.mkdir(this.path(live));
      await this.writePointer(live);
    }
    for (const name of slots) if (name !== live) await this.removeFiles(name);
    this.opened = true;
    return { name: live, engine: await this.openEngine(live) };
  }

  async createStaging(): Promise<EngineSlot> {
    assert(this.opened, 'a staging slot before openLive would not know which slot numbers are taken');
    const name = this.nextSlotName();
    await this.vfs.mkdir(this.path(name));
    return { name, engine: await this.openEngine(name) };
  }

  async promote(slot: EngineSlot): Promise<void> {
    await this.writePointer(slot.name);
  }

  async remove(slot: EngineSlot): Promise<void> {
    await slot.engine.close();
    await this.removeFiles(slot.name);
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

  private async readPointer(slots: readonly string[]): Promise<string> {
    const path = this.path(POINTER);
    const text = (await this.vfs.readFile(path)).toString('latin1');
    const match = /^(engine-\d{6,15}) ([0-9a-f]{8})\n$/.exec(text);
    if (match === null || crc32c(Buffer.from(match[1]!, 'latin1')).toString(16).padStart(8, '0') !== match[2]) {
      throw corruption('engine home', path, 'is not "<slot> <crc32c>" or its checksum does not match');
    }
    const live = match[1]!;
    if (!slots.includes(live)) throw corruption('engine home', path, `names ${live}, which is missing`);
    return live;
  }

  /** Replaces LIVE crash-safely: write LIVE.tmp, fsync it, rename over LIVE, fsync the directory. */
  private async writePointer(name: string): Promise<void> {
    const temp = this.path(POINTER_TEMP);
    const file = await this.vfs.open(temp, { create: true, truncate: true });
    try {
      const checksum = crc32c(Buffer.from(name, 'latin1')).toString(16).padStart(8, '0');
      await file.write(0, Buffer.from(`${name} ${checksum}\n`, 'latin1'));
      await file.sync();
    } finally {
      await file.close();
    }
    await this.vfs.rename(temp, this.path(POINTER));
    await this.vfs.syncDir(this.dir);
  }

  /**
   * No LIVE: a new home, or an interrupted first start (empty slot directories
   * made before LIVE was written). Anything else is data this layout did not
   * write: refuse it rather than start empty beside it or delete it.
   */
  private async refuseForeign(names: readonly string[], slots: readonly string[]): Promise<void> {
    const foreign = names.filter((name) => !SLOT_NAME.test(name) && name !== POINTER_TEMP);
    for (const slot of slots) if ((await this.vfs.list(this.path(slot))).length > 0) foreign.push(`${slot}/`);
    if (foreign.length === 0) return;
    throw new ImpulseError(
      'IMPULSE_ERR_DATA_FORMAT_UNSUPPORTED',
      `${this.dir} holds ${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? ', ...' : ''} but no ${POINTER} file: it was written by an older impulse (or ${POINTER} was deleted). ` +
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

/** A home that keeps nothing: every slot is a new in-memory engine. */
export class MemoryEngineHome implements EngineHome {
  readonly description = 'memory (nothing is kept)';

  constructor(private readonly createEngine: () => Engine) {}

  async openLive(): Promise<EngineSlot> {
    return this.createStaging();
  }

  async createStaging(): Promise<EngineSlot> {
    const engine = this.createEngine();
    await engine.open();
    return { name: 'memory', engine };
  }

  async promote(): Promise<void> {}

  async remove(slot: EngineSlot): Promise<void> {
    await slot.engine.close();
  }
}

function slotNumber(name: string): number {
  return Number(SLOT_NAME.exec(name)?.[1] ?? 0);
}
