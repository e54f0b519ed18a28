/**
 * How a `btree` meta page proves that its commit's pages reached the disk, so
 * a commit needs one fsync (pages and meta page written together) instead of
 * two (pages, fsync, meta page, fsync).
 *
 * A meta page records its BASE (`Meta.baseTxn`: the newest commit known
 * synced when it was written) and a proof of the PROOF SET: the pages
 * reachable in its version (tree pages, their overflow runs, the free-list
 * chain) whose commit stamp is later than the base. Everything else the
 * version reaches was written by the base or earlier and synced then, and the
 * engine never reuses a page the durable base still needs (btree-engine.ts),
 * so the proof set is exactly what a power loss before this commit's fsync
 * may have lost. The proof is the set's size and an order-independent digest
 * (a sum of CRC-32C terms of (page number, page checksum), so the engine keeps
 * it up to date as commits add and free pages, without sorting).
 *
 * At open, `proveVersion` walks the version, descending only into pages
 * stamped after the base (a page of the base or earlier is durable and stops
 * the walk), and recomputes the proof. A page whose write was lost holds
 * zeros, a torn mix, or an older page: it fails its checksum, or its stamp is
 * not after the base (it drops out of the set), or its checksum differs from
 * the one the digest was made with. Any of these changes the count or the
 * digest (a random 32-bit match aside), so the version is reported unproven
 * and opening falls back to the base (recovery in btree-engine.ts).
 *
 * Who calls: the write transaction (txn.ts) computes a commit's proof with
 * `UnsyncedPages`; the engine owns that set and calls `proveVersion` at open.
 */
import { isImpulseError } from '../../errors.js';
import { crc32c } from '../../util/crc32c.js';
import type { Meta } from './meta.js';
import type { PageWrite, Pager } from './pager.js';
import { childAt, decodeFreeListPage, pageStamp, PageType, scanEntries, verifyPage, type OverflowRef, type PageView } from './page.js';

/** One page of a proof set: its number and the checksum in its header. */
export interface ProvedPage {
  readonly page: number;
  readonly checksum: number;
}

/** The proof a meta page carries. */
export interface Proof {
  readonly pages: number;
  readonly digest: number;
}

const termBytes = Buffer.alloc(8);

/**
 * The digest term of one page: CRC-32C of its page number and checksum, so a
 * changed checksum or page number changes the term. Terms are summed mod 2^32
 * (not XORed), so a term cannot cancel itself out of the digest.
 */
function term(page: number, checksum: number): number {
  termBytes.writeUInt32LE(page, 0);
  termBytes.writeUInt32LE(checksum, 4);
  return crc32c(termBytes);
}

/** The pages of `writes` (whole pages each) with the checksums in their headers. */
export function provedPagesOf(writes: readonly PageWrite[], pageBytes: number): ProvedPage[] {
  const pages: ProvedPage[] = [];
  for (const write of writes) {
    for (let index = 0; index * pageBytes < write.bytes.length; index++) {
      pages.push({ page: write.page + index, checksum: write.bytes.readUInt32LE(index * pageBytes) });
    }
  }
  return pages;
}

/**
 * The proof set of the committed version, kept by the engine across
 * commits: pages reachable in it and written since the last synced commit.
 * Bounded by the engine, which syncs when it grows (btree-engine.ts).
 */
export class UnsyncedPages {
  private readonly checksums = new Map<number, number>();
  private digest = 0;

  get size(): number {
    return this.checksums.size;
  }

  /** Whether `page` is in the set: reachable in the committed version and written after its base. */
  has(page: number): boolean {
    return this.checksums.has(page);
  }

  /** The proof of the set after freeing `freed` and adding `added`, without changing it (the commit may still fail). */
  preview(freed: readonly number[], added: readonly ProvedPage[]): Proof {
    let digest = this.digest;
    let pages = this.checksums.size;
    for (const page of freed) {
      const checksum = this.checksums.get(page);
      if (checksum === undefined) continue;
      digest -= term(page, checksum);
      pages--;
    }
    for (const { page, checksum } of added) {
      digest += term(page, checksum);
      pages++;
    }
    return { pages, digest: digest >>> 0 };
  }

  /** Applies a committed transaction: `freed` left the version, `added` joined it (pages `freed` does not hold). */
  apply(freed: readonly number[], added: readonly ProvedPage[]): void {
    for (const page of freed) {
      const checksum = this.checksums.get(page);
      if (checksum === undefined) continue;
      this.checksums.delete(page);
      this.digest = (this.digest - term(page, checksum)) >>> 0;
    }
    for (const { page, checksum } of added) {
      this.checksums.set(page, checksum);
      this.digest = (this.digest + term(page, checksum)) >>> 0;
    }
  }

  /** A sync made the committed version durable: nothing is left to prove. */
  clear(): void {
    this.checksums.clear();
    this.digest = 0;
  }
}

/**
 * Whether version `meta`'s proof set is on disk as its commit wrote it:
 * undefined when it is, else why not (a sentence). Reads from the file, not
 * the cache; the pager must allow reads up to `meta.pageCount`. Corruption
 * found on the way is an answer ("not proven"), not an error; other I/O
 * errors are thrown.
 */
export async function proveVersion(pager: Pager, meta: Meta): Promise<string | undefined> {
  if (meta.baseTxn === meta.txn) return undefined;
  const size = await pager.file.size();
  if (size < meta.pageCount * pager.geometry.pageBytes) return `the file has ${size} bytes, the commit needs ${meta.pageCount} pages`;
  const found = { pages: 0, digest: 0 };
  const add = (page: number, bytes: Buffer): void => {
    found.pages++;
    found.digest = (found.digest + term(page, bytes.readUInt32LE(0))) >>> 0;
  };
  try {
    if (meta.root !== 0) await walkUnsynced(pager, meta, meta.root, 1, add);
    let page = meta.freeListPage;
    for (let steps = 0; page !== 0 && steps < meta.pageCount; steps++) {
      const bytes = await pager.readRaw(page, 1);
      const { nextPage } = decodeFreeListPage(pager.path, pager.geometry, page, bytes, meta.txn);
      if (pageStamp(bytes) > meta.baseTxn) add(page, bytes);
      page = nextPage;
    }
  } catch (error) {
    if (isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION')) return error.message;
    throw error;
  }
  if (found.pages === meta.proofPages && found.digest === meta.proofDigest) return undefined;
  return `${found.pages} of its pages written after commit ${meta.baseTxn} are on disk as written, the meta page lists ${meta.proofPages} (digest ${found.digest.toString(16)}, expected ${meta.proofDigest.toString(16)})`;
}

/** Adds tree page `page` (at `level`, 1 = root) and what it reaches to the proof when it was written after the base. */
async function walkUnsynced(pager: Pager, meta: Meta, page: number, level: number, add: (page: number, bytes: Buffer) => void): Promise<void> {
  const bytes = await pager.readRaw(page, 1);
  const type = verifyPage(pager.path, page, bytes, pager.geometry.pageBytes, [PageType.Leaf, PageType.Branch], meta.txn) as PageType.Leaf | PageType.Branch;
  if (pageStamp(bytes) <= meta.baseTxn) return;
  add(page, bytes);
  const { keyRuns, valueRuns } = scanEntries(pager.path, page, bytes);
  for (const { ref } of keyRuns) await addRun(pager, meta, ref, add);
  if (type === PageType.Leaf || level >= meta.depth) {
    for (const ref of type === PageType.Leaf ? valueRuns : []) await addRun(pager, meta, ref, add);
    return;
  }
  const count = bytes.readUInt16LE(6);
  const view: PageView = { page, stamp: pageStamp(bytes), bytes, type, count, bigKeys: undefined, keyRuns: [] };
  for (let index = 0; index <= count; index++) await walkUnsynced(pager, meta, childAt(view, index), level + 1, add);
}

/** Adds an overflow run's pages when it was written after the base (a run is written whole by one commit: its first page tells). */
async function addRun(pager: Pager, meta: Meta, ref: OverflowRef, add: (page: number, bytes: Buffer) => void): Promise<void> {
  const pageBytes = pager.geometry.pageBytes;
  const first = await pager.readRaw(ref.page, 1);
  verifyPage(pager.path, ref.page, first, pageBytes, [PageType.Overflow], meta.txn);
  if (pageStamp(first) <= meta.baseTxn) return;
  const pages = pager.geometry.runPages(ref.length);
  const run = pages === 1 ? first : await pager.readRaw(ref.page, pages);
  for (let index = 0; index < pages; index++) {
    const bytes = run.subarray(index * pageBytes, (index + 1) * pageBytes);
    verifyPage(pager.path, ref.page + index, bytes, pageBytes, [PageType.Overflow], meta.txn);
    add(ref.page + index, bytes);
  }
}
