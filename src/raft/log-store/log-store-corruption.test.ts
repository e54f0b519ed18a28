/**
 * Damage to a Raft log, through the store: a flipped bit in every kind of
 * record (segment header, entry of each kind, hard state, snapshot boundary
 * of each effect), in the last and in earlier segments; missing segments;
 * leftovers of an interrupted compaction; damage found by a read after open.
 *
 * The rule under test (recovery.ts): damage inside the final save of the last
 * segment looks exactly like a torn write, so it is cut off and reported;
 * anything else refuses to open with IMPULSE_ERR_ENGINE_CORRUPTION naming the
 * file and offset, unless `recovery: 'truncate-corrupt-tail'` is given, which
 * opens on the log up to the damaged save and reports what it discarded.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isImpulseError } from '../../errors.js';
import { MemVfs } from '../../../testkit/vfs/mem-vfs.js';
import { LogHistory, describeDifference, emptyLogState, saveAsync, type LogOperation, type LogState } from '../../../testkit/raft-log/log-model.js';
import type { Entry } from '../types.js';
import { SegmentedLogStore } from './log-store.js';
import { RecordType } from './record.js';
import { scanSegment, type ScannedRecord } from './segment-scan.js';

const DIR = 'raft/3';
const OPTIONS = { segmentBytesMax: 420, cacheBytesMax: 0 } as const;

const normal = (index: number, term: number, bytes = 40): Entry => ({ kind: 'normal', index, term, data: Buffer.alloc(bytes, index) });
const conf = (index: number, term: number): Entry => ({ kind: 'conf-change', index, term, change: { type: 'add-learner', nodeId: 4, context: Buffer.from('10.0.0.4:7000') }, confState: { voters: [1, 2, 3], learners: [4] } });
const members = { voters: [1, 2, 3], learners: [] };

/** Every kind of record, spread over several segments; old segments die at the compaction. */
const OPERATIONS: LogOperation[] = [
  { kind: 'save', update: { snapshot: null, entries: [], hardState: { term: 1, vote: 1, commit: 0 } } },
  { kind: 'save', update: { snapshot: null, entries: [normal(1, 1), normal(2, 1), normal(3, 1)], hardState: { term: 1, vote: 1, commit: 1 } } },
  { kind: 'save', update: { snapshot: null, entries: [conf(4, 1)], hardState: null } },
  { kind: 'save', update: { snapshot: null, entries: [normal(3, 2), conf(4, 2)], hardState: { term: 2, vote: 2, commit: 2 } } },
  { kind: 'save', update: { snapshot: { index: 6, term: 2, confState: members }, entries: [normal(7, 2), normal(8, 2)], hardState: { term: 2, vote: 2, commit: 6 } } },
  { kind: 'save', update: { snapshot: null, entries: [normal(9, 2)], hardState: { term: 2, vote: 2, commit: 8 } } },
  { kind: 'compact', meta: { index: 7, term: 2, confState: members } },
  { kind: 'save', update: { snapshot: null, entries: [conf(10, 2), normal(11, 2)], hardState: { term: 3, vote: 0, commit: 9 } } },
  { kind: 'save', update: { snapshot: null, entries: [normal(12, 3, 120)], hardState: { term: 3, vote: 0, commit: 10 } } },
  { kind: 'save', update: { snapshot: null, entries: [normal(13, 3)], hardState: null } },
  { kind: 'compact', meta: { index: 8, term: 2, confState: members } },
  { kind: 'save', update: { snapshot: null, entries: [normal(14, 3), normal(15, 3)], hardState: { term: 3, vote: 0, commit: 12 } } },
  { kind: 'save', update: { snapshot: null, entries: [normal(16, 3, 10)], hardState: null } },
  { kind: 'save', update: { snapshot: null, entries: [], hardState: { term: 3, vote: 0, commit: 16 } } },
  { kind: 'save', update: { snapshot: null, entries: [normal(17, 3, 10)], hardState: { term: 3, vote: 0, commit: 17 } } },
];

/** A log built from OPERATIONS, the model state after each operation (states[0]: before any) and its files. */
async function buildLog(): Promise<{ vfs: MemVfs; states: LogState[]; files: string[] }> {
  const vfs = new MemVfs();
  const store = await SegmentedLogStore.open(vfs, DIR, OPTIONS);
  const history = new LogHistory(emptyLogState());
  const states = [history.acknowledged];
  for (const operation of OPERATIONS) {
    await history.run(store, operation);
    states.push(history.acknowledged);
  }
  await store.close();
  return { vfs, states, files: vfs.fileNames() };
}

/** Every record of every file with its save's start, the save's position counted from the end of the log (1 = the final save). */
async function recordsOf(vfs: MemVfs, files: readonly string[]): Promise<Array<{ file: string; record: ScannedRecord; saveStart: number; savesFromEnd: number; lastFile: boolean }>> {
  const found = [];
  let savesAfter = 0;
  for (let f = files.length - 1; f >= 0; f--) {
    const file = files[f]!;
    const scan = scanSegment(await vfs.readFile(file), f === files.length - 1);
    assert.equal(scan.damage, null);
    for (let s = scan.saves.length - 1; s >= 0; s--) {
      savesAfter++;
      const save = scan.saves[s]!;
      for (const record of save) found.push({ file, record, saveStart: save[0]!.offset, savesFromEnd: savesAfter, lastFile: f === files.length - 1 });
    }
  }
  return found;
}

async function openError(vfs: MemVfs, options: object = OPTIONS): Promise<Error | undefined> {
  try {
    const store = await SegmentedLogStore.open(vfs, DIR, options);
    await store.close();
    return undefined;
  } catch (error) {
    return error as Error;
  }
}

async function openFails(vfs: MemVfs, options: object = OPTIONS): Promise<Error> {
  const error = await openError(vfs, options);
  assert.ok(error !== undefined, 'open succeeded');
  return error;
}

describe('raft log corruption', () => {
  it('the test log has every kind of record in the last and in earlier segments', async () => {
    const { vfs, files } = await buildLog();
    assert.ok(files.length >= 3, `${files.length} segments`);
    const records = await recordsOf(vfs, files);
    for (const lastFile of [true, false]) {
      const types = new Set(records.filter((r) => r.lastFile === lastFile).map((r) => r.record.type));
      for (const type of Object.values(RecordType)) assert.ok(types.has(type), `no record of type ${type} in ${lastFile ? 'the last' : 'an earlier'} segment`);
    }
  });

  it('a flipped bit in any record: the final save is cut off as a torn tail; anything else refuses, naming file and offset, or with the option is discarded and reported', async () => {
    const { vfs, states, files } = await buildLog();
    const total = OPERATIONS.length;
    let torn = 0;
    let refused = 0;
    let exact = 0;
    for (const { file, record, saveStart, savesFromEnd } of await recordsOf(vfs, files)) {
      const bodyLength = record.length - 20;
      for (const offset of [record.offset + 9, record.offset + 20 + (bodyLength >> 1)]) {
        if (offset >= record.offset + record.length) continue;
        const damaged = vfs.recover('keep-unsynced');
        damaged.flipBit(file, offset, offset % 8);
        const where = `a flip at ${file}:${offset} (record type ${record.type} at ${record.offset})`;
        if (savesFromEnd === 1) {
          const store = await SegmentedLogStore.open(damaged, DIR, OPTIONS);
          assert.equal(describeDifference(store, states[total - 1]!), undefined, where);
          assert.equal(store.recoveryReport.tornTail?.file, file);
          assert.equal(store.recoveryReport.tornTail?.offset, saveStart);
          assert.ok(store.stats()['torn_tail_bytes_discarded']! > 0);
          await store.close();
          torn++;
          continue;
        }
        const error = await openFails(damaged.recover('keep-unsynced'));
        assert.ok(isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'), `${where}: ${error.message}`);
        assert.ok(error.message.includes(file) && /offset \d+/.test(error.message), `${where}: the error names no file and offset: ${error.message}`);
        refused++;
        const repaired = damaged.recover('keep-unsynced');
        const store = await SegmentedLogStore.open(repaired, DIR, { ...OPTIONS, recovery: 'truncate-corrupt-tail' });
        // The log as it was before the damaged save (savesFromEnd saves gone, counting from the last operation),
        // or, when a compaction after the damage had deleted segments that prefix still needs, an earlier one.
        const before = Math.max(0, total - savesFromEnd);
        let matching = before;
        while (matching >= 0 && describeDifference(store, states[matching]!) !== undefined) matching--;
        assert.ok(matching >= 0, `${where}: the log is no earlier state: ${describeDifference(store, states[before]!)}`);
        if (matching === before) exact++;
        const report = store.recoveryReport.corruptionDiscarded;
        assert.ok(report !== null && report.bytes > 0 && report.reason.length > 0, where);
        if (matching === before) assert.deepEqual([report.file, report.offset], [file, saveStart], where);
        await store.close();
        // The repair is on disk: a strict open now works and sees the same log.
        const again = await SegmentedLogStore.open(repaired, DIR, OPTIONS);
        assert.equal(describeDifference(again, states[matching]!), undefined, `${where}, reopened`);
        await again.close();
      }
    }
    assert.ok(torn > 0 && refused > 20 && exact > refused / 4, `torn ${torn}, refused ${refused} (exactly the state before the damaged save: ${exact})`);
  });

  it('a missing segment in the middle refuses to open; the option keeps the log before it', async () => {
    const vfs = new MemVfs();
    const store = await SegmentedLogStore.open(vfs, DIR, { segmentBytesMax: 300 });
    for (let i = 1; i <= 8; i++) await saveAsync(store, { snapshot: null, entries: [normal(i, 1, 90)], hardState: { term: 1, vote: 1, commit: i } });
    await store.close();
    const files = vfs.fileNames();
    assert.ok(files.length >= 5, `${files.length} segments`);
    const damaged = vfs.recover('keep-unsynced');
    await damaged.unlink(files[2]!);
    const error = await openFails(damaged);
    assert.ok(isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION') && /missing/.test(error.message), error.message);
    const repaired = await SegmentedLogStore.open(damaged, DIR, { ...OPTIONS, recovery: 'truncate-corrupt-tail' });
    const kept = scanSegment(await damaged.readFile(files[1]!), true);
    assert.ok(kept.saves.length > 0);
    assert.equal(repaired.lastIndex(), Number(files[2]!.slice(-20, -4)) - 1, 'the log ends where the missing segment began');
    assert.deepEqual(repaired.recoveryReport.corruptionDiscarded?.segmentsRemoved, files.slice(3));
    assert.deepEqual(damaged.fileNames(), files.slice(0, 2));
    await repaired.close();
  });

  it('a missing newest segment while its predecessor has only a torn start is damage, not an empty log', async () => {
    const { vfs, files } = await buildLog();
    const damaged = vfs.recover('keep-unsynced');
    for (const file of files.slice(0, -1)) await damaged.unlink(file);
    const last = files.at(-1)!;
    const file = await damaged.open(last);
    await file.truncate(10);
    await file.close();
    assert.match((await openFails(damaged)).message, /is missing/);
  });

  it('a log whose creation was cut short opens as a new log and reports the torn first segment', async () => {
    const vfs = new MemVfs();
    await (await SegmentedLogStore.open(vfs, DIR, OPTIONS)).close();
    const [first] = vfs.fileNames();
    const file = await vfs.open(first!);
    await file.truncate(30);
    await file.close();
    const store = await SegmentedLogStore.open(vfs, DIR, OPTIONS);
    assert.equal(describeDifference(store, emptyLogState()), undefined);
    assert.deepEqual([store.recoveryReport.tornTail?.bytes, store.recoveryReport.tornTail?.segmentsRemoved], [30, [first]]);
    await store.close();
  });

  it('old segments an interrupted compaction left behind are removed and reported; one still needed is damage', async () => {
    const vfs = new MemVfs();
    let store = await SegmentedLogStore.open(vfs, DIR, { segmentBytesMax: 300 });
    const history = new LogHistory(emptyLogState());
    await history.run(store, { kind: 'save', update: { snapshot: null, entries: [], hardState: { term: 1, vote: 1, commit: 0 } } });
    for (let i = 1; i <= 12; i++) await history.run(store, { kind: 'save', update: { snapshot: null, entries: [normal(i, 1, 90)], hardState: { term: 1, vote: 1, commit: i } } });
    const before = vfs.fileNames();
    const copies = new Map(await Promise.all(before.map(async (name) => [name, await vfs.readFile(name)] as const)));
    await history.run(store, { kind: 'compact', meta: { index: 9, term: 1, confState: { voters: [], learners: [] } } });
    await store.close();
    const deleted = before.filter((name) => !vfs.fileNames().includes(name));
    assert.ok(deleted.length >= 3, `${deleted.length} segments deleted`);

    // The unlink of the second-oldest did not survive, the others did: a gap, below the boundary.
    const leftover = vfs.recover('keep-unsynced');
    const file = await leftover.open(deleted[1]!, { create: true });
    await file.write(0, copies.get(deleted[1]!)!);
    await file.close();
    store = await SegmentedLogStore.open(leftover, DIR, OPTIONS);
    assert.equal(describeDifference(store, history.acknowledged), undefined);
    assert.deepEqual(store.recoveryReport.leftoverSegmentsRemoved, [deleted[1]]);
    assert.equal(store.stats()['leftover_segments_removed'], 1);
    await store.close();
    assert.ok(!leftover.fileNames().includes(deleted[1]!));

    // A segment that still holds needed entries is missing: the oldest one left.
    const needed = vfs.recover('keep-unsynced');
    await needed.unlink(vfs.fileNames()[0]!);
    assert.match((await openFails(needed)).message, /are needed .* is missing/);
  });

  it('damage found by a read after open is reported naming the file, and the log stops (fail-stop)', async () => {
    const { vfs, files } = await buildLog();
    const store = await SegmentedLogStore.open(vfs, DIR, OPTIONS);
    const records = await recordsOf(vfs, files);
    const entry = records.find((r) => r.record.type === RecordType.entry && r.savesFromEnd > 3)!;
    vfs.flipBit(entry.file, entry.record.bodyEnd - 1, 2);
    const read = (): Entry[] => store.entries(store.firstIndex(), store.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
    assert.throws(read, (error) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION') && error.message.includes(entry.file) && /offset/.test(error.message));
    assert.throws(() => store.lastIndex(), (error) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'));
    const saved = await new Promise<Error | null>((resolve) => store.save({ snapshot: null, entries: [], hardState: { term: 9, vote: 0, commit: 0 } }, resolve));
    assert.ok(isImpulseError(saved, 'IMPULSE_ERR_ENGINE_CORRUPTION'));
    await store.close();
  });

  it('tells the logger what recovery discarded', async () => {
    const { vfs, files } = await buildLog();
    const last = files.at(-1)!;
    const damaged = vfs.recover('keep-unsynced');
    const size = await damaged.size(last);
    damaged.flipBit(last, size - 3, 1);
    const warnings: Array<{ details: Record<string, unknown>; message: string }> = [];
    const store = await SegmentedLogStore.open(damaged, DIR, { ...OPTIONS, logger: { warn: (details, message) => warnings.push({ details, message }) } });
    await store.close();
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!.message, /torn tail/);
    assert.equal(warnings[0]!.details['file'], last);
    // The hard state (last record) is damaged; the entry before it in the same save is intact and counted.
    assert.deepEqual([warnings[0]!.details['records'], warnings[0]!.details['firstIndex'], warnings[0]!.details['lastIndex']], [1, 17, 17]);
    assert.equal(await openError(damaged), undefined);
  });
});
