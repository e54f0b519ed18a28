/**
 * The storage engine's health and recovery report as the service shows them
 * (`health()` → `/health`, `status().storage` → `/status`): a single node on a
 * real lsm engine whose disk fills up and empties again, and whose WAL fsync
 * fails. Faults come from MemVfs policies; the engine, state machine and
 * service are the real ones.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isImpulseError } from '../errors.js';
import { DirectoryEngineHome } from '../kv/engine-home.js';
import { KvStateMachine, engineLimitsFor } from '../kv/state-machine.js';
import { DEFAULT_LIMITS } from '../storage/engine.js';
import { LsmEngine } from '../storage/lsm/lsm-engine.js';
import type { FaultAction, IoOperation } from '../../testkit/vfs/fault-policy.js';
import { MemVfs } from '../../testkit/vfs/mem-vfs.js';
import type { KvCommand } from '../kv/command.js';
import { LocalKvService } from './local-kv-service.js';

interface LoggedLine {
  readonly level: 'info' | 'warn';
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

/** A single node on lsm over `vfs`; every engine log line lands in `lines`. */
async function openNode(vfs: MemVfs, lines: LoggedLine[]): Promise<LocalKvService> {
  const log = {
    info: (fields: Record<string, unknown>, message: string) => lines.push({ level: 'info', fields, message }),
    warn: (fields: Record<string, unknown>, message: string) => lines.push({ level: 'warn', fields, message }),
  };
  const home = new DirectoryEngineHome(vfs, 'home', (dir) => new LsmEngine({ dataDir: dir, vfs, limits: engineLimitsFor(DEFAULT_LIMITS), memtableBytes: 1 << 20, log }));
  const machine = await KvStateMachine.open({ home, limits: DEFAULT_LIMITS });
  return new LocalKvService({ machine });
}

function put(key: string, value: string): KvCommand {
  return { ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }] };
}

/** Fails the operations `decide` picks, while it is installed. */
function failWhen(vfs: MemVfs, name: string): { decide: ((op: IoOperation) => FaultAction | undefined) | undefined } {
  const switchable: { decide: ((op: IoOperation) => FaultAction | undefined) | undefined } = { decide: undefined };
  vfs.inject({ name, decide: (op) => switchable.decide?.(op) });
  return switchable;
}

describe('storage health through the service', () => {
  it('a full disk: writes get 507 NO_SPACE, health says degraded with the reason, reads are served; once space returns writes succeed and health is ok again', async () => {
    const vfs = new MemVfs();
    const lines: LoggedLine[] = [];
    const service = await openNode(vfs, lines);
    const disk = failWhen(vfs, 'disk full on WAL appends');
    await service.write(put('a', '1'));
    assert.deepEqual(service.health(), { status: 'ok' });
    const status = await service.status();
    assert.deepEqual(status.storage.health, { state: 'ok' });
    assert.equal(status.storage.recovery?.dataLost, false);
    assert.match(status.storage.recovery!.summary, /WAL recovery \(tolerate-tail\)/);

    disk.decide = (op) => (op.operation === 'file.write' && op.path.endsWith('.log') ? { errno: 'ENOSPC' } : undefined);
    await assert.rejects(service.write(put('b', '2')), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_NO_SPACE'));
    const health = service.health();
    assert.equal(health.status, 'degraded');
    assert.equal(health.engine?.state, 'degraded');
    assert.equal(health.engine?.code, 'IMPULSE_ERR_ENGINE_NO_SPACE');
    assert.match(health.reason!, /^storage engine lsm: .*ENOSPC/);
    assert.equal((await service.status()).storage.health.state, 'degraded');
    assert.equal((await service.get(Buffer.from('a')))?.value.toString(), '1');
    assert.ok(lines.some((line) => line.level === 'warn' && line.fields['health'] === 'degraded'), 'the degradation is logged');

    disk.decide = undefined;
    await service.write(put('c', '3'));
    assert.deepEqual(service.health(), { status: 'ok' });
    assert.deepEqual((await service.status()).storage.health, { state: 'ok' });
    assert.ok(lines.some((line) => line.level === 'info' && /no longer degraded/.test(line.message)), 'the recovery is logged');
    await service.close();
  });

  it('a failed WAL fsync: health says read-only with the reason, later writes are refused with READ_ONLY, reads are served', async () => {
    const vfs = new MemVfs();
    const service = await openNode(vfs, []);
    const disk = failWhen(vfs, 'WAL fsync fails');
    await service.write(put('a', '1'));
    disk.decide = (op) => (op.operation === 'file.sync' && op.path.endsWith('.log') ? 'error' : undefined);
    await assert.rejects(service.write(put('b', '2')));
    disk.decide = undefined;
    await assert.rejects(service.write(put('c', '3')), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_READ_ONLY'));
    const health = service.health();
    assert.equal(health.status, 'read-only');
    assert.equal(health.engine?.code, 'IMPULSE_ERR_ENGINE_IO');
    assert.match(health.reason!, /syncing the WAL failed .*EIO/);
    assert.equal((await service.status()).storage.health.state, 'read-only');
    assert.equal((await service.get(Buffer.from('a')))?.value.toString(), '1');
    await service.close().catch(() => undefined);
  });
});
