import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { globMatch, isPrefixPattern, literalPrefix } from './glob.js';

/** The model: the pattern as a JavaScript regular expression over latin1 text (one character per byte). */
function modelMatch(pattern: string, key: string): boolean {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!;
    if (char === '*') source += '[\\s\\S]*';
    else if (char === '?') source += '[\\s\\S]';
    else if (char === '\\' && i + 1 < pattern.length) source += escape(pattern[++i]!);
    else source += escape(char);
  }
  return new RegExp(`^${source}$`).test(key);
}

function escape(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

const B = (text: string): Buffer => Buffer.from(text, 'latin1');

describe('SCAN MATCH patterns', () => {
  it('match as a regular expression model does, for *, ? and escapes (property)', () => {
    const alphabet = fc.constantFrom('a', 'b', ':', '*', '?', '\\', '\u00ff');
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 8 }), fc.array(fc.constantFrom('a', 'b', ':', '*', '?', '\\', '\u00ff'), { maxLength: 8 }), (pattern, key) => {
        const p = pattern.join('');
        const k = key.join('');
        assert.equal(globMatch(B(p), B(k)), modelMatch(p, k), `pattern ${JSON.stringify(p)} key ${JSON.stringify(k)}`);
      }),
      { numRuns: 2000 },
    );
  });

  it('match character sets, ranges and negation', () => {
    assert.equal(globMatch(B('user:[0-9]'), B('user:7')), true);
    assert.equal(globMatch(B('user:[0-9]'), B('user:x')), false);
    assert.equal(globMatch(B('h[^e]llo'), B('hello')), false);
    assert.equal(globMatch(B('h[^e]llo'), B('hallo')), true);
    assert.equal(globMatch(B('h[ae]llo'), B('hello')), true);
    assert.equal(globMatch(B('h[a\\]]llo'), B('h]llo')), true);
  });

  it('turn a pattern into the literal prefix that bounds the range read', () => {
    assert.deepEqual(literalPrefix(B('user:*')), B('user:'));
    assert.deepEqual(literalPrefix(B('*')), B(''));
    assert.deepEqual(literalPrefix(B('a?c*')), B('a'));
    assert.deepEqual(literalPrefix(B('a\\*b')), B('a'));
    assert.equal(isPrefixPattern(B('user:*')), true);
    assert.equal(isPrefixPattern(B('*')), true);
    assert.equal(isPrefixPattern(B('user:*:name')), false);
    assert.equal(isPrefixPattern(B('exact')), false);
  });

  it('give up on a pathological pattern instead of backtracking for ever', () => {
    const started = performance.now();
    assert.equal(globMatch(B('*a*a*a*a*a*a*a*a*a*b'), B('a'.repeat(60))), false);
    assert.ok(performance.now() - started < 2000);
  });
});
