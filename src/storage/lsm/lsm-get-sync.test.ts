/**
 * lsm's `getSync` gives exactly the answer `get` would, while writes, flushes
 * and compactions run (testkit/storage/get-sync.ts): on a MemVfs whose files
 * have no `readSync` (a block that is not cached makes it READ_NOT_SYNC;
 * flushes and compactions inline), on a plain MemVfs (misses read with
 * `readSync`), and on the real disk with worker threads.
 */
import { after, describe, it } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkGetSyncAgreesWithGet } from '../../../testkit/storage/get-sync.js';
import { MemVfs } from '../../../testkit/vfs/mem-vfs.js';
import type { VfsFile, VfsOpenOptions } from '../../vfs/vfs.js';
import { NodeVfs } from '../../vfs/node-vfs.js';
import { LsmEngine } from './lsm-engine.js';
import { TINY_TUNING } from './tiny-tuning.js';

/** A MemVfs whose files lack `readSync`, as a Vfs that can only read asynchronously. */
class AsyncReadsVfs extends MemVfs {
  override async open(path: string, options?: VfsOpenOptions): Promise<VfsFile> {
    const file = await super.open(path, options);
    return {
      path: file.path,
      read: (position, length) => file.read(position, length),
      write: (position, data) => file.write(position, data),
      size: () => file.size(),
      truncate: (length) => file.truncate(length),
      sync: () => file.sync(),
      close: () => file.close(),
    };
  }
}

describe('lsm getSync', () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('agrees with get under concurrent writes, flushes and compactions, and declines for blocks it cannot read now (no readSync)', async () => {
    // A block cache of two tiny blocks: most table reads miss it.
    await checkGetSyncAgreesWithGet(() => new LsmEngine({ dataDir: 'db', vfs: new AsyncReadsVfs(), ...TINY_TUNING, blockCacheBytes: 1024 }), { runs: 40 });
  });

  it('agrees with get on a Vfs with readSync, reading uncached blocks on the calling thread (never declines)', async () => {
    await checkGetSyncAgreesWithGet(() => new LsmEngine({ dataDir: 'db', vfs: new MemVfs(), ...TINY_TUNING, blockCacheBytes: 1024 }), {
      runs: 20,
      expect: { answered: true, declined: false },
    });
  });

  it('agrees with get on the real disk with worker threads, reading uncached blocks with readSync (never declines)', async () => {
    const create = (): LsmEngine => {
      const dir = mkdtempSync(join(tmpdir(), 'impulse-lsm-getsync-'));
      dirs.push(dir);
      return new LsmEngine({ dataDir: dir, vfs: new NodeVfs(), ...TINY_TUNING, blockCacheBytes: 1024 });
    };
    await checkGetSyncAgreesWithGet(create, { runs: 6, expect: { answered: true, declined: false }, shrink: false });
  });
});
