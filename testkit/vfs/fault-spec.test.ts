import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isImpulseError } from '../../src/errors.js';
import { SeededRandom } from '../../src/util/random.js';
import { errorCodeOf } from '../../src/vfs/vfs.js';
import { CrashError } from './fault-policy.js';
import { faultVfsFromSpec, parseFaultSpec } from './fault-spec.js';
import { MemVfs } from './mem-vfs.js';

const names = (spec: string): string[] => parseFaultSpec(spec, new SeededRandom(1)).map((policy) => policy.name);

describe('fault spec', () => {
  it('parses the documented examples into the policies they say', () => {
    assert.deepEqual(names(''), []);
    assert.deepEqual(names('fsync-error@p=0.01'), ['EIO with p=0.01 on file.sync/syncDir']);
    assert.deepEqual(names('latency=5ms'), ['delay 5ms on every op']);
    assert.deepEqual(names('write+fsync-latency=20ms@p=0.1'), ['delay 20ms with p=0.1 on file.write/file.truncate/file.sync/syncDir']);
    assert.deepEqual(names('write-enospc@from=5000'), ['ENOSPC on every op from op 5000 on on file.write/file.truncate']);
    assert.deepEqual(names('sync-crash@op=120'), ['crash at op 120 on file.sync']);
    assert.deepEqual(names(' fsync-latency=50ms , fsync-error@p=0.001 '), ['delay 50ms on every op on file.sync/syncDir', 'EIO with p=0.001 on file.sync/syncDir']);
    assert.deepEqual(names('rename+file.close-eio@from=3&p=1'), ['EIO with p=1 from op 3 on on rename/file.close']);
    assert.deepEqual(names('latency=200us,latency=0.5ms,latency=1s'), ['delay 0.2ms on every op', 'delay 0.5ms on every op', 'delay 1000ms on every op']);
  });

  it('a parsed spec does what it says on a vfs', async () => {
    const inner = new MemVfs();
    const vfs = faultVfsFromSpec(inner, 'sync-error@op=2,write-enospc@from=4,meta-crash@op=6', { seed: 7 });
    const file = await vfs.open('f', { create: true }); // 0
    await file.write(0, Buffer.from('a')); // 1
    await assert.rejects(file.sync(), (error: unknown) => errorCodeOf(error) === 'EIO'); // 2
    await file.sync(); // 3
    await assert.rejects(file.write(1, Buffer.from('b')), (error: unknown) => errorCodeOf(error) === 'ENOSPC'); // 4
    await file.read(0, 1); // 5: a read, untouched
    await assert.rejects(vfs.exists('f'), CrashError); // 6
    assert.equal(vfs.name, 'fault(EIO at op 2 on file.sync, ENOSPC on every op from op 4 on on file.write/file.truncate, crash at op 6 on open/rename/unlink/list/mkdir/exists/size/file.size/file.close, crashed at op 6) over mem');
    assert.equal((await inner.readFile('f')).toString(), 'a');
  });

  it('probabilistic rules are seeded, and appending a rule leaves the earlier rules\' draws alone', async () => {
    const failures = async (spec: string, seed: number): Promise<number[]> => {
      const vfs = faultVfsFromSpec(new MemVfs(), spec, { seed });
      for (let i = 0; i < 300; i++) await vfs.exists('x').catch(() => undefined);
      return vfs.firedFaults.map((fault) => fault.index);
    };
    const once = await failures('exists-error@p=0.2', 3);
    assert.deepEqual(await failures('exists-error@p=0.2', 3), once, 'same seed, same faults');
    assert.notDeepEqual(await failures('exists-error@p=0.2', 4), once);
    assert.ok(once.length > 30 && once.length < 90, `about 20% of 300: ${once.length}`);
    assert.deepEqual(await failures('exists-error@p=0.2,read-error@p=0.5', 3), once, 'a rule for other operations appended after it changes nothing');
  });

  it('refuses malformed specs with IMPULSE_ERR_CONFIG_INVALID naming the rule', () => {
    const cases: Array<[string, RegExp]> = [
      ['fsync-boom', /unknown action "boom"/],
      ['nosuch-error', /unknown operation or group "nosuch"/],
      ['error@p=2', /p must be a probability from 0 to 1; got "2"/],
      ['error@p=', /p must be a probability/],
      ['error@op=1&p=0.5', /op= cannot be combined/],
      ['error@op=-1', /op must be an operation index/],
      ['error@from=1&from=2', /from= given twice/],
      ['error@q=1', /unknown condition "q=1"/],
      ['latency=5', /bad duration "5"/],
      ['latency=2min', /bad duration/],
      ['latency=61s', /above 60 s/],
      ['error@p=0.1@op=3', /more than one '@'/],
      ['error,,crash@op=1', /empty rule/],
      ['read-write-error', /unknown action "write-error"/],
      ['x'.repeat(5000), /longer than 4096/],
      [Array(33).fill('error@op=1').join(','), /more than 32 rules/],
    ];
    for (const [spec, message] of cases) {
      assert.throws(
        () => parseFaultSpec(spec, new SeededRandom(1)),
        (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID') && message.test(error.message) && /^fault spec rule /.test(error.message),
        spec.slice(0, 40),
      );
    }
  });
});
