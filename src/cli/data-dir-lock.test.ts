/**
 * The data-directory lock against real processes: live, exited, zombie, and a
 * PID that now belongs to another process; races between takers.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { lockDataDir, type DataDirLock } from './data-dir-lock.js';
import { hasProcfs, identityOf, recordedIdentity as identity, selfIdentity } from './process-identity.js';

const LINUX_PROC = hasProcfs();
const lockedBy = (pid: number) => (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_LOCKED') && error.message.includes(`in use by process ${pid} `);

/** A process that runs until killed, in its own process group. */
function live(): ChildProcess {
  return spawn('sleep', ['120'], { stdio: 'ignore', detached: true });
}

/** The PID of a process that has exited and been reaped. */
async function deadPid(): Promise<number> {
  const child = spawn('true', [], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

async function stopGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(-child.pid!, 'SIGKILL');
  await exited;
}

function commOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

async function waitFor(condition: () => boolean, what: () => string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('data-directory lock', () => {
  let root = '';
  let counter = 0;
  const children: ChildProcess[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'impulse-lock-'));
  });
  after(async () => {
    for (const child of children) await stopGroup(child);
    await rm(root, { recursive: true, force: true });
  });

  const freshLock = (): string => join(root, `lock-${counter++}`);
  /** Plants another process's claim in the lock directory. */
  const plantClaim = async (lockPath: string, content: string, pid = 4242): Promise<string> => {
    await mkdir(lockPath, { recursive: true });
    const name = `${pid}.abcdef.claim`;
    await writeFile(join(lockPath, name), content);
    return name;
  };
  const spawnLive = async (): Promise<number> => {
    const child = live();
    children.push(child);
    await waitFor(() => !LINUX_PROC || identityOf(child.pid!) !== undefined, () => 'the child to appear in /proc');
    return child.pid!;
  };

  it('is taken when free, refused while held (also within one process), and free again after release', async () => {
    const lockPath = freshLock();
    const lock = await lockDataDir(lockPath);
    const claims = await readdir(lockPath);
    assert.equal(claims.length, 1);
    assert.match(claims[0]!, new RegExp(`^${process.pid}\\.[0-9a-f]+\\.claim$`));
    assert.deepEqual(JSON.parse(await readFile(join(lockPath, claims[0]!), 'utf8')), JSON.parse(JSON.stringify(selfIdentity())));
    await assert.rejects(lockDataDir(lockPath, { attempts: 2 }), lockedBy(process.pid));
    assert.deepEqual(await readdir(lockPath), claims, 'the refused taker withdrew its claim');
    await lock.release();
    assert.deepEqual(await readdir(lockPath), []);
    const again = await lockDataDir(lockPath);
    again.releaseSync();
    assert.deepEqual(await readdir(lockPath), []);
  });

  it('is refused while another claim\'s process runs, and while an older version\'s lock file names a running process', async () => {
    const pid = await spawnLive();
    const lockPath = freshLock();
    await plantClaim(lockPath, JSON.stringify(identity(pid)) + '\n', pid);
    await assert.rejects(lockDataDir(lockPath, { attempts: 2 }), lockedBy(pid));
    const legacy = freshLock();
    await writeFile(legacy, `${pid}\n`); // the single-file lock of older versions: a bare PID
    await assert.rejects(lockDataDir(legacy), lockedBy(pid));
    assert.ok((await stat(legacy)).isFile(), 'a live legacy lock is left alone');
  });

  it('deletes the claim of a process that exited, an empty or garbled claim, and a stale legacy lock file', async () => {
    for (const content of [`${JSON.stringify({ pid: await deadPid() })}\n`, '', '{"pid": "x"}', 'garbage']) {
      const lockPath = freshLock();
      const stale = await plantClaim(lockPath, content);
      const lock = await lockDataDir(lockPath);
      assert.ok(!(await readdir(lockPath)).includes(stale), `${JSON.stringify(content)}: the stale claim is gone`);
      await lock.release();
    }
    const legacy = freshLock();
    await writeFile(legacy, `${await deadPid()}\n`);
    await (await lockDataDir(legacy)).release();
    assert.ok((await stat(legacy)).isDirectory(), 'replaced by the lock directory');
  });

  it('deletes a claim whose PID now belongs to another process (start time or boot differ)', { skip: !LINUX_PROC && 'needs /proc' }, async () => {
    const pid = await spawnLive();
    const current = identity(pid);
    const claims = [
      { ...current, startTime: String(BigInt(current.startTime!) + 1n) },
      { ...current, bootId: 'another-boot' },
      // Our own PID with another start time: a previous process that had our PID (a container's PID 1 before a restart).
      { ...selfIdentity(), startTime: '1' },
    ];
    for (const claim of claims) {
      const lockPath = freshLock();
      await plantClaim(lockPath, JSON.stringify(claim) + '\n', claim.pid);
      await (await lockDataDir(lockPath)).release();
    }
  });

  it('deletes the claim of a zombie: an owner killed with SIGKILL whose parent has not reaped it', { skip: !LINUX_PROC && 'needs /proc' }, async () => {
    // sh starts the owner in the background, prints its PID, and becomes `sleep`, which never reaps it.
    const parent = spawn('sh', ['-c', 'sleep 120 & echo $!; exec sleep 120'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    children.push(parent);
    const ownerPid = Number(await new Promise<string>((resolve) => parent.stdout!.once('data', (chunk: Buffer) => resolve(chunk.toString().trim()))));
    await waitFor(() => identityOf(ownerPid) !== undefined, () => `process ${ownerPid} to appear in /proc`);
    // Until sh has become `sleep` it may still reap the owner itself (then no zombie is left to test).
    await waitFor(() => commOf(parent.pid!) === 'sleep', () => `the owner's parent ${parent.pid} to become sleep (it is ${commOf(parent.pid!)})`);
    const lockPath = freshLock();
    await plantClaim(lockPath, JSON.stringify(identity(ownerPid)) + '\n', ownerPid);
    await assert.rejects(lockDataDir(lockPath, { attempts: 1 }), lockedBy(ownerPid), 'held while it runs');
    process.kill(ownerPid, 'SIGKILL');
    await waitFor(() => identityOf(ownerPid)?.state === 'Z', () => `process ${ownerPid} to become a zombie: ${JSON.stringify(identityOf(ownerPid))}`);
    assert.doesNotThrow(() => process.kill(ownerPid, 0), 'a zombie still answers signal 0: that is what fooled the old check');
    await (await lockDataDir(lockPath)).release();
  });

  it('without /proc, falls back to signal 0: a running owner holds, an exited one does not', async () => {
    const noProc = { procRoot: join(root, 'no-such-proc') };
    assert.equal(selfIdentity(noProc).startTime, undefined);
    const pid = await spawnLive();
    const lockPath = freshLock();
    const held = await plantClaim(lockPath, JSON.stringify({ pid }) + '\n', pid);
    await assert.rejects(lockDataDir(lockPath, { ...noProc, attempts: 1 }), lockedBy(pid));
    await rm(join(lockPath, held));
    await plantClaim(lockPath, JSON.stringify({ pid: await deadPid() }) + '\n');
    await (await lockDataDir(lockPath, noProc)).release();
  });

  it('of many concurrent takers never more than one holds it, with or without stale claims', async () => {
    let holders = 0;
    for (let trial = 0; trial < 12; trial++) {
      const lockPath = freshLock();
      if (trial % 2 === 1) await plantClaim(lockPath, JSON.stringify({ pid: await deadPid() }) + '\n');
      // Many tries: with them one taker always gets through; with the default a race may also end with none (safe).
      const attempts = trial < 6 ? 50 : undefined;
      const outcomes = await Promise.allSettled(Array.from({ length: 6 }, () => lockDataDir(lockPath, attempts === undefined ? {} : { attempts })));
      const won = outcomes.filter((outcome): outcome is PromiseFulfilledResult<DataDirLock> => outcome.status === 'fulfilled');
      const describe = outcomes.map((outcome) => (outcome.status === 'rejected' ? String(outcome.reason) : 'won')).join('; ');
      assert.ok(won.length <= 1, `trial ${trial}: ${describe}`);
      if (attempts !== undefined) assert.equal(won.length, 1, `trial ${trial}: ${describe}`);
      for (const outcome of outcomes) if (outcome.status === 'rejected') assert.ok(isImpulseError(outcome.reason, 'IMPULSE_ERR_ENGINE_LOCKED'), String(outcome.reason));
      holders += won.length;
      for (const { value } of won) await value.release();
      assert.deepEqual(await readdir(lockPath), [], `trial ${trial}: nothing left behind`);
    }
    assert.ok(holders >= 6);
  });

  it('release deletes only its own claim', async () => {
    const lockPath = freshLock();
    const lock = await lockDataDir(lockPath);
    const other = await plantClaim(lockPath, 'someone else\n');
    await lock.release();
    lock.releaseSync();
    assert.deepEqual(await readdir(lockPath), [other]);
  });

  it('fails with IMPULSE_ERR_ENGINE_IO, not a crash, when the lock cannot be created', async () => {
    const file = join(root, 'a-file');
    await writeFile(file, 'x');
    await assert.rejects(lockDataDir(join(file, 'x.lock')), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO'));
  });
});
