/**
 * A leaderless member (`impulse serve --replication leaderless`) honours what
 * a Raft member does, through real processes:
 *   - `--test-control` clock faults: the member runs on the FaultClock (its
 *     failure detector sees a jump at once);
 *   - `--test-control` disk faults: its replica engine writes through the
 *     FaultVfs; with fsync failing, a write is refused (never acknowledged),
 *     /health says read-only, and after a restart on a healthy disk every
 *     acknowledged write is there;
 *   - `--wal-recovery` reaches its engine (/status `storage.recovery`);
 *   - `--test-bug` takes the leaderless bugs and refuses the Raft ones.
 * Member 2 of the two-member cluster is never started: with N=2 and W=R=1
 * member 1 coordinates and stores every key alone.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ImpulseClient } from '../client/client.js';
import type { ImpulseError } from '../errors.js';
import { MemberProcesses } from '../../testkit/chaos/members.js';
import { runCli } from '../../testkit/process/cli-run.js';
import { freePorts } from '../../testkit/process/ports.js';

async function withMember(extra: readonly string[], body: (member: { processes: MemberProcesses; client: ImpulseClient; restart(args?: readonly string[]): Promise<void> }) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'impulse-leaderless-hooks-'));
  const [clientPort, peerPort, absentPeer] = await freePorts(3);
  const processes = new MemberProcesses(root);
  const args = (more: readonly string[]): string[] => [
    '--node-id', '1', '--host', '127.0.0.1', '--port', String(clientPort), '--peer-port', String(peerPort),
    '--initial-cluster', `1=127.0.0.1:${peerPort},2=127.0.0.1:${absentPeer}`,
    '--data-dir', processes.dataDir(1), '--replication', 'leaderless', '--replicas', '2', '--write-quorum', '1', '--read-quorum', '1',
    ...more,
  ];
  const client = new ImpulseClient({ endpoint: `http://127.0.0.1:${clientPort}`, timeoutMs: 10_000, writeRetriesMax: 0 });
  try {
    await processes.start(1, args(extra));
    await body({
      processes,
      client,
      restart: async (more = extra) => {
        await processes.kill(1);
        await processes.start(1, args(more));
      },
    });
  } finally {
    client.close();
    await processes.killAll();
    await rm(root, { recursive: true, force: true });
  }
}

async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('leaderless members: test hooks and engine flags (real processes)', { concurrency: false }, () => {
  it('--test-control: the clock fault reaches the failure detector; a failing fsync refuses writes (read-only), and a restart on a healthy disk keeps every acknowledged write', async () => {
    await withMember(['--engine', 'lsm', '--test-control'], async ({ processes, client, restart }) => {
      assert.ok(processes.output(1).includes('TEST-ONLY hooks are on'));
      await client.putVersion('before', 'v1');
      const silentOf2 = async (): Promise<number> => (await client.cluster()).members.find((member) => member.id === 2)!.lastContactMs!;
      assert.ok((await silentOf2()) < 600_000);
      processes.control(1, { clock: { jumpMs: 600_000 } });
      await until(async () => ((await silentOf2()) >= 600_000 ? true : undefined), 'the jump to show in /cluster');

      processes.control(1, { disk: 'fsync-error@p=1' });
      // The control line is applied asynchronously: write until a write is refused.
      const refused = await until(async () => {
        const key = `during-${Date.now()}`;
        return client.putVersion(key, 'x').then(() => undefined, (error: ImpulseError) => ({ key, error }));
      }, 'a write refused on the failing disk');
      assert.equal(refused.error.code, 'IMPULSE_ERR_QUORUM_UNAVAILABLE', refused.error.message);
      const health = await client.healthReport();
      assert.equal(health.ok, false);
      assert.equal(health.report.status, 'read-only', JSON.stringify(health.report));
      assert.equal((await client.getVersions('before')).values.toString(), 'v1', 'reads are still served');

      processes.control(1, { disk: '' });
      await restart();
      assert.equal(await client.health(), true);
      assert.equal((await client.getVersions('before')).values.toString(), 'v1', 'the acknowledged write survived');
      await client.putVersion('after', 'v2');
      assert.equal((await client.getVersions('after')).values.toString(), 'v2');
    });
  });

  it('--wal-recovery reaches the replica engine; --test-bug takes the leaderless bugs and refuses the Raft ones', async () => {
    await withMember(['--engine', 'lsm', '--wal-recovery', 'point-in-time', '--test-bug', 'ack-before-w'], async ({ processes, client }) => {
      await client.putVersion('a', '1');
      const storage = ((await client.status()) as { storage: { recovery: { summary: string } | null } }).storage;
      assert.match(storage.recovery?.summary ?? '', /WAL recovery \(point-in-time\)/);
      assert.match(processes.output(1), /"bugs":\["ack-before-w"\]/);
    });
    const refused = await runCli(['serve', '--node-id', '1', '--initial-cluster', '1=127.0.0.1:1', '--replication', 'leaderless', '--test-bug', 'no-read-index', '--data-dir', join(tmpdir(), 'impulse-never-created')]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /no-read-index is a bug of raft members/);
  });
});
