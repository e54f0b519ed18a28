/**
 * Engine flags of `impulse serve` (--wal-recovery, --btree-recovery) through
 * real processes: a flag the engine does not take, or a value it does not
 * know, exits 2 before anything starts; an lsm store whose WAL was damaged
 * in the middle refuses to start by default, starts with `--wal-recovery
 * point-in-time`, logs and reports (`/status` `storage.recovery`) what it
 * discarded, and the next default start is clean; a btree store whose newest
 * commit's meta slot is damaged likewise with `--btree-recovery
 * previous-commit`. A cluster member passes
 * the flag to its engine and reports the same fields.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImpulseClient } from '../client/client.js';
import { DEFAULT_PAGE_BYTES as PAGE_BYTES } from '../storage/btree/btree-engine.js';
import { decodeMeta, metaPage, slotOf } from '../storage/btree/meta.js';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';
import { runCli } from '../../testkit/process/cli-run.js';
import { startServerProcess } from '../../testkit/process/server-process.js';

interface Run {
  readonly code: number | null;
  readonly stderr: string;
}

/** Runs `impulse serve ...args` to its exit (for starts that must fail). */
function serveToExit(args: readonly string[]): Promise<Run> {
  return runCli(['serve', '--host', '127.0.0.1', '--port', '0', ...args]);
}

interface StorageStatus {
  health: { state: string; reason?: string };
  recovery: { summary: string; dataLost: boolean; details: Record<string, unknown> } | null;
}

async function storageOf(client: ImpulseClient): Promise<StorageStatus> {
  return ((await client.status()) as { storage: StorageStatus }).storage;
}

describe('impulse serve engine flags', () => {
  it('exits 2 naming the flag for an engine that does not take it, and for an unknown mode', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-engine-flags-'));
    try {
      const cases: Array<{ args: string[]; message: RegExp }> = [
        { args: ['--engine', 'btree', '--wal-recovery', 'point-in-time'], message: /--wal-recovery applies to the lsm engine only; --engine btree does not take it/ },
        { args: ['--engine', 'leveldb', '--wal-recovery', 'tolerate-tail'], message: /--wal-recovery applies to the lsm engine only/ },
        { args: ['--engine', 'lsm', '--btree-recovery', 'previous-commit'], message: /--btree-recovery applies to the btree engine only; --engine lsm does not take it/ },
        { args: ['--engine', 'memory', '--btree-recovery', 'refuse'], message: /--btree-recovery applies to the btree engine only/ },
        { args: ['--engine', 'lsm', '--wal-recovery', 'best-effort'], message: /--wal-recovery must be one of tolerate-tail, point-in-time, skip-corrupted; got "best-effort"/ },
        { args: ['--engine', 'btree', '--btree-recovery', 'yes'], message: /--btree-recovery must be one of refuse, previous-commit/ },
        // A member is configured by the same parser.
        { args: ['--engine', 'btree', '--wal-recovery', 'point-in-time', '--node-id', '1', '--initial-cluster', '1=127.0.0.1:1'], message: /--wal-recovery applies to the lsm engine only/ },
      ];
      for (const { args, message } of cases) {
        const run = await serveToExit([...args, '--data-dir', dir]);
        assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
        assert.match(run.stderr, message);
      }
      assert.deepEqual(await readdir(dir), [], 'nothing was created');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('lsm: damage in the middle of the WAL refuses to start; --wal-recovery point-in-time starts, logs and reports what it discarded; the next default start is clean', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-wal-recovery-'));
    try {
      const first = await startServerProcess(['--engine', 'lsm', '--data-dir', dir, '--sync', 'fsync']);
      const client = new ImpulseClient({ endpoint: first.url, timeoutMs: 10_000 });
      for (let i = 0; i < 12; i++) await client.put(`k${String(i).padStart(2, '0')}`, `value-${String(i).padStart(2, '0')}-${'x'.repeat(40)}`);
      client.close();
      first.kill('SIGKILL'); // every record is in the WAL, none in a table
      await first.exited;

      // Damage the 6th put's record: complete, acknowledged records follow it, so it is no torn tail.
      const segment = await segmentHolding(join(dir, 'lsm'), 'value-05-');
      const bytes = await readFile(segment.path);
      for (let i = 0; i < 4; i++) bytes[segment.offset + i]! ^= 0xff;
      await writeFile(segment.path, bytes);

      const refused = await serveToExit(['--engine', 'lsm', '--data-dir', dir]);
      assert.equal(refused.code, 1, refused.stderr);
      assert.ok(refused.stderr.includes(segment.name), `the refusal names the segment: ${refused.stderr}`);

      const recovered = await startServerProcess(['--engine', 'lsm', '--data-dir', dir, '--wal-recovery', 'point-in-time']);
      const reader = new ImpulseClient({ endpoint: recovered.url, timeoutMs: 10_000 });
      const storage = await storageOf(reader);
      assert.equal(storage.health.state, 'ok');
      assert.equal(storage.recovery?.dataLost, true);
      assert.match(storage.recovery!.summary, /WAL recovery \(point-in-time\)/);
      assert.ok(storage.recovery!.summary.includes(segment.name), storage.recovery!.summary);
      assert.equal(await reader.health(), true);
      assert.ok(
        recovered.output.some((line) => line.includes('"level":40') && line.includes('"component":"engine"') && line.includes(segment.name)),
        `a warning in serve's log names the segment:\n${recovered.output.join('\n')}`,
      );
      for (let i = 0; i < 5; i++) assert.notEqual(await reader.get(`k${String(i).padStart(2, '0')}`), undefined, `k0${i} was before the damage`);
      assert.equal(await reader.get('k05'), undefined, 'the damaged record is gone, not invented');
      reader.close();
      recovered.kill('SIGTERM');
      assert.equal(await recovered.exited, 0);

      const clean = await startServerProcess(['--engine', 'lsm', '--data-dir', dir]);
      const again = new ImpulseClient({ endpoint: clean.url, timeoutMs: 10_000 });
      assert.equal((await storageOf(again)).recovery?.dataLost, false);
      assert.notEqual(await again.get('k04'), undefined);
      again.close();
      clean.kill('SIGTERM');
      assert.equal(await clean.exited, 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('btree: both copies of the newest meta slot damaged refuses to start; --btree-recovery previous-commit starts from the commit before, logs and reports the rollback', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-btree-recovery-'));
    try {
      const first = await startServerProcess(['--engine', 'btree', '--data-dir', dir, '--sync', 'fsync']);
      const client = new ImpulseClient({ endpoint: first.url, timeoutMs: 10_000 });
      await client.put('a', '1');
      await client.put('b', '2');
      client.close();
      first.kill('SIGKILL');
      await first.exited;

      const file = join(dir, 'btree', 'engine-000001', 'btree.db');
      const bytes = await readFile(file);
      const txns = [0, 1].map((slot) => decodeMeta(bytes.subarray(metaPage(slot, 0) * PAGE_BYTES, (metaPage(slot, 0) + 1) * PAGE_BYTES), metaPage(slot, 0)));
      const newest = txns.map((meta) => (typeof meta === 'string' ? -1 : meta.txn)).reduce((a, b) => Math.max(a, b));
      // A flipped byte in the zero tail of both copies of the newest commit's slot: its checksum fails twice.
      for (const copy of [0, 1]) bytes[metaPage(slotOf(newest), copy) * PAGE_BYTES + 300]! ^= 0x10;
      await writeFile(file, bytes);

      const refused = await serveToExit(['--engine', 'btree', '--data-dir', dir]);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /both copies of meta slot .*previous-commit/);

      const recovered = await startServerProcess(['--engine', 'btree', '--data-dir', dir, '--btree-recovery', 'previous-commit']);
      const reader = new ImpulseClient({ endpoint: recovered.url, timeoutMs: 10_000 });
      const storage = await storageOf(reader);
      assert.equal(storage.health.state, 'ok');
      assert.equal(storage.recovery?.dataLost, true);
      assert.match(storage.recovery!.summary, new RegExp(`started from commit ${newest - 1}`));
      assert.equal(await reader.get('b'), undefined, 'the damaged commit is the one rolled back');
      assert.notEqual(await reader.get('a'), undefined);
      assert.ok(recovered.output.some((line) => line.includes('"level":40') && line.includes('"component":"engine"') && line.includes('previous-commit')), recovered.output.join('\n'));
      reader.close();
      recovered.kill('SIGTERM');
      assert.equal(await recovered.exited, 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a cluster member takes the flag to its engine and reports storage health and recovery in /status', async () => {
    const cluster = await ProcessCluster.start(1, { serveArgs: ['--engine', 'lsm', '--wal-recovery', 'point-in-time'] });
    try {
      await cluster.waitForLeader();
      await cluster.client(1).put('a', '1');
      const storage = await storageOf(cluster.client(1));
      assert.deepEqual(storage.health, { state: 'ok' });
      assert.match(storage.recovery!.summary, /WAL recovery \(point-in-time\)/);
      assert.equal(storage.recovery!.dataLost, false);
      assert.equal(await cluster.client(1).health(), true);
    } finally {
      await cluster.close();
    }
  });
});

/** The WAL segment (under the engine home `home`) holding `marker`, and where. */
async function segmentHolding(home: string, marker: string): Promise<{ path: string; name: string; offset: number }> {
  for (const slot of (await readdir(home)).filter((name) => name.startsWith('engine-'))) {
    for (const name of (await readdir(join(home, slot))).filter((file) => file.endsWith('.log'))) {
      const path = join(home, slot, name);
      const offset = (await readFile(path)).indexOf(marker);
      if (offset >= 0) return { path, name, offset };
    }
  }
  throw new Error(`no WAL segment under ${home} holds ${marker}`);
}
