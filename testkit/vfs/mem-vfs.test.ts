import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isImpulseError } from '../../src/errors.js';
import { SeededRandom } from '../../src/util/random.js';
import { CrashError, fromIndex, isCrashError, onIndex, onlyOperations, withProbability } from './fault-policy.js';
import { MemVfs } from './mem-vfs.js';
import { vfsConformanceSuite } from './vfs-conformance.js';
import { errorCodeOf, isNotFound, type Vfs } from '../../src/vfs/vfs.js';

vfsConformanceSuite('MemVfs', async () => {
  const vfs = new MemVfs();
  await vfs.mkdir('root');
  return { vfs, root: 'root', cleanup: async () => undefined };
});
vfsConformanceSuite('MemVfs (absolute paths)', async () => {
  const vfs = new MemVfs();
  await vfs.mkdir('/tmp/x');
  return { vfs, root: '/tmp/x', cleanup: async () => undefined };
});

async function writeFile(vfs: Vfs, path: string, text: string, options: { sync?: boolean; create?: boolean } = {}): Promise<void> {
  const file = await vfs.open(path, { create: options.create ?? true });
  await file.write(await file.size(), Buffer.from(text));
  if (options.sync ?? false) await file.sync();
  await file.close();
}

async function text(vfs: Vfs, path: string): Promise<string | undefined> {
  return (await vfs.exists(path)) ? (await vfs.readFile(path)).toString() : undefined;
}

describe('MemVfs durability model', () => {
  it('unsynced writes are lost on recover; synced ones survive', async () => {
    const vfs = new MemVfs();
    await vfs.mkdir('db');
    await vfs.syncDir('db'); // mkdir is durable at once; harmless
    const file = await vfs.open('db/wal', { create: true });
    await vfs.syncDir('db');
    await file.write(0, Buffer.from('synced|'));
    await file.sync();
    await file.write(7, Buffer.from('unsynced'));
    assert.equal(await text(vfs, 'db/wal'), 'synced|unsynced', 'current contents include unsynced writes');
    assert.equal(await text(vfs.recover(), 'db/wal'), 'synced|');
    assert.equal(await text(vfs.recover('keep-unsynced'), 'db/wal'), 'synced|unsynced', 'a process crash keeps the page cache');
    await file.sync();
    assert.equal(await text(vfs.recover(), 'db/wal'), 'synced|unsynced');
  });

  it('an unsynced truncate is undone by recover', async () => {
    const vfs = new MemVfs();
    await writeFile(vfs, 'f', 'abcdef', { sync: true });
    await vfs.syncDir('.');
    const file = await vfs.open('f');
    await file.truncate(2);
    assert.equal(await text(vfs, 'f'), 'ab');
    assert.equal(await text(vfs.recover(), 'f'), 'abcdef');
    await file.sync();
    assert.equal(await text(vfs.recover(), 'f'), 'ab');
  });

  it('a file created (even synced) is gone after recover until its directory is synced', async () => {
    const vfs = new MemVfs();
    await vfs.mkdir('db');
    await writeFile(vfs, 'db/new', 'data', { sync: true });
    assert.deepEqual(vfs.fileNames(), ['db/new']);
    const lost = vfs.recover();
    assert.deepEqual(lost.fileNames(), []);
    assert.equal(await lost.exists('db'), true, 'directories are durable at once');
    await vfs.syncDir('db');
    assert.equal(await text(vfs.recover(), 'db/new'), 'data');
  });

  it('a directory sync without a file sync keeps the name with the durable (empty) contents', async () => {
    const vfs = new MemVfs();
    await writeFile(vfs, 'f', 'unsynced data');
    await vfs.syncDir('.');
    assert.equal(await text(vfs.recover(), 'f'), '');
  });

  it('an unlink is undone by recover until the directory is synced', async () => {
    const vfs = new MemVfs();
    await writeFile(vfs, 'f', 'keep', { sync: true });
    await vfs.syncDir('.');
    await vfs.unlink('f');
    assert.equal(await text(vfs.recover(), 'f'), 'keep');
    await vfs.syncDir('.');
    assert.equal(await text(vfs.recover(), 'f'), undefined);
  });

  it('rename is atomic: before syncDir the old names survive, after it the new ones', async () => {
    const vfs = new MemVfs();
    await vfs.mkdir('db');
    await writeFile(vfs, 'db/CURRENT', 'v1', { sync: true });
    await vfs.syncDir('db');
    await writeFile(vfs, 'db/CURRENT.tmp', 'v2', { sync: true });
    await vfs.rename('db/CURRENT.tmp', 'db/CURRENT');
    assert.equal(await text(vfs, 'db/CURRENT'), 'v2');
    const before = vfs.recover();
    assert.equal(await text(before, 'db/CURRENT'), 'v1', 'old target survives');
    assert.equal(await text(before, 'db/CURRENT.tmp'), undefined, 'the temp file was never made durable');
    await vfs.syncDir('db');
    const after = vfs.recover();
    assert.equal(await text(after, 'db/CURRENT'), 'v2');
    assert.deepEqual(after.fileNames(), ['db/CURRENT']);
    // Every torn outcome holds a whole version under CURRENT, never a mix.
    for (let seed = 0; seed < 50; seed++) {
      const torn = new MemVfs({ random: new SeededRandom(seed) });
      await torn.mkdir('db');
      await writeFile(torn, 'db/CURRENT', 'v1', { sync: true });
      await torn.syncDir('db');
      await writeFile(torn, 'db/CURRENT.tmp', 'v2', { sync: true });
      await torn.rename('db/CURRENT.tmp', 'db/CURRENT');
      assert.ok(['v1', 'v2'].includes((await text(torn.recover('torn'), 'db/CURRENT')) ?? 'missing'));
    }
  });

  it('rename without syncing the file first may expose an empty file after a crash', async () => {
    const vfs = new MemVfs();
    await writeFile(vfs, 'CURRENT', 'v1', { sync: true });
    await vfs.syncDir('.');
    await writeFile(vfs, 'CURRENT.tmp', 'v2'); // bug: no sync before rename
    await vfs.rename('CURRENT.tmp', 'CURRENT');
    await vfs.syncDir('.');
    assert.equal(await text(vfs.recover(), 'CURRENT'), '', 'the name is durable, the contents are not');
  });

  it('cross-directory rename: each directory is made durable by its own syncDir', async () => {
    const vfs = new MemVfs();
    await vfs.mkdir('a');
    await vfs.mkdir('b');
    await writeFile(vfs, 'a/f', 'x', { sync: true });
    await vfs.syncDir('a');
    await vfs.rename('a/f', 'b/f');
    assert.deepEqual(vfs.recover().fileNames(), ['a/f']);
    await vfs.syncDir('b');
    assert.deepEqual(vfs.recover().fileNames(), ['a/f', 'b/f'], 'target synced, source not: both names');
    await vfs.syncDir('a');
    assert.deepEqual(vfs.recover().fileNames(), ['b/f']);
  });

  it('torn mode keeps a prefix of the unsynced writes, the next one possibly torn', async () => {
    const durable = Buffer.from('AAAA');
    const writes = [
      { position: 4, data: Buffer.from('BBBB') },
      { position: 8, data: Buffer.from('CCCC') },
      { position: 0, data: Buffer.from('aa') },
    ];
    const apply = (base: Buffer, position: number, data: Buffer): Buffer => {
      const result = Buffer.alloc(Math.max(base.length, position + data.length));
      base.copy(result);
      data.copy(result, position);
      return result;
    };
    // Which outcome of the model is `recovered`? 'whole' (k writes applied), 'torn', 'torn+tail' (size extended), or undefined.
    const classify = (recovered: Buffer): string | undefined => {
      let base: Buffer = durable;
      for (let kept = 0; kept <= writes.length; kept++) {
        if (recovered.equals(base)) return 'whole';
        const next = writes[kept];
        if (next === undefined) break;
        for (let arrived = 0; arrived < next.data.length; arrived++) {
          const torn = apply(base, next.position, next.data.subarray(0, arrived));
          if (recovered.equals(torn)) return 'torn';
          const end = next.position + next.data.length;
          if (end > base.length && recovered.length === end && recovered.subarray(0, torn.length).equals(torn)) return 'torn+tail';
        }
        base = apply(base, next.position, next.data);
      }
      return undefined;
    };
    const kinds = new Map<string, number>();
    const outcomes = new Set<string>();
    for (let seed = 0; seed < 300; seed++) {
      const vfs = new MemVfs({ random: new SeededRandom(seed) });
      const file = await vfs.open('log', { create: true });
      await vfs.syncDir('.');
      await file.write(0, durable);
      await file.sync();
      for (const write of writes) await file.write(write.position, write.data);
      const recovered = await vfs.recover('torn').readFile('log');
      const kind = classify(recovered);
      assert.ok(kind !== undefined, `seed ${seed}: not a prefix of the write sequence: ${JSON.stringify(recovered.toString('latin1'))}`);
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      outcomes.add(recovered.toString('latin1'));
    }
    assert.ok(outcomes.has('AAAA') && outcomes.has('aaAABBBBCCCC'), 'both extremes occur');
    assert.ok((kinds.get('torn') ?? 0) > 0 && (kinds.get('torn+tail') ?? 0) > 0, `torn writes occur: ${JSON.stringify([...kinds])}`);
  });

  it('reorder modes keep any subset of the unsynced writes, in order', async () => {
    for (const mode of ['reorder', 'reorder-dirs'] as const) {
      const seen = new Set<string>();
      for (let seed = 0; seed < 100; seed++) {
        const vfs = new MemVfs({ random: new SeededRandom(seed) });
        const file = await vfs.open('f', { create: true });
        await vfs.syncDir('.');
        await file.write(0, Buffer.from('a'));
        await file.write(1, Buffer.from('b'));
        await file.write(0, Buffer.from('A'));
        seen.add((await vfs.recover(mode).readFile('f')).toString('latin1'));
      }
      // Subsets of {a@0, b@1, A@0} applied in order; a missing earlier write leaves a zero hole.
      assert.deepEqual([...seen].sort(), ['', 'A', 'Ab', 'a', 'ab', '\0b'].sort(), `${mode}: every subset occurs, "\\0b" is b without a`);
    }
  });

  it('torn mode keeps a prefix of the unsynced directory changes', async () => {
    const seen = new Set<string>();
    for (let seed = 0; seed < 100; seed++) {
      const vfs = new MemVfs({ random: new SeededRandom(seed) });
      await writeFile(vfs, 'one', '1', { sync: true });
      await writeFile(vfs, 'two', '2', { sync: true });
      await writeFile(vfs, 'three', '3', { sync: true });
      const names = vfs.recover('torn').fileNames().join(',');
      assert.ok(['', 'one', 'one,two', 'one,three,two'].includes(names), `seed ${seed}: ${names}`);
      seen.add(names);
    }
    assert.equal(seen.size, 4);
  });

  it('reorder-dirs mode may keep a later unlink while losing an earlier rename (prefix modes never do)', async () => {
    // A new manifest renamed into place, then the table only the old manifest named is unlinked, with no syncDir after.
    const outcomes = async (mode: 'torn' | 'reorder' | 'reorder-dirs'): Promise<string[]> => {
      const seen = new Set<string>();
      for (let seed = 0; seed < 100; seed++) {
        const vfs = new MemVfs({ random: new SeededRandom(seed) });
        await writeFile(vfs, 'MANIFEST', 'old', { sync: true });
        await writeFile(vfs, 'table-1', 't', { sync: true });
        await writeFile(vfs, 'MANIFEST.tmp', 'new', { sync: true });
        await vfs.syncDir('.');
        await vfs.rename('MANIFEST.tmp', 'MANIFEST');
        await vfs.unlink('table-1');
        const recovered = vfs.recover(mode);
        seen.add(`${await text(recovered, 'MANIFEST')}|${recovered.fileNames().join(',')}`);
      }
      return [...seen].sort();
    };
    const bothKept = 'new|MANIFEST';
    const renameKept = 'new|MANIFEST,table-1';
    const unlinkKept = 'old|MANIFEST,MANIFEST.tmp';
    const noneKept = 'old|MANIFEST,MANIFEST.tmp,table-1';
    assert.deepEqual(await outcomes('reorder-dirs'), [bothKept, renameKept, unlinkKept, noneKept].sort());
    for (const prefixMode of ['torn', 'reorder'] as const) {
      assert.deepEqual(await outcomes(prefixMode), [bothKept, renameKept, noneKept].sort(), `${prefixMode}: a prefix never has the unlink without the rename`);
    }
  });

  it('reorder-dirs mode keeps the changes to one name in order, and a rename whole', async () => {
    const seen = new Set<string>();
    for (let seed = 0; seed < 200; seed++) {
      const vfs = new MemVfs({ random: new SeededRandom(seed) });
      await writeFile(vfs, 'x', 'v1', { sync: true });
      await vfs.syncDir('.');
      await writeFile(vfs, 'a', 'A', { sync: true }); // link a
      await vfs.rename('a', 'b'); // needs the link of a: kept only if it was
      await writeFile(vfs, 'c', 'C', { sync: true }); // independent of a and b
      await vfs.unlink('x');
      await writeFile(vfs, 'x', 'v2', { sync: true }); // a new x: kept only if the unlink was
      const recovered = vfs.recover('reorder-dirs');
      const names = recovered.fileNames();
      assert.ok(!(names.includes('a') && names.includes('b')), `seed ${seed}: a rename is atomic: ${names.join(',')}`);
      if (names.includes('b')) assert.equal(await text(recovered, 'b'), 'A');
      seen.add(`${names.filter((name) => name !== 'x').join(',')}|x=${await text(recovered, 'x')}`);
    }
    const abc = ['', 'a', 'b', 'c', 'a,c', 'b,c'];
    const xs = ['v1', 'undefined', 'v2'];
    assert.deepEqual([...seen].sort(), abc.flatMap((names) => xs.map((x) => `${names}|x=${x}`)).sort(), 'every per-name-ordered combination occurs, and nothing else');
  });

  it('recover leaves the original vfs unchanged and usable', async () => {
    const vfs = new MemVfs();
    await writeFile(vfs, 'f', 'x');
    vfs.recover('torn');
    vfs.recover();
    assert.equal(await text(vfs, 'f'), 'x');
    await writeFile(vfs, 'f', 'y', { create: false });
    assert.equal(await text(vfs, 'f'), 'xy');
  });

  it('an open handle keeps writing to the unlinked inode, not to a new file of the same name', async () => {
    const vfs = new MemVfs();
    const old = await vfs.open('f', { create: true });
    await vfs.unlink('f');
    await writeFile(vfs, 'f', 'new');
    await old.write(0, Buffer.from('OLD!'));
    assert.equal(await text(vfs, 'f'), 'new');
  });
});

describe('MemVfs counting and faults', () => {
  it('counts every Vfs and VfsFile call, reads included', async () => {
    const vfs = new MemVfs({ recordOperations: true });
    assert.equal(vfs.ioCount, 0);
    await vfs.mkdir('d'); // 0
    const file = await vfs.open('d/f', { create: true }); // 1
    await file.write(0, Buffer.from('x')); // 2
    await file.read(0, 1); // 3
    await file.size(); // 4
    await file.truncate(1); // 5
    await file.sync(); // 6
    await file.close(); // 7
    await vfs.readFile('d/f'); // 8
    await vfs.list('d'); // 9
    await vfs.exists('d/f'); // 10
    await vfs.size('d/f'); // 11
    await vfs.rename('d/f', 'd/g'); // 12
    await vfs.syncDir('d'); // 13
    await vfs.unlink('d/g'); // 14
    await assert.rejects(vfs.readFile('d/missing')); // 15: failed calls count too
    assert.equal(vfs.ioCount, 16);
    assert.deepEqual(
      vfs.operations.map((op) => op.operation),
      ['mkdir', 'open', 'file.write', 'file.read', 'file.size', 'file.truncate', 'file.sync', 'file.close', 'readFile', 'list', 'exists', 'size', 'rename', 'syncDir', 'unlink', 'readFile'],
    );
    assert.deepEqual(vfs.counters, { bytesWritten: 1, bytesRead: 2, fileSyncs: 1, dirSyncs: 1, injectedErrors: 0 });
  });

  it('readSync is the same operation as read: counted, fault-injected and crashed alike', async () => {
    const vfs = new MemVfs({ recordOperations: true }).inject({ kind: 'error', at: 3 }).inject({ kind: 'crash', at: 5 });
    const file = await vfs.open('f', { create: true }); // 0
    await file.write(0, Buffer.from('abc')); // 1
    assert.deepEqual(file.readSync!(1, 5), Buffer.from('bc')); // 2
    assert.throws(() => file.readSync!(0, 1), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO') && errorCodeOf(error) === 'EIO'); // 3
    assert.deepEqual(file.readSync!(0, 1), Buffer.from('a')); // 4
    assert.throws(() => file.readSync!(0, 1), CrashError); // 5
    assert.equal(vfs.crashed, true);
    assert.deepEqual(vfs.operations.map((op) => op.operation), ['open', 'file.write', 'file.read', 'file.read', 'file.read', 'file.read']);
    assert.equal(vfs.counters.bytesRead, 3);
    assert.equal(vfs.counters.injectedErrors, 1);
  });

  it('writeSync is the same operation as write: counted, fault-injected, crashed alike, and not durable until sync', async () => {
    const vfs = new MemVfs({ recordOperations: true }).inject({ kind: 'error', at: 2 }).inject({ kind: 'crash', at: 5 });
    const file = await vfs.open('f', { create: true }); // 0
    file.writeSync!(0, Buffer.from('ab')); // 1
    assert.throws(() => file.writeSync!(2, Buffer.from('X')), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO') && errorCodeOf(error) === 'EIO'); // 2
    await file.sync(); // 3
    file.writeSync!(2, Buffer.from('c')); // 4
    assert.throws(() => file.writeSync!(3, Buffer.from('d')), CrashError); // 5
    assert.deepEqual(vfs.operations.map((op) => op.operation), ['open', 'file.write', 'file.write', 'file.sync', 'file.write', 'file.write']);
    assert.equal(vfs.counters.bytesWritten, 3, 'failed writes write nothing');
    assert.equal(await text(vfs.recover('keep-unsynced'), 'f'), 'abc');
    assert.equal(await text(vfs.recover('lose-unsynced'), 'f'), undefined, 'the file name was never made durable');
  });

  it('an error at one index fails that operation only, with no effect', async () => {
    const vfs = new MemVfs().inject({ kind: 'error', at: 2 });
    assert.equal(vfs.name, 'mem(EIO at op 2)');
    const file = await vfs.open('f', { create: true }); // 0
    await file.write(0, Buffer.from('a')); // 1
    const failure = await file.write(1, Buffer.from('b')).catch((error: unknown) => error); // 2
    assert.ok(isImpulseError(failure, 'IMPULSE_ERR_ENGINE_IO'), 'rejects with IMPULSE_ERR_ENGINE_IO');
    assert.equal(errorCodeOf(failure), 'EIO');
    assert.match((failure as Error).message, /write "f"/);
    assert.equal(await text(vfs, 'f'), 'a', 'the failed write had no effect'); // 3
    await file.write(1, Buffer.from('c')); // 4
    assert.equal(await text(vfs, 'f'), 'ac');
    assert.deepEqual(vfs.firedFaults, [{ index: 2, operation: 'file.write', path: 'f', action: 'error' }]);
    assert.equal(vfs.counters.injectedErrors, 1);
  });

  it('a persistent error fails that operation and every later one', async () => {
    const vfs = new MemVfs().inject({ kind: 'error', at: 1, persistent: true });
    const file = await vfs.open('f', { create: true });
    for (let i = 0; i < 5; i++) {
      await assert.rejects(file.write(0, Buffer.from('a')), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO') && !isCrashError(error));
    }
    await assert.rejects(vfs.exists('f'));
    assert.equal(vfs.crashed, false);
    vfs.clearFaults();
    assert.equal(await vfs.exists('f'), true);
  });

  it('a crash fails that operation and every later one with CrashError, and the failed operation has no effect', async () => {
    const vfs = new MemVfs().inject({ kind: 'crash', at: 3 });
    const file = await vfs.open('f', { create: true }); // 0
    await vfs.syncDir('.'); // 1
    await file.write(0, Buffer.from('a')); // 2
    assert.equal(vfs.crashed, false);
    await assert.rejects(file.sync(), CrashError); // 3
    assert.equal(vfs.crashed, true);
    assert.match(vfs.name, /crash at op 3/);
    for (const attempt of [() => file.read(0, 1), () => vfs.exists('f'), () => vfs.open('g', { create: true }), () => file.close()]) {
      await assert.rejects(attempt(), (error: unknown) => error instanceof CrashError && error.crashIndex === 3);
    }
    assert.equal(vfs.ioCount, 8);
    assert.equal(await text(vfs.recover(), 'f'), '', 'the refused sync did not make the write durable');
    assert.equal(await text(vfs.recover('keep-unsynced'), 'f'), 'a');
  });

  it('crash() crashes immediately; recover works on a crashed vfs', async () => {
    const vfs = new MemVfs();
    await writeFile(vfs, 'f', 'x', { sync: true });
    await vfs.syncDir('.');
    vfs.crash();
    await assert.rejects(vfs.readFile('f'), CrashError);
    const recovered = vfs.recover();
    assert.equal(recovered.crashed, false);
    assert.equal(recovered.ioCount, 0);
    assert.equal(await text(recovered, 'f'), 'x');
  });

  it('isCrashError sees a CrashError through causes and AggregateErrors', () => {
    const crash = new CrashError(4, 3, 'file.sync', 'f');
    assert.equal(isCrashError(crash), true);
    assert.equal(isCrashError(new Error('wrapped', { cause: new Error('twice', { cause: crash }) })), true);
    assert.equal(isCrashError(new AggregateError([new Error('x'), crash])), true);
    assert.equal(isCrashError(new Error('plain')), false);
  });

  it('composable policies: onlyOperations, fromIndex, withProbability', async () => {
    const vfs = new MemVfs().inject(onlyOperations(['file.sync'], fromIndex(0)));
    assert.equal(vfs.name, 'mem(EIO from op 0 on on file.sync)');
    const file = await vfs.open('f', { create: true });
    await file.write(0, Buffer.from('x'));
    await assert.rejects(file.sync());
    await file.write(1, Buffer.from('y'));

    let failures = 0;
    const flaky = new MemVfs().inject(withProbability(0.25, new SeededRandom(9)));
    for (let i = 0; i < 400; i++) if (await flaky.exists('x').then(() => false, () => true)) failures++;
    assert.ok(failures > 60 && failures < 140, `about a quarter fail: ${failures}`);

    const crashOnSecondSync = new MemVfs().inject(onlyOperations(['file.sync'], onIndex(2, 'crash')));
    const f = await crashOnSecondSync.open('f', { create: true }); // 0
    await f.sync(); // 1
    await f.write(0, Buffer.from('z')); // 2: not a sync, so untouched
    await f.sync(); // 3
    assert.equal(crashOnSecondSync.crashed, false);
  });

  it('syncFailureDropsWrites: a failed fsync loses the unsynced writes for good (fsyncgate)', async () => {
    for (const drops of [true, false]) {
      const vfs = new MemVfs({ syncFailureDropsWrites: drops });
      const file = await vfs.open('f', { create: true }); // 0
      await vfs.syncDir('.'); // 1
      await file.write(0, Buffer.from('lost?')); // 2
      vfs.inject({ kind: 'error', at: 3 });
      await assert.rejects(file.sync()); // 3
      assert.equal(await text(vfs, 'f'), 'lost?', 'still readable from the page cache');
      await file.sync(); // the retry "succeeds"
      assert.equal(await text(vfs.recover(), 'f'), drops ? '' : 'lost?');
      assert.equal(await text(vfs.recover('keep-unsynced'), 'f'), 'lost?');
    }
  });

  it('flipBit corrupts current and durable contents', async () => {
    const vfs = new MemVfs();
    await writeFile(vfs, 'f', 'A', { sync: true });
    await vfs.syncDir('.');
    vfs.flipBit('f', 0, 0);
    assert.equal(await text(vfs, 'f'), '@');
    assert.equal(await text(vfs.recover(), 'f'), '@');
    assert.throws(() => vfs.flipBit('f', 1, 0), RangeError);
    assert.throws(() => vfs.flipBit('nope', 0, 0), RangeError);
  });

  it('errors: missing file is not-found, a directory is not a file, mkdir over a file fails', async () => {
    const vfs = new MemVfs();
    await assert.rejects(vfs.open('nope'), (error: unknown) => isNotFound(error));
    await vfs.mkdir('d');
    await assert.rejects(vfs.open('d', { create: true }), (error: unknown) => errorCodeOf(error) === 'EISDIR');
    await assert.rejects(vfs.readFile('d'), (error: unknown) => errorCodeOf(error) === 'EISDIR');
    await writeFile(vfs, 'f', 'x');
    await assert.rejects(vfs.mkdir('f/sub'), (error: unknown) => errorCodeOf(error) === 'ENOTDIR');
    await assert.rejects(vfs.list('f'), (error: unknown) => errorCodeOf(error) === 'ENOTDIR');
    assert.equal(await vfs.exists('f/sub'), false);
  });
});
