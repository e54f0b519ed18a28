/**
 * The limits table of docs/api.md against a server with the defaults `impulse
 * serve` uses: what /status reports must be what the table says, so a changed
 * default or a drifted table fails here.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { DEFAULT_LIMITS } from '../storage/engine.js';
import type { KvService } from '../service/kv-service.js';
import { openLocalKvService } from '../service/open-local.js';
import { ImpulseServer } from './server.js';

/** "4 KiB", "16 MiB", "10,000", "1000 (default page 100)" → bytes or a count. */
function documentedValue(text: string): number {
  const match = /^([\d,]+)\s*(KiB|MiB)?/.exec(text.trim());
  assert.ok(match, `a number in ${JSON.stringify(text)}`);
  const number = Number(match[1]!.replaceAll(',', ''));
  return match[2] === 'KiB' ? number * 1024 : match[2] === 'MiB' ? number * 1024 * 1024 : number;
}

describe('docs/api.md limits', () => {
  let dir = '';
  let service: KvService;
  let server: ImpulseServer;
  let url = '';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'impulse-limits-docs-'));
    service = await openLocalKvService({ engine: 'memory', dataDir: dir, sync: 'fsync', limits: DEFAULT_LIMITS });
    server = new ImpulseServer({ service, logger: pino({ level: 'silent' }), version: 'test' });
    const address = await server.listen(0, '127.0.0.1');
    url = `http://127.0.0.1:${address.port}`;
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('say what /status reports for the default configuration', async () => {
    const doc = await readFile(new URL('../../../docs/api.md', import.meta.url), 'utf8');
    const table = doc.slice(doc.indexOf('## Limits'));
    const row = (name: string): number => {
      const match = new RegExp(`^\\| ${name} \\| ([^|]+) \\|`, 'm').exec(table);
      assert.ok(match, `docs/api.md has a "${name}" row in its limits table`);
      return documentedValue(match[1]!);
    };
    const status = (await (await fetch(`${url}/status`)).json()) as { limits: Record<string, number> };
    assert.deepEqual(
      {
        keyBytesMax: row('key length'),
        valueBytesMax: row('value length'),
        batchOpsMax: row('operations per batch'),
        batchBytesMax: row('bytes per batch'),
        rangeLimitMax: row('items per range page'),
      },
      {
        keyBytesMax: status.limits['keyBytesMax'],
        valueBytesMax: status.limits['valueBytesMax'],
        batchOpsMax: status.limits['batchOpsMax'],
        batchBytesMax: status.limits['batchBytesMax'],
        rangeLimitMax: status.limits['rangeLimitMax'],
      },
    );
  });
});
