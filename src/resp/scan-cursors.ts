/**
 * SCAN cursors. Redis clients treat a cursor as a decimal number (redis-cli
 * `--scan` parses it with strtoull), but where a scan stands in impulse is a
 * key of up to 64 KiB. So a cursor is a number naming an entry of this
 * table, which holds the last key the page returned.
 *
 * The table belongs to one node and is bounded in entries and key bytes; the
 * oldest cursor goes first (Map insertion order). A cursor that was evicted,
 * or that another node or an earlier process issued, is refused with Redis's
 * "invalid cursor": the client starts over from 0. Cursor numbers start at a
 * random offset, so a restarted node does not resolve an old number to a
 * different scan.
 */
import { randomInt } from 'node:crypto';

export interface CursorLimits {
  /** Most live cursors on one node. */
  readonly cursorsMax: number;
  /** Most key bytes the live cursors hold together. */
  readonly cursorBytesMax: number;
}

/** Where a scan continues: strictly after `after`. */
export interface CursorPosition {
  readonly after: Buffer;
}

export class ScanCursors {
  private readonly entries = new Map<bigint, CursorPosition>();
  private bytes = 0;
  private nextId: bigint;

  constructor(private readonly limits: CursorLimits) {
    // Below 2^48 to start with: ids stay well inside an unsigned 64-bit number for the life of a process.
    this.nextId = BigInt(randomInt(1, 2 ** 47));
  }

  get size(): number {
    return this.entries.size;
  }

  /** Registers a position and returns its cursor (never "0", which means "start" and "done"). */
  issue(position: CursorPosition): string {
    const id = this.nextId++;
    this.entries.set(id, position);
    this.bytes += position.after.length;
    while (this.entries.size > this.limits.cursorsMax || this.bytes > this.limits.cursorBytesMax) {
      const [oldest, dropped] = this.entries.entries().next().value as [bigint, CursorPosition];
      this.entries.delete(oldest);
      this.bytes -= dropped.after.length;
    }
    return id.toString();
  }

  /**
   * The position of `cursor`: null for "0" (a new scan), undefined when the
   * cursor is not a number or not known here. A cursor stays valid after use,
   * so a client may repeat a page (as with Redis); it goes when evicted.
   */
  resolve(cursor: string): CursorPosition | null | undefined {
    if (!/^[0-9]{1,20}$/.test(cursor)) return undefined;
    const id = BigInt(cursor);
    if (id === 0n) return null;
    return this.entries.get(id);
  }
}
