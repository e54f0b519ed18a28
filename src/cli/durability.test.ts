/**
 * Acknowledged writes survive kill -9 of a real server process, for every
 * durable engine in the registry: concurrent writers hammer a real `impulse
 * serve`, the process is killed with SIGKILL mid-stream, a new process opens
 * the same data directory, and every acknowledged write must be there, every
 * acknowledged delete gone, every batch all-or-nothing, nothing never written.
 *
 * What this does NOT show: kill -9 leaves the OS page cache intact, so it
 * cannot tell fsync from no fsync. Power-loss behaviour is what the Vfs crash
 * harness (testkit/vfs/) tests for our own engines.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImpulseClient } from '../client/client.js';
import { ENGINE_NAMES, createEngine } from '../storage/registry.js';
import { startServerProcess } from '../../testkit/process/server-process.js';

const WRITERS = 24;
const WRITE_WINDOW_MS = 1500;
/** Acknowledged writes before the kill for the run to count. */
const ACKED_MIN = 200;

interface Outcome {
  acked: boolean;
}

const durableEngines = ENGINE_NAMES.filter((name) => createEngine(name, { dataDir: join(tmpdir(), 'impulse-probe-unused') }).supports.durable);

for (const engineName of durableEngines) {
  describe(`kill -9 durability: ${engineName}`, () => {
    it('keeps every acknowledged write of concurrent writers across SIGKILL and restart', async () => {
      const dir = await mkdtemp(join(tmpdir(), `impulse-kill9-${engineName}-`));
      try {
        const server = await startServerProcess(['--engine', engineName, '--data-dir', dir, '--sync', 'fsync', '--log-level', 'info']);
        const client = new ImpulseClient({ endpoint: server.url, timeoutMs: 5000, connectionsMax: WRITERS });
        // Per writer, sequential operations: their order is known, so the expected state is exact.
        const puts = new Map<string, { value: string; outcome: Outcome }[]>();
        const deletes = new Map<string, Outcome[]>();
        const batches: { keys: string[]; outcome: Outcome }[] = [];
        let acked = 0;
        let stop = false;

        const writer = async (w: number): Promise<void> => {
          for (let n = 0; !stop && n < 100_000; n++) {
            const outcome: Outcome = { acked: false };
            try {
              if (n % 11 === 10) {
                const keys = [0, 1, 2].map((i) => `w${w}/batch${n}/${i}`);
                batches.push({ keys, outcome });
                await client.batch(keys.map((key) => ({ op: 'put' as const, key, value: `b${n}` })));
              } else if (n % 7 === 6) {
                const key = `w${w}/${n - 1}`;
                deletes.set(key, [...(deletes.get(key) ?? []), outcome]);
                await client.del(key);
              } else {
                const key = n % 5 === 4 ? `w${w}/counter` : `w${w}/${n}`;
                const value = `v${n}`;
                puts.set(key, [...(puts.get(key) ?? []), { value, outcome }]);
                await client.put(key, value);
              }
              outcome.acked = true;
              acked++;
            } catch {
              return; // the server died under us: this write's outcome is unknown
            }
          }
        };
        const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
        // At least the window, and on a loaded machine (fsyncs queue behind other work) until enough writes were acknowledged.
        const deadline = Date.now() + 30_000;
        await new Promise((resolve) => setTimeout(resolve, WRITE_WINDOW_MS));
        while (acked <= ACKED_MIN && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
        server.kill('SIGKILL');
        const exit = await server.exited;
        stop = true;
        await Promise.all(writers);
        client.close();
        assert.equal(exit, 'SIGKILL');
        assert.ok(acked > ACKED_MIN, `only ${acked} writes were acknowledged before the kill; the test did not exercise anything`);

        const restarted = await startServerProcess(['--engine', engineName, '--data-dir', dir, '--log-level', 'info']);
        const reader = new ImpulseClient({ endpoint: restarted.url });
        try {
          const stored = new Map<string, string>();
          for await (const { key, value } of reader.scanAll({ limit: 1000 })) stored.set(key.toString(), value.toString());

          let checked = 0;
          for (const [key, writes] of puts) {
            const deleteOutcomes = deletes.get(key) ?? [];
            const lastAckedPut = writes.map((write) => write.outcome.acked).lastIndexOf(true);
            const deletedForSure = deleteOutcomes.some((outcome) => outcome.acked);
            const actual = stored.get(key);
            if (deletedForSure) {
              assert.equal(actual, undefined, `${key} was deleted (acknowledged) but is back`);
            } else if (lastAckedPut >= 0) {
              // The last acknowledged value, or one written after it whose outcome is unknown;
              // or absent if a delete with unknown outcome followed.
              const allowed = writes.slice(lastAckedPut).map((write) => write.value);
              const maybeDeleted = deleteOutcomes.length > 0;
              assert.ok((actual !== undefined && allowed.includes(actual)) || (maybeDeleted && actual === undefined), `${key}: acknowledged ${allowed[0]}, found ${actual}`);
              checked++;
            } else if (actual !== undefined) {
              assert.ok(writes.some((write) => write.value === actual), `${key} holds ${actual}, which was never written`);
            }
          }
          for (const { keys, outcome } of batches) {
            const present = keys.filter((key) => stored.has(key)).length;
            assert.ok(present === 0 || present === keys.length, `batch ${keys[0]} is torn: ${present} of ${keys.length} keys present`);
            if (outcome.acked) assert.equal(present, keys.length, `acknowledged batch ${keys[0]} is missing`);
          }
          for (const key of stored.keys()) {
            assert.ok(puts.has(key) || batches.some((batch) => batch.keys.includes(key)), `phantom key ${key}`);
          }
          assert.ok(checked > 100, `only ${checked} acknowledged keys checked`);
        } finally {
          reader.close();
          restarted.kill('SIGTERM');
          await restarted.exited;
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
}
