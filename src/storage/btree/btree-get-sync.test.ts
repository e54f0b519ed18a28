/**
 * btree's `getSync` gives exactly the answer `get` would while commits run
 * (testkit/storage/get-sync.ts): small pages (a deep tree, values in overflow
 * runs) and a page cache of a few pages, so reads often find a page missing
 * and must say READ_NOT_SYNC, and page reuse after commits is frequent.
 */
import { describe, it } from 'node:test';
import { checkGetSyncAgreesWithGet } from '../../../testkit/storage/get-sync.js';
import { MemVfs } from '../../../testkit/vfs/mem-vfs.js';
import { BTreeEngine } from './btree-engine.js';

describe('btree getSync', () => {
  it('agrees with get under concurrent commits, and declines for uncached pages and overflow values', async () => {
    await checkGetSyncAgreesWithGet(() => new BTreeEngine({ dataDir: 'db', vfs: new MemVfs(), pageBytes: 512, cacheBytesMax: 6 * 512 }), { runs: 40, valueBytesMax: 300 });
  });
});
