/**
 * The behaviour every `Vfs` implementation shares, as one node:test suite.
 * `node-vfs.test.ts` runs it on a temporary directory of the real disk and
 * `mem-vfs.test.ts` on a `MemVfs`, so the simulated file system cannot drift
 * from the real one on anything the engines rely on (durability is the one
 * thing the real disk cannot show; `mem-vfs.test.ts` covers it).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isImpulseError } from '../../src/errors.js';
import { isNotFound, joinPath, type Vfs } from '../../src/vfs/vfs.js';

export interface VfsUnderTest {
  readonly vfs: Vfs;
  /** An existing, empty directory for the test's files. */
  readonly root: string;
  /** Releases whatever the fixture holds (temp directory). */
  cleanup(): Promise<void>;
}

/** Registers the shared suite under `describe(title)`. `makeFixture` runs once per case. */
export function vfsConformanceSuite(title: string, makeFixture: () => Promise<VfsUnderTest>): void {
  const withFixture = (body: (vfs: Vfs, root: string) => Promise<void>) => async () => {
    const fixture = await makeFixture();
    try {
      await body(fixture.vfs, fixture.root);
    } finally {
      await fixture.cleanup();
    }
  };

  describe(`${title}: shared Vfs behaviour`, () => {
    it('writes and reads back at positions, extending with zeros', withFixture(async (vfs, root) => {
      const path = joinPath(root, 'a.dat');
      const file = await vfs.open(path, { create: true });
      await file.write(0, Buffer.from('hello'));
      await file.write(8, Buffer.from('world'));
      assert.equal(await file.size(), 13);
      assert.deepEqual(await file.read(0, 13), Buffer.from('hello\0\0\0world'));
      assert.deepEqual(await file.read(3, 4), Buffer.from('lo\0\0'));
      assert.deepEqual(await file.read(10, 100), Buffer.from('rld'), 'short read only at end of file');
      assert.equal((await file.read(13, 5)).length, 0, 'empty read past end of file');
      await file.write(1, Buffer.from('EL'));
      assert.deepEqual(await vfs.readFile(path), Buffer.from('hELlo\0\0\0world'));
      assert.equal(await vfs.size(path), 13);
      await file.sync();
      await file.close();
    }));

    it('truncates and extends with zeros', withFixture(async (vfs, root) => {
      const path = joinPath(root, 't.dat');
      const file = await vfs.open(path, { create: true });
      await file.write(0, Buffer.from('abcdefgh'));
      await file.truncate(3);
      assert.deepEqual(await vfs.readFile(path), Buffer.from('abc'));
      await file.truncate(6);
      assert.deepEqual(await vfs.readFile(path), Buffer.from('abc\0\0\0'), 'bytes cut off earlier must not reappear');
      await file.close();
      const again = await vfs.open(path, { create: true, truncate: true });
      assert.equal(await again.size(), 0);
      await again.close();
    }));

    it('open: missing file without create is not-found; exclusive create fails on an existing file', withFixture(async (vfs, root) => {
      const path = joinPath(root, 'missing.dat');
      await assert.rejects(vfs.open(path), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO') && isNotFound(error) && error.message.includes('missing.dat'));
      assert.equal(await vfs.exists(path), false);
      const file = await vfs.open(path, { create: true, exclusive: true });
      await file.close();
      assert.equal(await vfs.exists(path), true);
      await assert.rejects(vfs.open(path, { create: true, exclusive: true }), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO') && !isNotFound(error));
      const reopened = await vfs.open(path, { create: true });
      assert.equal(await reopened.size(), 0);
      await reopened.close();
    }));

    it('a closed file rejects reads and writes; a read-only file rejects writes', withFixture(async (vfs, root) => {
      const path = joinPath(root, 'c.dat');
      const file = await vfs.open(path, { create: true });
      await file.write(0, Buffer.from('x'));
      await file.close();
      await assert.rejects(file.read(0, 1), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO'));
      await assert.rejects(file.write(0, Buffer.from('y')), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO'));
      await assert.rejects(file.sync(), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO'));
      const readOnly = await vfs.open(path, { readOnly: true });
      assert.deepEqual(await readOnly.read(0, 1), Buffer.from('x'));
      await assert.rejects(readOnly.write(0, Buffer.from('y')), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO'));
      await readOnly.close();
      assert.deepEqual(await vfs.readFile(path), Buffer.from('x'));
    }));

    it('readSync, when offered, reads like read: short only at end of file, throws once closed', withFixture(async (vfs, root) => {
      const path = joinPath(root, 's.dat');
      const file = await vfs.open(path, { create: true });
      if (file.readSync === undefined) {
        await file.close();
        return;
      }
      await file.write(0, Buffer.from('hello world'));
      assert.deepEqual(file.readSync(0, 11), await file.read(0, 11));
      assert.deepEqual(file.readSync(6, 3), Buffer.from('wor'));
      assert.deepEqual(file.readSync(8, 100), Buffer.from('rld'), 'short read only at end of file');
      assert.equal(file.readSync(11, 5).length, 0, 'empty read past end of file');
      await file.close();
      assert.throws(() => file.readSync!(0, 1), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO'));
    }));

    it('writeSync, when offered, writes like write: extends with zeros, refused read-only and once closed', withFixture(async (vfs, root) => {
      const path = joinPath(root, 'w.dat');
      const file = await vfs.open(path, { create: true });
      if (file.writeSync === undefined) {
        await file.close();
        return;
      }
      file.writeSync(0, Buffer.from('hello'));
      file.writeSync(8, Buffer.from('world'));
      assert.equal(await file.size(), 13);
      assert.deepEqual(await file.read(0, 13), Buffer.from('hello\0\0\0world'));
      file.writeSync(1, Buffer.from('EL'));
      await file.close();
      assert.deepEqual(await vfs.readFile(path), Buffer.from('hELlo\0\0\0world'));
      assert.throws(() => file.writeSync!(0, Buffer.from('y')), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO'));
      const readOnly = await vfs.open(path, { readOnly: true });
      assert.throws(() => readOnly.writeSync!(0, Buffer.from('y')), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO'));
      await readOnly.close();
      assert.deepEqual(await vfs.readFile(path), Buffer.from('hELlo\0\0\0world'));
    }));

    it('rename replaces the target atomically; unlink removes; list is sorted names', withFixture(async (vfs, root) => {
      const dir = joinPath(root, 'db', 'sub');
      await vfs.mkdir(dir);
      await vfs.mkdir(dir); // idempotent
      for (const [name, text] of [['b', 'B'], ['a', 'A'], ['c.tmp', 'C']] as const) {
        const file = await vfs.open(joinPath(dir, name), { create: true });
        await file.write(0, Buffer.from(text));
        await file.sync();
        await file.close();
      }
      assert.deepEqual(await vfs.list(dir), ['a', 'b', 'c.tmp']);
      await vfs.rename(joinPath(dir, 'c.tmp'), joinPath(dir, 'a'));
      await vfs.syncDir(dir);
      assert.deepEqual(await vfs.list(dir), ['a', 'b']);
      assert.deepEqual(await vfs.readFile(joinPath(dir, 'a')), Buffer.from('C'));
      await vfs.unlink(joinPath(dir, 'b'));
      assert.deepEqual(await vfs.list(dir), ['a']);
      assert.deepEqual(await vfs.list(joinPath(root, 'db')), ['sub'], 'directories are listed too');
      await assert.rejects(vfs.unlink(joinPath(dir, 'b')), (error: unknown) => isNotFound(error));
      await assert.rejects(vfs.rename(joinPath(dir, 'nope'), joinPath(dir, 'x')), (error: unknown) => isNotFound(error));
      await assert.rejects(vfs.readFile(joinPath(dir, 'nope')), (error: unknown) => isNotFound(error));
      await assert.rejects(vfs.size(joinPath(dir, 'nope')), (error: unknown) => isNotFound(error));
      await assert.rejects(vfs.list(joinPath(root, 'nope')), (error: unknown) => isNotFound(error));
      await assert.rejects(vfs.syncDir(joinPath(root, 'nope')), (error: unknown) => isNotFound(error));
      assert.equal(await vfs.exists(dir), true);
    }));

    it('an open file keeps working after its name is unlinked', withFixture(async (vfs, root) => {
      const path = joinPath(root, 'u.dat');
      const file = await vfs.open(path, { create: true });
      await file.write(0, Buffer.from('still here'));
      await vfs.unlink(path);
      assert.equal(await vfs.exists(path), false);
      assert.deepEqual(await file.read(0, 10), Buffer.from('still here'));
      await file.close();
    }));

    it('creating a file in a missing directory is not-found', withFixture(async (vfs, root) => {
      await assert.rejects(vfs.open(joinPath(root, 'no-dir', 'f'), { create: true }), (error: unknown) => isNotFound(error));
    }));
  });
}
