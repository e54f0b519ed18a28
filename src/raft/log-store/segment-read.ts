/**
 * Reading entries that are no longer cached back from their segment: one
 * synchronous positional read per span of neighbouring records, every record
 * checked (checksums, type, length, index and term against the in-memory
 * index) before it is decoded, so damage is reported and never returned.
 */
import { corruption } from '../../util/corruption.js';
import type { VfsFile } from '../../vfs/vfs.js';
import type { Entry } from '../types.js';
import { COMPONENT, decodeEntry } from './codec.js';
import type { LogIndex } from './log-index.js';
import { readRecord, RECORD_HEADER_BYTES, RecordType } from './record.js';

/**
 * Appends entries [lo, end) to `out`. They must all lie in `file` (at
 * `path`), as the index says. Throws IMPULSE_ERR_ENGINE_CORRUPTION naming the
 * file and offset, or the Vfs's IMPULSE_ERR_ENGINE_IO. Entries' data are views
 * of the read buffer.
 */
export function readEntrySpan(file: VfsFile, path: string, index: LogIndex, lo: number, end: number, out: Entry[]): void {
  const start = index.offset(lo);
  const stop = index.offset(end - 1) + index.length(end - 1);
  const bytes = file.readSync!(start, stop - start);
  for (let i = lo; i < end; i++) {
    const offset = index.offset(i);
    const at = offset - start;
    const length = index.length(i);
    if (at + length > bytes.length) throw corruption(COMPONENT, path, `the file ends at ${start + bytes.length}, inside the record of entry ${i} at offset ${offset}`);
    const header = readRecord(bytes, at, at + length);
    if (header === undefined || header.type !== RecordType.entry || RECORD_HEADER_BYTES + header.bodyLength !== length) {
      throw corruption(COMPONENT, path, `the record of entry ${i} at offset ${offset} fails its checksum`);
    }
    const entry = decodeEntry(bytes, at + RECORD_HEADER_BYTES, at + length, path);
    if (entry.index !== i || entry.term !== index.term(i)) {
      throw corruption(COMPONENT, path, `the record at offset ${offset} holds entry ${entry.index} (term ${entry.term}), not ${i} (term ${index.term(i)})`);
    }
    out.push(entry);
  }
}
