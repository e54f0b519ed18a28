import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CommandTable, type CommandSpec } from './command.js';

function spec(name: string): CommandSpec {
  return { name, arity: -1, flags: [], keys: [0, 0, 0], group: 'test', summary: name, run: () => Buffer.alloc(0) };
}

const NAMES = ['get', 'set', 'del', 'mget', 'mset', 'scan', 'ping', 'echo', 'quit', 'client', 'msetnx', 'command', 'x@y', 'a`b'];

describe('CommandTable', () => {
  const table = new CommandTable(NAMES.map(spec));

  it('finds a command from its name in any ASCII case, as a lookup of the lower-cased name would (property)', () => {
    // Names near the table's (a changed letter, a changed case, punctuation next to letters in ASCII) and random bytes.
    const nearName = fc.tuple(fc.constantFrom(...NAMES), fc.array(fc.tuple(fc.nat(), fc.constantFrom(0x20, 0x01, 0x40, -0x20)), { maxLength: 2 })).map(([name, edits]) => {
      const bytes = Buffer.from(name, 'latin1');
      for (const [at, delta] of edits) bytes[at % bytes.length] = (bytes[at % bytes.length]! + delta) & 0xff;
      return bytes;
    });
    fc.assert(
      fc.property(fc.oneof(nearName, fc.uint8Array({ maxLength: 8 }).map((bytes) => Buffer.from(bytes))), (name) => {
        const lowered = Buffer.from(name.map((byte) => (byte >= 0x41 && byte <= 0x5a ? byte + 0x20 : byte))).toString('latin1');
        assert.equal(table.find(name), table.get(lowered));
      }),
      { numRuns: 2000 },
    );
  });

  it('finds each command under its own name, upper case and mixed case; nothing for a prefix, a longer name or punctuation lowered', () => {
    for (const name of NAMES) {
      assert.equal(table.find(Buffer.from(name))?.name, name);
      assert.equal(table.find(Buffer.from(name.toUpperCase()))?.name, name);
    }
    assert.equal(table.find(Buffer.from('GeT'))?.name, 'get');
    assert.equal(table.find(Buffer.from('ge')), undefined);
    assert.equal(table.find(Buffer.from('gets')), undefined);
    assert.equal(table.find(Buffer.from('X`Y')), undefined); // '`' is not '@' lowered
    assert.equal(table.find(Buffer.alloc(0)), undefined);
  });
});
