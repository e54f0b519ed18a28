import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NodeVfs } from './node-vfs.js';
import { vfsConformanceSuite } from '../../testkit/vfs/vfs-conformance.js';
import { errorCodeOf, joinPath } from './vfs.js';

async function tempFixture() {
  const root = await mkdtemp(join(tmpdir(), 'impulse-vfs-'));
  return { vfs: new NodeVfs(), root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

vfsConformanceSuite('NodeVfs', tempFixture);

describe('NodeVfs specifics', () => {
  it('syncDir and file sync succeed on a real directory and the data is on disk', async () => {
    const { vfs, root, cleanup } = await tempFixture();
    try {
      const path = joinPath(root, 'wal');
      const file = await vfs.open(path, { create: true });
      await file.write(0, Buffer.alloc(10_000, 7));
      await file.sync();
      await vfs.syncDir(root);
      await file.close();
      assert.equal((await stat(path)).size, 10_000);
      assert.equal(vfs.name, 'node-fs');
    } finally {
      await cleanup();
    }
  });

  it('removeDir removes an empty directory and refuses one with files', async () => {
    const { vfs, root, cleanup } = await tempFixture();
    try {
      const dir = joinPath(root, 'slot');
      await vfs.mkdir(dir);
      const file = await vfs.open(joinPath(dir, 'f'), { create: true });
      await file.close();
      await assert.rejects(vfs.removeDir(dir), (error: unknown) => errorCodeOf(error) === 'ENOTEMPTY');
      await vfs.unlink(joinPath(dir, 'f'));
      await vfs.removeDir(dir);
      assert.equal(await vfs.exists(dir), false);
    } finally {
      await cleanup();
    }
  });
});
