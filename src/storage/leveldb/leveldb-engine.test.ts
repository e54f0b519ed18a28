import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isImpulseError } from '../../errors.js';
import { runEngineConformance } from '../../../testkit/storage/conformance.js';
import { LevelDbEngine } from './leveldb-engine.js';

runEngineConformance({ name: 'leveldb', create: (dir, options) => new LevelDbEngine({ ...options, dataDir: dir }), propertyRuns: 40 });

describe('leveldb engine specifics', () => {
  it('refuses a data directory another engine instance holds, with a clear code', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-leveldb-lock-'));
    const first = new LevelDbEngine({ dataDir: dir });
    await first.open();
    try {
      const second = new LevelDbEngine({ dataDir: dir });
      await assert.rejects(second.open(), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_LOCKED'));
    } finally {
      await first.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports disk use and per-level files in stats', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-leveldb-stats-'));
    const engine = new LevelDbEngine({ dataDir: dir });
    await engine.open();
    try {
      await engine.put(Buffer.from('k'), Buffer.alloc(1000, 1));
      const stats = await engine.stats();
      assert.ok((stats.diskBytes ?? 0) > 1000, `disk bytes ${stats.diskBytes}`);
      assert.equal(typeof stats.figures['level0_files'], 'number');
      assert.equal(stats.figures['group_commit_calls'], 1);
    } finally {
      await engine.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
