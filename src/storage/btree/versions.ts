/**
 * Reader pins on committed versions of the `btree` engine.
 *
 * A reader that awaits I/O pins the version (the committed txn id) it reads,
 * for as long as it reads. A page freed by commit T belonged to version T-1
 * and earlier; the writer may hand it out again only once no pinned version is
 * older than T (`oldest()`), so a pinned reader never finds one of its pages
 * rewritten under it. Single-threaded (JavaScript); no locking.
 */
export class VersionPins {
  /** Committed txn id → number of readers on it. */
  private readonly readers = new Map<number, number>();

  /** Runs `read` with version `txn` pinned until the promise it returns settles. */
  async pinned<T>(txn: number, read: () => Promise<T>): Promise<T> {
    this.readers.set(txn, (this.readers.get(txn) ?? 0) + 1);
    try {
      return await read();
    } finally {
      const count = this.readers.get(txn)! - 1;
      if (count === 0) this.readers.delete(txn);
      else this.readers.set(txn, count);
    }
  }

  /** The oldest pinned txn id, or `Infinity` when no reader is active. */
  oldest(): number {
    let oldest = Infinity;
    for (const txn of this.readers.keys()) oldest = Math.min(oldest, txn);
    return oldest;
  }

  /** Readers currently active (a figure for stats). */
  get count(): number {
    let total = 0;
    for (const count of this.readers.values()) total += count;
    return total;
  }
}
