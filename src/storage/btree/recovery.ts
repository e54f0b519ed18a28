/**
 * Choosing the committed version when the `btree` engine opens a file, and
 * telling a crash from damage.
 *
 * Every commit writes its data pages, then BOTH copies of its meta slot
 * (meta.ts) with one write, then (a synced write) fsyncs once; it is
 * acknowledged after the fsync. Its pages may thus be lost with the meta page
 * kept: `proveChoice` checks the newest commit's pages (commit-proof.ts) and
 * otherwise opens its base, the last synced commit. What a crash can leave in
 * the slot being written: each copy is the old meta, the new meta, or (a torn
 * write) invalid — but never BOTH copies invalid:
 *
 *   1. A torn write keeps a prefix of what was written: the first copy can be
 *      cut, but then the second was not reached and still holds the old,
 *      valid meta (MemVfs models exactly this: 'torn' keeps a prefix of the
 *      unsynced writes and tears at most the first one it drops).
 *   2. Where a disk writes the sectors of one request in any order, each
 *      sector is still written whole or not at all (the assumption
 *      PostgreSQL makes for pg_control, kept under 512 bytes for it). A meta
 *      page's information sits in its first 512 bytes (at most 496: the record
 *      and a short inline free list, meta.ts) and the rest is zeros in every
 *      meta page, so a page made of old and new sectors is entirely the
 *      old page or entirely the new one: neither copy can come back torn.
 *
 * So when both copies of a slot fail their checks, no crash did it: data
 * that was written and synced has been damaged since (bit rot, a bad sector,
 * a stray write). The slot may have held the newest, acknowledged commit, and
 * starting from the other slot would silently lose it; opening refuses with
 * IMPULSE_ERR_ENGINE_CORRUPTION unless recovery 'previous-commit' accepts
 * that (the engine then verifies the older version's whole tree first, and
 * reports the rollback). One damaged or torn copy is harmless: its twin holds
 * the same commit, which is used, and the damaged copy is rewritten.
 *
 * When the two copies of a slot are both valid but hold different commits,
 * the newer one's meta write was interrupted: that commit is used when its
 * pages are proven (else its base is), and the stale copy is rewritten.
 */
import { corruption } from '../../util/corruption.js';
import type { VfsFile } from '../../vfs/vfs.js';
import { proveVersion } from './commit-proof.js';
import { claimedByDamagedMeta, decodeMeta, metaPage, type Meta } from './meta.js';
import type { Pager } from './pager.js';
import { META_PAGES, PAGE_BYTES_MAX, PAGE_BYTES_MIN } from './page.js';

/**
 * What opening does when one meta slot is damaged in both copies:
 * `refuse` (default) stops with IMPULSE_ERR_ENGINE_CORRUPTION;
 * `previous-commit` starts from the other slot's version once its tree
 * verifies, which loses the damaged slot's commit if it was the newest.
 */
export type BTreeRecoveryMode = 'refuse' | 'previous-commit';
export const BTREE_RECOVERY_MODES: readonly BTreeRecoveryMode[] = ['refuse', 'previous-commit'];

/** A meta page opening rewrites, and why. */
export interface MetaRepair {
  readonly page: number;
  readonly meta: Meta;
  readonly reason: string;
}

/** The version to open and what to fix on the way. */
export interface MetaChoice {
  readonly meta: Meta;
  /** The slot `meta` was read from (`txn % 2` when both hold it): the next commit writes the other. */
  readonly slot: number;
  /** The other slot's version, when that slot is intact (the fallback when `meta` is not proven). */
  readonly other?: Meta;
  /** Copies that are torn, damaged or stale (or, after a rollback, the damaged slot) to rewrite before writing. */
  readonly repairs: readonly MetaRepair[];
  /** Set when both copies of a slot were damaged and recovery 'previous-commit' chose the other slot. */
  readonly rollback?: { readonly damagedSlot: number; readonly reasons: readonly string[] };
  /** Set when the newest commit's pages were not all on disk and its base was opened instead (`proveChoice`). */
  readonly discarded?: { readonly txn: number; readonly keyCount: number; readonly reason: string };
}

/**
 * Reads the four meta pages of `file` and chooses the version to open (see
 * the file comment). The page size is recorded in the meta pages themselves
 * and slot 1 sits at an offset that depends on it, so `requestedPageBytes`
 * is tried first, then the other sizes. Throws IMPULSE_ERR_ENGINE_CORRUPTION
 * naming `path` when no version can be opened under `recovery`.
 */
export async function chooseMeta(file: VfsFile, path: string, requestedPageBytes: number, recovery: BTreeRecoveryMode): Promise<MetaChoice> {
  const reasons: string[] = [];
  const sizes = [requestedPageBytes];
  for (let size = PAGE_BYTES_MIN; size <= PAGE_BYTES_MAX; size *= 2) if (size !== requestedPageBytes) sizes.push(size);
  for (const pageBytes of sizes) {
    const reads: Array<Meta | string> = [];
    const claims: Array<string | undefined> = [];
    for (let page = 0; page < META_PAGES; page++) {
      const bytes = await file.read(page * pageBytes, pageBytes);
      const read = decodeMeta(bytes, page);
      reads.push(typeof read !== 'string' && read.pageBytes !== pageBytes ? `meta page ${page} is for page size ${read.pageBytes}` : read);
      const claim = typeof read === 'string' ? claimedByDamagedMeta(bytes) : undefined;
      claims.push(claim === undefined ? undefined : `commit ${claim.txn}, ${claim.keyCount} keys`);
    }
    if (reads.some((read) => typeof read !== 'string')) return classifyMetaPages(path, reads, recovery, claims);
    for (const read of reads) reasons.push(read as string);
  }
  throw corruption('btree', path, `no valid meta page (${[...new Set(reasons)].slice(0, 4).join('; ')})`);
}

/**
 * The decision of `chooseMeta` on the decoded meta pages `reads` (index =
 * page number; a string is why that page is not valid). `claims[page]`
 * describes what an invalid page claims to hold, unverified, for messages.
 * Pure; exported for tests.
 */
export function classifyMetaPages(
  path: string,
  reads: ReadonlyArray<Meta | string>,
  recovery: BTreeRecoveryMode,
  claims: ReadonlyArray<string | undefined> = [],
): MetaChoice {
  // Why each invalid page is invalid, with what it claims to hold when that is readable.
  const why = (page: number, read: string): string => (claims[page] === undefined ? read : `${read} (it claims, unverified: ${claims[page]})`);
  const slots = [0, 1].map((slot) => {
    const pages = [metaPage(slot, 0), metaPage(slot, 1)];
    const copies = pages.map((page) => reads[page]!);
    const valid = copies.filter((copy): copy is Meta => typeof copy !== 'string');
    const meta = valid.length === 0 ? undefined : valid.reduce((newer, copy) => (copy.txn > newer.txn ? copy : newer));
    const reasons = pages.flatMap((page, copy) => (typeof copies[copy] === 'string' ? [why(page, copies[copy])] : []));
    return { slot, copies, meta, reasons };
  });
  const intact = slots.filter((slot) => slot.meta !== undefined);
  if (intact.length === 0) throw corruption('btree', path, `no valid meta page (${slots.flatMap((slot) => slot.reasons).join('; ')})`);
  const repairs: MetaRepair[] = [];
  for (const { slot, copies, meta } of intact) {
    for (let copy = 0; copy < 2; copy++) {
      const read = copies[copy]!;
      if (typeof read === 'string') repairs.push({ page: metaPage(slot, copy), meta: meta!, reason: why(metaPage(slot, copy), read) });
      else if (read.txn !== meta!.txn) {
        repairs.push({ page: metaPage(slot, copy), meta: meta!, reason: `meta page ${metaPage(slot, copy)} held commit ${read.txn}, its twin commit ${meta!.txn} (an interrupted meta write)` });
      }
    }
  }
  if (intact.length === 2) {
    // Equal commits (a new file, or after a repair): the slot `txn % 2`, where a synced commit goes.
    const firstIsNewest = intact[0]!.meta!.txn > intact[1]!.meta!.txn || (intact[0]!.meta!.txn === intact[1]!.meta!.txn && intact[0]!.slot === intact[0]!.meta!.txn % 2);
    const [newest, other] = firstIsNewest ? [intact[0]!, intact[1]!] : [intact[1]!, intact[0]!];
    return { meta: newest.meta!, slot: newest.slot, other: other.meta!, repairs };
  }
  const damaged = slots.find((slot) => slot.meta === undefined)!;
  const survivor = intact[0]!.meta!;
  if (recovery !== 'previous-commit') {
    throw corruption(
      'btree',
      path,
      `both copies of meta slot ${damaged.slot} (pages ${metaPage(damaged.slot, 0)} and ${metaPage(damaged.slot, 1)}) are damaged (${damaged.reasons.join('; ')}). ` +
        `A crash cannot damage both copies, so data that was synced has been damaged since. The other slot holds commit ${survivor.txn}; ` +
        `if the damaged slot held commit ${survivor.txn + 1}, starting from ${survivor.txn} would lose it, so the engine refuses to start. ` +
        `To accept starting from commit ${survivor.txn}, open with recovery 'previous-commit'`,
    );
  }
  // The damaged slot gets the surviving meta in both copies (as a new file has): valid again, and the next commit overwrites it.
  for (let copy = 0; copy < 2; copy++) repairs.push({ page: metaPage(damaged.slot, copy), meta: survivor, reason: damaged.reasons[copy]! });
  return { meta: survivor, slot: intact[0]!.slot, repairs, rollback: { damagedSlot: damaged.slot, reasons: damaged.reasons } };
}

/**
 * Checks that the chosen version's pages written since its base are on disk
 * (commit-proof.ts). When they are not, its commit was interrupted before its
 * fsync, so it was never acknowledged: the choice becomes its base, which the
 * other slot must hold (a commit never writes the slot of its durable base)
 * and which must itself be proven, else opening refuses: a synced commit is
 * damaged. The discarded commit's slot is rewritten with the base's meta.
 * `pager` must allow reads up to both versions' page counts.
 */
export async function proveChoice(pager: Pager, choice: MetaChoice): Promise<MetaChoice> {
  const newest = choice.meta;
  const unproven = await proveVersion(pager, newest);
  if (unproven === undefined) return choice;
  const base = choice.other;
  if (base === undefined || base.txn !== newest.baseTxn) {
    throw corruption(
      'btree',
      pager.path,
      `commit ${newest.txn} (the newest meta page) is not all on disk (${unproven}), and the commit it was built on, ${newest.baseTxn}, which was synced, ` +
        `is not in the other meta slot (${base === undefined ? 'damaged' : `it holds commit ${base.txn}`}): refusing to start`,
    );
  }
  const baseUnproven = await proveVersion(pager, base);
  if (baseUnproven !== undefined) {
    throw corruption('btree', pager.path, `commit ${base.txn} was synced but its pages are damaged (${baseUnproven}); the newer commit ${newest.txn} is not all on disk either (${unproven}): refusing to start`);
  }
  const repairs = choice.repairs.filter((repair) => repair.page !== metaPage(choice.slot, 0) && repair.page !== metaPage(choice.slot, 1));
  for (let copy = 0; copy < 2; copy++) {
    repairs.push({ page: metaPage(choice.slot, copy), meta: base, reason: `meta slot ${choice.slot} held commit ${newest.txn}, whose pages are not all on disk` });
  }
  return { meta: base, slot: 1 - choice.slot, repairs, discarded: { txn: newest.txn, keyCount: newest.keyCount, reason: unproven } };
}
