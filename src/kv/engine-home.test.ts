import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { LsmEngine } from '../storage/lsm/lsm-engine.js';
import { MemoryEngine } from '../storage/memory/memory-engine.js';
import { crc32c } from '../util/crc32c.js';
import { SeededRandom } from '../util/random.js';
import { MemVfs } from '../../testkit/vfs/mem-vfs.js';
import { DirectoryEngineHome, MemoryEngineHome } from './engine-home.js';

const bytes = (text: string): Buffer => Buffer.from(text);

function homeOn(vfs: MemVfs): DirectoryEngineHome {
  return new DirectoryEngineHome(vfs, 'home', (dir) => new LsmEngine({ dataDir: dir, vfs }));
}

describe('engine home', () => {
  it('creates the first slot and LIVE on first use, and reopens the same slot after a power loss', async () => {
    const vfs = new MemVfs({ random: new SeededRandom(1) });
    const live = await homeOn(vfs).openLive();
    assert.equal(live.name, 'engine-000001');
    await live.engine.put(bytes('k'), bytes('v'));
    await live.engine.close();
    assert.match((await vfs.readFile('home/LIVE')).toString(), /^engine-000001 [0-9a-f]{8}\n$/);
    const again = await homeOn(vfs.recover('lose-unsynced')).openLive();
    assert.equal(again.name, 'engine-000001');
    assert.deepEqual(await again.engine.get(bytes('k')), bytes('v'));
    await again.engine.close();
  });

  it('promotes a staged slot atomically and deletes the old one; reopening finds the new one', async () => {
    const vfs = new MemVfs({ random: new SeededRandom(2) });
    const home = homeOn(vfs);
    const old = await home.openLive();
    await old.engine.put(bytes('k'), bytes('old'));
    const staged = await home.createStaging();
    assert.equal(staged.name, 'engine-000002');
    await staged.engine.put(bytes('k'), bytes('new'));
    await home.promote(staged);
    await home.remove(old);
    assert.deepEqual(await vfs.list('home/engine-000001'), []);
    await staged.engine.close();
    const reopened = await homeOn(vfs.recover('lose-unsynced')).openLive();
    assert.equal(reopened.name, 'engine-000002');
    assert.deepEqual(await reopened.engine.get(bytes('k')), bytes('new'));
    await reopened.engine.close();
  });

  it('at open, rolls back an unfinished switch (LIVE.tmp) and deletes slots LIVE does not name', async () => {
    const vfs = new MemVfs({ random: new SeededRandom(3) });
    const home = homeOn(vfs);
    const live = await home.openLive();
    await live.engine.put(bytes('k'), bytes('live'));
    const staged = await home.createStaging();
    await staged.engine.put(bytes('k'), bytes('staged'));
    await staged.engine.close();
    await live.engine.close();
    const temp = await vfs.open('home/LIVE.tmp', { create: true });
    await temp.write(0, bytes('engine-000002 00000000\n'));
    await temp.close();
    const recoveredHome = homeOn(vfs);
    const recovered = await recoveredHome.openLive();
    assert.equal(recovered.name, 'engine-000001');
    assert.deepEqual(await recovered.engine.get(bytes('k')), bytes('live'));
    assert.equal(await vfs.exists('home/LIVE.tmp'), false);
    assert.deepEqual(await vfs.list('home/engine-000002'), []);
    // Slot numbers are never reused, even when an emptied directory stays behind.
    const next = await recoveredHome.createStaging();
    assert.equal(next.name, 'engine-000003');
    await next.engine.close();
    await recovered.engine.close();
  });

  it('refuses a directory of engine files without LIVE (an older impulse wrote it) and touches nothing', async () => {
    const vfs = new MemVfs({ random: new SeededRandom(4) });
    const old = new LsmEngine({ dataDir: 'home', vfs });
    await old.open();
    await old.put(bytes('user/1'), bytes('alice'));
    await old.close();
    const before = vfs.fileNames();
    await assert.rejects(homeOn(vfs).openLive(), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_DATA_FORMAT_UNSUPPORTED') && /older impulse/.test((error as Error).message));
    assert.deepEqual(vfs.fileNames(), before);
    // Slot directories with files but no LIVE are refused too (LIVE was deleted by hand).
    const other = new MemVfs({ random: new SeededRandom(5) });
    const slot = await homeOn(other).openLive();
    await slot.engine.put(bytes('k'), bytes('v'));
    await slot.engine.close();
    await other.unlink('home/LIVE');
    await assert.rejects(homeOn(other).openLive(), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_DATA_FORMAT_UNSUPPORTED'));
  });

  it('detects a damaged LIVE, or one naming a missing slot, as corruption', async () => {
    const vfs = new MemVfs({ random: new SeededRandom(6) });
    const slot = await homeOn(vfs).openLive();
    await slot.engine.close();
    vfs.flipBit('home/LIVE', 12, 0);
    await assert.rejects(homeOn(vfs).openLive(), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION') && /LIVE/.test((error as Error).message));
    const other = new MemVfs({ random: new SeededRandom(7) });
    await other.mkdir('home');
    const pointer = await other.open('home/LIVE', { create: true });
    await pointer.write(0, bytes('engine-000009 2a7a1b4c\n'));
    await pointer.close();
    await assert.rejects(homeOn(other).openLive(), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'));
  });

  it('keeps a staged slot across a restart until it is promoted, and a newer staged slot replaces it', async () => {
    const vfs = new MemVfs({ random: new SeededRandom(8) });
    const home = homeOn(vfs);
    const live = await home.openLive();
    const first = await home.createStaging();
    await first.engine.put(bytes('k'), bytes('first'));
    await home.markStaged(first, 10, 2);
    const second = await home.createStaging();
    await second.engine.put(bytes('k'), bytes('second'));
    await first.engine.close();
    await home.markStaged(second, 20, 3);
    assert.deepEqual(await vfs.list('home/engine-000002'), []); // the replaced image is gone
    await second.engine.close();
    await live.engine.close();
    const disk = vfs.recover('lose-unsynced');
    const restarted = homeOn(disk);
    const liveAgain = await restarted.openLive();
    assert.equal(liveAgain.name, 'engine-000001');
    assert.deepEqual(restarted.staged, { name: 'engine-000003', index: 20, term: 3 });
    const staged = await restarted.openStaged();
    assert.deepEqual(await staged.engine.get(bytes('k')), bytes('second'));
    await restarted.promote(staged);
    assert.equal(restarted.staged, undefined);
    assert.equal(await disk.exists('home/STAGED'), false);
    await restarted.remove(liveAgain);
    await staged.engine.close();
  });

  it('drops a STAGED that names the live slot (a crash after the switch, before STAGED was removed)', async () => {
    const vfs = new MemVfs({ random: new SeededRandom(9) });
    const home = homeOn(vfs);
    const live = await home.openLive();
    const staged = await home.createStaging();
    await home.markStaged(staged, 5, 1);
    await staged.engine.close();
    await live.engine.close();
    // LIVE switched by hand, as promote's first step would have: STAGED still names the slot.
    const pointer = await vfs.open('home/LIVE', { create: true, truncate: true });
    await pointer.write(0, bytes(`engine-000002 ${crc32c(bytes('engine-000002')).toString(16).padStart(8, '0')}\n`));
    await pointer.close();
    const after = homeOn(vfs);
    const slot = await after.openLive();
    assert.equal(slot.name, 'engine-000002');
    assert.equal(after.staged, undefined);
    assert.equal(await vfs.exists('home/STAGED'), false);
    await slot.engine.close();
  });

  it('a memory home hands out a fresh empty engine per slot', async () => {
    const home = new MemoryEngineHome(() => new MemoryEngine());
    const live = await home.openLive();
    await live.engine.put(bytes('k'), bytes('v'));
    const staged = await home.createStaging();
    assert.equal(await staged.engine.get(bytes('k')), undefined);
    await home.promote(staged);
    await home.remove(live);
    assert.equal(live.engine.isOpen, false);
    await staged.engine.close();
  });
});
