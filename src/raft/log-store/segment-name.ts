/**
 * Segment file names: `<sequence>-<first index>.log`, both as 16 decimal
 * digits, e.g. `0000000000000003-0000000000012001.log` is the third segment
 * created, whose first entry (when it was created) was index 12001. Names
 * sort in creation order; the first index tells an operator where each file
 * begins (a truncation written later may reach below it).
 */
import { joinPath } from '../../vfs/vfs.js';

/** A segment file as its name describes it. */
export interface SegmentName {
  readonly sequence: number;
  readonly firstIndex: number;
  /** Path of the file (directory + name). */
  readonly path: string;
}

const DIGITS = 16;
const PATTERN = /^(\d{16})-(\d{16})\.log$/;

export function segmentFileName(sequence: number, firstIndex: number): string {
  return `${String(sequence).padStart(DIGITS, '0')}-${String(firstIndex).padStart(DIGITS, '0')}.log`;
}

export function segmentName(dir: string, sequence: number, firstIndex: number): SegmentName {
  return { sequence, firstIndex, path: joinPath(dir, segmentFileName(sequence, firstIndex)) };
}

/** The segment a file name in `dir` describes, or undefined for any other name. */
export function parseSegmentFileName(dir: string, name: string): SegmentName | undefined {
  const match = PATTERN.exec(name);
  if (match === null) return undefined;
  const sequence = Number(match[1]);
  const firstIndex = Number(match[2]);
  if (!Number.isSafeInteger(sequence) || !Number.isSafeInteger(firstIndex) || sequence < 1 || firstIndex < 1) return undefined;
  return { sequence, firstIndex, path: joinPath(dir, name) };
}
