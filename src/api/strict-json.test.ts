import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isImpulseError } from '../errors.js';
import { findNameOrEscapeProblem, parseStrictJson } from './strict-json.js';

const parse = (text: string | Buffer): unknown => parseStrictJson(Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8'), 'IMPULSE_ERR_BATCH_INVALID', 'body');

function assertRefused(text: string | Buffer, pattern: RegExp): void {
  assert.throws(
    () => parse(text),
    (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_BATCH_INVALID') && pattern.test(error.message),
    `${String(text)} should be refused with ${pattern}`,
  );
}

describe('strict JSON', () => {
  it('refuses a name given twice in one object, at any depth, also when spelled with escapes', () => {
    assertRefused('{"ops": [{"op": "put"}], "ops": []}', /"ops" appears twice/);
    assertRefused('{"ops": [{"op": "put", "key": "a", "key": "b"}]}', /"key" appears twice/);
    assertRefused('{"ops": 1, "o\\u0070s": 2}', /"ops" appears twice/);
    assertRefused(`{${Array.from({ length: 20 }, (_, i) => `"n${i}": ${i}`).join(', ')}, "n13": 0}`, /"n13" appears twice/);
  });

  it('accepts the same name in different objects, and names that only look alike', () => {
    assert.deepEqual(parse('[{"a": 1}, {"a": 2}, {"b": {"a": 3}, "a": "a"}]'), [{ a: 1 }, { a: 2 }, { b: { a: 3 }, a: 'a' }]);
    assert.deepEqual(parse('{"a\\"b": 1, "a\\\\b": 2, "ops": "\\"ops\\""}'), { 'a"b': 1, 'a\\b': 2, ops: '"ops"' });
  });

  it('refuses escapes of lone surrogates and accepts escaped pairs', () => {
    assertRefused('{"value": "\\ud800"}', /lone surrogate \\ud800/);
    assertRefused('{"value": "x\\udc00"}', /lone surrogate \\udc00/);
    assertRefused('{"value": "\\ud800\\u0041"}', /lone surrogate/);
    assertRefused('{"\\ud800": 1}', /lone surrogate/);
    assert.deepEqual(parse('{"value": "\\ud83d\\ude00 \\u00e9"}'), { value: '😀 é' });
  });

  it('refuses bytes that are not UTF-8 and text that is not JSON', () => {
    assertRefused(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]), /not valid UTF-8/);
    assertRefused(Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]), /not valid UTF-8/); // a surrogate encoded in UTF-8 (CESU)
    assertRefused('{"a": 1,}', /not JSON/);
  });

  it('finds nothing wrong in any JSON.stringify output (fast-check)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = JSON.stringify(value);
        assert.equal(findNameOrEscapeProblem(text), undefined, text);
        assert.deepEqual(parse(text), JSON.parse(text));
      }),
      { numRuns: 500, seed: 11 },
    );
  });

  it('finds a duplicate planted in any object of a generated document (fast-check)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), fc.nat(), (value, pick) => {
        const text = JSON.stringify(value);
        const objects = [...text.matchAll(/\{"((?:[^"\\]|\\.)*)":/g)];
        fc.pre(objects.length > 0);
        const target = objects[pick % objects.length]!;
        // A second copy of the object's first name, inserted before it.
        const planted = `${text.slice(0, target.index! + 1)}"${target[1]}": 0, ${text.slice(target.index! + 1)}`;
        assert.match(findNameOrEscapeProblem(planted) ?? '', /appears twice/, planted);
      }),
      { numRuns: 300, seed: 12 },
    );
  });
});
