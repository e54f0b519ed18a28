/**
 * The WAL on its own: the writer's format, the reader's torn-versus-damaged
 * judgement (wal-reader.ts) and the recovery modes across segments
 * (wal-recovery.ts). Damage here is planted directly in segment files on a
 * MemVfs: single flipped bits, damaged stretches of every length (the case a
 * single-bit test cannot see: payload and trailer damaged together with
 * complete records after them), cut files, and missing segments.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isImpulseError } from '../../errors.js';
import { SeededRandom } from '../../util/random.js';
import { MemVfs } from '../../../testkit/vfs/mem-vfs.js';
import type { WriteOp } from '../engine.js';
import { walFileName } from './manifest.js';
import type { LsmMutations } from './options.js';
import { type WalCreateOptions, WalWriter } from './wal.js';
import { replayBatch, scanSegment } from './wal-reader.js';
import { type FoundSegment, type WalRecoveryMode, type WalRecoveryPlan, planWalRecovery } from './wal-recovery.js';

const DIR = 'db';
const PREALLOCATED = 4096;

const batch = (i: number): WriteOp[] => [
  { type: 'put', key: Buffer.from(`key-${String(i).padStart(4, '0')}`), value: Buffer.alloc(20 + (i % 13), i + 1) },
  { type: 'del', key: Buffer.from(`gone-${i}`) },
];

/** Writes segment `number` with records `first .. first+count-1`; returns the end offset of each record (index 0: the header's end). */
async function writeSegment(vfs: MemVfs, number: number, first: number, count: number, options: Partial<WalCreateOptions> = {}): Promise<{ wal: WalWriter; ends: number[] }> {
  await vfs.mkdir(DIR);
  const wal = await WalWriter.create(vfs, DIR, `${DIR}/${walFileName(number)}`, number, { syncMode: 'fsync', preallocatedBytes: PREALLOCATED, ...options });
  const ends = [wal.position];
  for (let i = first; i < first + count; i++) {
    await wal.append(batch(i), options.syncMode !== 'none');
    ends.push(wal.position);
  }
  return { wal, ends };
}

async function found(vfs: MemVfs, numbers: readonly number[]): Promise<FoundSegment[]> {
  const segments: FoundSegment[] = [];
  for (const number of numbers) {
    const path = `${DIR}/${walFileName(number)}`;
    if (!(await vfs.exists(path))) continue;
    segments.push({ number, name: walFileName(number), scan: scanSegment(await vfs.readFile(path), path) });
  }
  return segments;
}

/** Plans recovery and replays it; returns the plan and the replayed keys in order. */
async function recoverKeys(vfs: MemVfs, numbers: readonly number[], mode: WalRecoveryMode = 'tolerate-tail', logNumber = numbers[0]!, mutations: LsmMutations = {}): Promise<{ plan: WalRecoveryPlan; keys: string[] }> {
  const plan = planWalRecovery(await found(vfs, numbers), logNumber, walFileName(logNumber), mode, mutations);
  const keys: string[] = [];
  for (const { segment, record } of plan.replay) replayBatch(segment.scan, record, (key, value) => keys.push(`${key.toString()}=${value === null ? 'del' : value.length}`));
  return { plan, keys };
}

const keysOf = (first: number, count: number): string[] => Array.from({ length: count }, (_, i) => batch(first + i)).flatMap((ops) => ops.map((op) => `${Buffer.from(op.key).toString()}=${op.type === 'del' ? 'del' : op.value.length}`));

/** A copy of `vfs` (everything durable) with `edit` applied to the bytes of segment `number`. */
async function edited(vfs: MemVfs, number: number, edit: (bytes: Buffer) => Buffer): Promise<MemVfs> {
  const copy = vfs.recover('keep-unsynced');
  const path = `${DIR}/${walFileName(number)}`;
  const bytes = edit(Buffer.from(await copy.readFile(path)));
  await copy.unlink(path);
  const file = await copy.open(path, { create: true });
  await file.write(0, bytes);
  await file.sync();
  await file.close();
  await copy.syncDir(DIR);
  return copy;
}

function isRefusal(file: string): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'), String(error));
    assert.match((error as Error).message, new RegExp(file.replace('.', '\\.')));
    assert.match((error as Error).message, /point-in-time/);
    return true;
  };
}

describe('lsm WAL: clean segments and torn tails', () => {
  it('replays every record of a segment that ends cleanly in its preallocated zeros', async () => {
    const vfs = new MemVfs();
    const { ends } = await writeSegment(vfs, 5, 0, 6);
    assert.equal(await vfs.size(`${DIR}/${walFileName(5)}`), PREALLOCATED);
    assert.ok(ends[6]! < PREALLOCATED);
    const { plan, keys } = await recoverKeys(vfs, [5]);
    assert.deepEqual(keys, keysOf(0, 6));
    assert.deepEqual(plan.discarded, []);
    assert.deepEqual(plan.last, { number: 5, end: ends[6] });
  });

  it('discards a final record torn at any byte (prefix written, zeros after) as a torn tail, keeping the records before it', async () => {
    const vfs = new MemVfs();
    const { ends } = await writeSegment(vfs, 5, 0, 6);
    for (let cut = ends[5]!; cut < ends[6]!; cut++) {
      const torn = await edited(vfs, 5, (bytes) => bytes.fill(0, cut, ends[6]!));
      const { plan, keys } = await recoverKeys(torn, [5]);
      assert.deepEqual(keys, keysOf(0, 5), `cut at ${cut}`);
      assert.deepEqual(plan.discarded.map((discard) => discard.kind), cut === ends[5] ? [] : ['torn-tail'], `cut at ${cut}`);
      assert.equal(plan.damaged, false);
    }
  });

  it('a torn record that grew the file past its preallocation may end in garbage', async () => {
    const vfs = new MemVfs();
    const { ends } = await writeSegment(vfs, 5, 0, 4, { preallocatedBytes: 200 });
    assert.ok(ends[4]! > 200, 'the records outgrew the preallocation');
    for (const cut of [ends[3]! + 3, ends[3]! + 20, ends[4]! - 1]) {
      const torn = await edited(vfs, 5, (bytes) => {
        for (let i = cut; i < ends[4]!; i++) bytes[i] = (i * 131 + 7) & 0xff;
        return bytes;
      });
      const { plan, keys } = await recoverKeys(torn, [5]);
      assert.deepEqual(keys, keysOf(0, 3), `cut at ${cut}`);
      assert.deepEqual(plan.discarded.map((discard) => discard.kind), ['torn-tail']);
    }
  });
});

describe('lsm WAL: creating a segment', () => {
  it('when preallocation fails (a file-size limit, a nearly full disk) creates the segment without it, saying so in its header; a cut is then not misread', async () => {
    const vfs = new MemVfs();
    vfs.inject({ name: 'EFBIG on truncate', decide: (op) => (op.operation === 'file.truncate' ? { errno: 'EFBIG' } : undefined) });
    const { ends } = await writeSegment(vfs, 5, 0, 6);
    assert.equal(await vfs.size(`${DIR}/${walFileName(5)}`), ends[6], 'no preallocated zeros');
    assert.deepEqual(await vfs.list(DIR), [walFileName(5)], 'the temporary file is gone');
    const { plan, keys } = await recoverKeys(vfs, [5]);
    assert.deepEqual(keys, keysOf(0, 6));
    assert.deepEqual(plan.discarded, []);
  });

  it('an I/O error while preallocating (or at any other step) fails the creation and leaves nothing behind', async () => {
    const vfs = new MemVfs();
    vfs.inject({ name: 'EIO on truncate', decide: (op) => (op.operation === 'file.truncate' ? 'error' : undefined) });
    await assert.rejects(writeSegment(vfs, 5, 0, 1), /EIO/);
    assert.deepEqual(await vfs.list(DIR), []);
  });
});

describe('lsm WAL: damage is refused, not taken for a torn tail', () => {
  it('a flipped bit anywhere in the written records is refused naming the segment (or, in the last 12 bytes after them, loses nothing)', async () => {
    const vfs = new MemVfs();
    const { ends } = await writeSegment(vfs, 5, 0, 5);
    let refused = 0;
    for (let offset = 0; offset < ends[5]! + 64; offset++) {
      const damaged = await edited(vfs, 5, (bytes) => {
        bytes[offset]! ^= 1 << (offset % 8);
        return bytes;
      });
      try {
        const { keys } = await recoverKeys(damaged, [5]);
        // Not refused: only stray bits in the zeros right after the last record, which a torn header looks like: nothing lost.
        assert.ok(offset >= ends[5]!, `flip at ${offset} (inside the records) was not refused`);
        assert.deepEqual(keys, keysOf(0, 5));
      } catch (error) {
        assert.ok(isRefusal(walFileName(5))(error));
        refused++;
      }
    }
    assert.ok(refused >= ends[5]!, `${refused} refusals`);
  });

  it('a damaged stretch of any length in a record followed by complete records is refused: payload and trailer together, zeros or garbage', async () => {
    const vfs = new MemVfs();
    const { ends } = await writeSegment(vfs, 5, 0, 6);
    const random = new SeededRandom(17);
    for (let trial = 0; trial < 300; trial++) {
      const record = 1 + random.int(4); // records 1..4 have complete records after them
      const start = ends[record - 1]! + random.int(ends[record]! - ends[record - 1]!);
      const length = 1 + random.int(48);
      const fill = random.chance(0.5) ? 'zeros' : 'garbage';
      const damaged = await edited(vfs, 5, (bytes) => {
        for (let i = start; i < Math.min(start + length, ends[6]!); i++) bytes[i] = fill === 'zeros' ? 0 : (bytes[i]! + 1 + random.int(255)) & 0xff;
        return bytes;
      });
      await assert.rejects(recoverKeys(damaged, [5]), isRefusal(walFileName(5)), `${fill} at ${start} (+${length}) in record ${record + 1}`);
    }
    // The case named in the issue: the end of a payload and its trailer, with records after it.
    const payloadAndTrailer = await edited(vfs, 5, (bytes) => bytes.fill(0xa5, ends[3]! - 14, ends[3]!));
    await assert.rejects(recoverKeys(payloadAndTrailer, [5]), isRefusal(walFileName(5)));
    // The planted bug (the old reader): that damage taken for a torn tail, silently dropping the three complete records after it.
    const planted = await recoverKeys(payloadAndTrailer, [5], 'tolerate-tail', 5, { walDamageAsTornTail: true });
    assert.deepEqual(planted.keys, keysOf(0, 2), 'the planted bug opens and loses records: the refusal above is what catches it');
  });

  it('damage to the final record that a torn write cannot produce is refused: a bad payload under an intact trailer, a damaged header before an intact payload', async () => {
    const vfs = new MemVfs();
    const { ends } = await writeSegment(vfs, 5, 0, 4);
    const payload = await edited(vfs, 5, (bytes) => {
      bytes[ends[3]! + 15]! ^= 0x10;
      return bytes;
    });
    await assert.rejects(recoverKeys(payload, [5]), isRefusal(walFileName(5)));
    const header = await edited(vfs, 5, (bytes) => bytes.fill(0, ends[3]!, ends[3]! + 12));
    await assert.rejects(recoverKeys(header, [5]), isRefusal(walFileName(5)));
  });

  it('a segment cut short (to any length, to nothing) is refused; point-in-time keeps the records before the cut and says what it discarded', async () => {
    const vfs = new MemVfs();
    const { ends } = await writeSegment(vfs, 5, 0, 6);
    for (const cut of [0, 7, ends[0]!, ends[2]!, ends[2]! + 5, ends[6]!, PREALLOCATED - 1]) {
      const cutVfs = await edited(vfs, 5, (bytes) => bytes.subarray(0, cut));
      await assert.rejects(recoverKeys(cutVfs, [5]), isRefusal(walFileName(5)), `cut to ${cut}`);
      const { plan, keys } = await recoverKeys(cutVfs, [5], 'point-in-time');
      const whole = ends.filter((end, index) => index > 0 && end <= cut).length;
      assert.deepEqual(keys, keysOf(0, whole), `cut to ${cut}`);
      assert.equal(plan.damaged, true);
      assert.ok(plan.discarded.some((discard) => discard.kind === 'damaged' && discard.file === walFileName(5)), JSON.stringify(plan.discarded));
    }
  });

  it('point-in-time stops at the damage and counts the complete records it discards; skip-corrupted replays around it', async () => {
    const vfs = new MemVfs();
    const { ends } = await writeSegment(vfs, 5, 0, 6);
    const damaged = await edited(vfs, 5, (bytes) => bytes.fill(0xee, ends[2]! + 4, ends[2]! + 30)); // record 3 of 6
    const pointInTime = await recoverKeys(damaged, [5], 'point-in-time');
    assert.deepEqual(pointInTime.keys, keysOf(0, 2));
    const after = pointInTime.plan.discarded.find((discard) => discard.kind === 'after-damage');
    assert.equal(after?.records, 3);
    assert.equal(after?.operations, 6);
    assert.deepEqual([...pointInTime.plan.keep], [5]);
    const skip = await recoverKeys(damaged, [5], 'skip-corrupted');
    assert.deepEqual(skip.keys, [...keysOf(0, 2), ...keysOf(3, 3)]);
  });
});

describe('lsm WAL: the chain of segments', () => {
  /** Segments 5 → 7 → 9, each naming its predecessor; 7 ends with END(9) as the engine writes it. */
  async function chain(options: { syncMode?: 'fsync' | 'none' } = {}): Promise<{ vfs: MemVfs; ends: number[][] }> {
    const vfs = new MemVfs();
    const five = await writeSegment(vfs, 5, 0, 3, options);
    const seven = await writeSegment(vfs, 7, 3, 3, { ...options, previous: { number: 5, end: five.wal.validEnd } });
    await five.wal.appendEnd(7, true);
    const nine = await writeSegment(vfs, 9, 6, 3, { ...options, previous: { number: 7, end: seven.wal.validEnd } });
    await seven.wal.appendEnd(9, true);
    return { vfs: vfs.recover('keep-unsynced'), ends: [five.ends, seven.ends, nine.ends] };
  }

  it('replays the segments in order, ignoring the END records', async () => {
    const { vfs } = await chain();
    const { plan, keys } = await recoverKeys(vfs, [5, 7, 9]);
    assert.deepEqual(keys, keysOf(0, 9));
    assert.deepEqual(plan.discarded, []);
  });

  it('a missing middle segment is refused; point-in-time keeps the segments before it; skip-corrupted replays the rest', async () => {
    const { vfs } = await chain();
    await vfs.unlink(`${DIR}/${walFileName(7)}`);
    await assert.rejects(recoverKeys(vfs, [5, 7, 9]), isRefusal(walFileName(9)));
    const pointInTime = await recoverKeys(vfs, [5, 7, 9], 'point-in-time');
    assert.deepEqual(pointInTime.keys, keysOf(0, 3));
    assert.equal(pointInTime.plan.last?.number, 5);
    assert.equal(pointInTime.plan.discarded.find((discard) => discard.file === walFileName(9) && discard.kind === 'after-damage')?.records, 3);
    assert.deepEqual((await recoverKeys(vfs, [5, 7, 9], 'skip-corrupted')).keys, [...keysOf(0, 3), ...keysOf(6, 3)]);
  });

  it('a deleted newest segment is noticed through the END record of the one before it', async () => {
    const { vfs } = await chain();
    await vfs.unlink(`${DIR}/${walFileName(9)}`);
    await assert.rejects(recoverKeys(vfs, [5, 7, 9]), isRefusal(walFileName(7)));
  });

  it('the oldest segment the manifest names must exist', async () => {
    const { vfs } = await chain();
    await vfs.unlink(`${DIR}/${walFileName(5)}`);
    await assert.rejects(recoverKeys(vfs, [5, 7, 9], 'tolerate-tail', 5), isRefusal(walFileName(5)));
  });

  it('an older segment that lost records is refused even though it ends cleanly: its successor says where it ended', async () => {
    const { vfs, ends } = await chain();
    // Records 2 and 3 of segment 7 zeroed, its END too: alone it would look like a clean end.
    const cut = await edited(vfs, 7, (bytes) => bytes.fill(0, ends[1]![1]!, ends[1]![3]! + 64));
    await assert.rejects(recoverKeys(cut, [5, 7, 9]), isRefusal(walFileName(7)));
  });

  it('an empty segment nothing names (its creation failed after the rename) is skipped', async () => {
    const vfs = new MemVfs();
    const five = await writeSegment(vfs, 5, 0, 3);
    await writeSegment(vfs, 6, 0, 0, { previous: { number: 5, end: five.wal.validEnd } });
    await writeSegment(vfs, 7, 3, 2, { previous: { number: 5, end: five.wal.validEnd } });
    const { plan, keys } = await recoverKeys(vfs.recover('keep-unsynced'), [5, 6, 7]);
    assert.deepEqual(keys, keysOf(0, 5));
    assert.deepEqual(plan.discarded, []);
  });

  it('whatever a failed append left after the end its successor records is ignored', async () => {
    const { vfs, ends } = await chain();
    const junk = await edited(vfs, 7, (bytes) => bytes.fill(0x5c, ends[1]![3]!, ends[1]![3]! + 40));
    assert.deepEqual((await recoverKeys(junk, [5, 7, 9])).keys, keysOf(0, 9));
  });

  it('in segments written with sync off, a lost or damaged tail is an unsynced tail: replay stops there, nothing is refused', async () => {
    const { vfs, ends } = await chain({ syncMode: 'none' });
    // A hole in segment 7 (as a power loss may leave one): its later records and segment 9 are discarded.
    const holed = await edited(vfs, 7, (bytes) => bytes.fill(0, ends[1]![1]!, ends[1]![2]!));
    const { plan, keys } = await recoverKeys(holed, [5, 7, 9]);
    assert.deepEqual(keys, keysOf(0, 4));
    assert.ok(plan.discarded.every((discard) => discard.kind === 'unsynced-tail'), JSON.stringify(plan.discarded));
    assert.deepEqual(plan.discarded.map((discard) => [discard.file, discard.records]), [[walFileName(7), 1], [walFileName(9), 3]]);
    assert.equal(plan.damaged, false);
  });

  describe('records written without sync in an fsync-mode segment (per-write sync off)', () => {
    /** Records 0..1 synced, 2..4 appended without sync; with `syncAfter`, then synced and record 5 appended without sync. */
    async function partlySynced(syncAfter: boolean): Promise<{ vfs: MemVfs; ends: number[] }> {
      const vfs = new MemVfs();
      const { wal, ends } = await writeSegment(vfs, 5, 0, 2);
      for (let i = 2; i < 5; i++) {
        await wal.append(batch(i), false);
        ends.push(wal.position);
      }
      if (syncAfter) {
        await wal.syncRecords();
        await wal.append(batch(5), false);
        ends.push(wal.position);
      }
      return { vfs, ends };
    }

    it('a hole where reordered writeback lost an unsynced record, with later unsynced records kept, is an unsynced tail: replay stops before it, nothing is refused', async () => {
      const { vfs, ends } = await partlySynced(false);
      for (const lost of [2, 3]) {
        const holed = await edited(vfs, 5, (bytes) => bytes.fill(0, ends[lost]!, ends[lost + 1]!));
        const { plan, keys } = await recoverKeys(holed, [5]);
        assert.deepEqual(keys, keysOf(0, lost), `record ${lost} lost`);
        assert.deepEqual(plan.discarded.map((discard) => [discard.kind, discard.offset, discard.records]), [['unsynced-tail', ends[lost], 4 - lost]], `record ${lost} lost`);
        assert.equal(plan.damaged, false);
      }
    });

    it('the same hole is refused once a later record says the segment was synced past it (damage to synced records)', async () => {
      const { vfs, ends } = await partlySynced(true);
      for (const lost of [0, 2, 3]) {
        const holed = await edited(vfs, 5, (bytes) => bytes.fill(0, ends[lost]!, ends[lost + 1]!));
        await assert.rejects(recoverKeys(holed, [5]), isRefusal(walFileName(5)), `record ${lost} lost`);
      }
    });

    it('a hole before a record that was synced when written is refused, and a synced record is never taken for a hole', async () => {
      const { vfs, ends } = await partlySynced(false);
      // Record 0 was synced before record 1 was written: record 1 says so.
      const holed = await edited(vfs, 5, (bytes) => bytes.fill(0, ends[0]!, ends[1]!));
      await assert.rejects(recoverKeys(holed, [5]), isRefusal(walFileName(5)));
    });

    it('each batch says how far the segment was synced when it was written (never past the batch itself)', async () => {
      const { vfs, ends } = await partlySynced(false);
      const scan = scanSegment(await vfs.readFile(`${DIR}/${walFileName(5)}`), 'segment');
      assert.deepEqual(scan.records.map((record) => record.syncedEnd), [ends[0], ends[1], ends[2], ends[2], ends[2]]);
      assert.ok(scan.records.every((record) => record.syncedEnd! <= record.offset));
    });
  });
});
