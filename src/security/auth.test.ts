import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Authorizer, type Principal, TokenTable, requireKeyAllowed, requireRangeAllowed } from './auth.js';
import { isImpulseError } from '../errors.js';
import { prefixUpperBound } from '../storage/engine.js';

const READ = 'r'.repeat(20);
const WRITE = 'w'.repeat(20);
const ADMIN = 'a'.repeat(20);
const APP = 'p'.repeat(20);
const FILE = `# comment\n\nreader read ${READ}\nwriter write ${WRITE}\n  operator admin ${ADMIN}  \napp write ${APP} app%2F\n`;

function code(work: () => unknown): string | undefined {
  try {
    work();
    return undefined;
  } catch (error) {
    assert.ok(isImpulseError(error), String(error));
    return error.code;
  }
}

describe('TokenTable', () => {
  it('parses names, roles, tokens and percent-encoded prefixes; looks tokens up', () => {
    const table = TokenTable.parse(FILE, 'tokens');
    assert.equal(table.size, 4);
    assert.deepEqual(table.lookup(READ), { name: 'reader', role: 'read' });
    assert.deepEqual(table.lookup(ADMIN), { name: 'operator', role: 'admin' });
    assert.deepEqual(table.lookup(APP), { name: 'app', role: 'write', prefix: Buffer.from('app/') });
    assert.equal(table.lookup('x'.repeat(20)), undefined);
    assert.equal(table.lookup(READ.slice(1)), undefined);
    assert.equal(table.lookup(''), undefined);
  });

  it('refuses malformed files with the line number and never the token', () => {
    const secret = 's3cr3t-'.repeat(4);
    const cases: Array<[string, RegExp]> = [
      [`a read ${secret}\nb nobody ${secret}x`, /line 2: role must be read, write or admin/],
      ['a read short', /line 1: a token is 16/],
      [`a read ${secret}\na write ${secret}x`, /token name a is used twice/],
      [`a read ${secret}\nb write ${secret}`, /the same token is listed twice/],
      [`a read ${secret} app/ extra`, /expected "name role token \[prefix\]"/],
      [`a/b read ${secret}`, /a token name is/],
      ['# nothing\n', /lists no tokens/],
    ];
    for (const [text, expected] of cases) {
      assert.throws(
        () => TokenTable.parse(text, 'tokens.txt'),
        (error: unknown) => isImpulseError(error) && error.code === 'IMPULSE_ERR_CONFIG_INVALID' && expected.test(error.message) && !error.message.includes(secret),
        text,
      );
    }
  });
});

describe('Authorizer', () => {
  const auth = new Authorizer(TokenTable.parse(FILE, 'tokens'), false);
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it('401 without a token, with a malformed header or an unknown token', () => {
    assert.equal(code(() => auth.authenticate({})), 'IMPULSE_ERR_AUTH_REQUIRED');
    assert.equal(code(() => auth.authenticate({ authorization: `Basic ${READ}` })), 'IMPULSE_ERR_AUTH_REQUIRED');
    assert.equal(code(() => auth.authenticate(bearer('z'.repeat(20)))), 'IMPULSE_ERR_AUTH_REQUIRED');
    assert.equal(auth.authenticate({ authorization: `bearer  ${READ}` }).name, 'reader');
  });

  it('roles nest: read < write < admin; whole-key-space requests refuse prefix-limited tokens', () => {
    assert.equal(code(() => auth.require(bearer(READ), 'write')), 'IMPULSE_ERR_AUTH_FORBIDDEN');
    assert.equal(code(() => auth.require(bearer(WRITE), 'admin')), 'IMPULSE_ERR_AUTH_FORBIDDEN');
    assert.equal(auth.require(bearer(ADMIN), 'read').name, 'operator');
    assert.equal(auth.require(bearer(WRITE), 'write').name, 'writer');
    assert.equal(code(() => auth.require(bearer(APP), 'read', true)), 'IMPULSE_ERR_AUTH_FORBIDDEN');
  });

  it('a reload replaces the tokens for the next request', () => {
    const reloadable = new Authorizer(TokenTable.parse(FILE, 'tokens'), false);
    reloadable.reload(TokenTable.parse(`fresh read ${'f'.repeat(20)}`, 'tokens'));
    assert.equal(code(() => reloadable.authenticate(bearer(READ))), 'IMPULSE_ERR_AUTH_REQUIRED');
    assert.equal(reloadable.authenticate(bearer('f'.repeat(20))).name, 'fresh');
  });
  it('a connection that repeats the header it was accepted with skips the lookup; any other header, and every reload, is checked again', () => {
    let lookups = 0;
    const counting = (text: string): TokenTable => {
      const table = TokenTable.parse(text, 'tokens');
      const lookupDigest = table.lookupDigest.bind(table);
      table.lookupDigest = (digest: Buffer): Principal | undefined => {
        lookups++;
        return lookupDigest(digest);
      };
      return table;
    };
    const cached = new Authorizer(counting(FILE), false);
    const socket = {};
    const other = {};
    assert.equal(cached.require(bearer(WRITE), 'write', false, socket).name, 'writer');
    assert.equal(cached.require(bearer(WRITE), 'write', false, socket).name, 'writer');
    assert.equal(lookups, 1, 'the second request on the connection reuses the first check');
    assert.equal(code(() => cached.require(bearer(WRITE), 'admin', false, socket)), 'IMPULSE_ERR_AUTH_FORBIDDEN', 'the role is still checked on every request');
    assert.equal(cached.require(bearer(WRITE), 'write', false, other).name, 'writer');
    assert.equal(lookups, 2, 'another connection is checked on its own');
    assert.equal(code(() => cached.authenticate(bearer('z'.repeat(20)), socket)), 'IMPULSE_ERR_AUTH_REQUIRED', 'a different header on the same connection is checked');
    assert.equal(cached.authenticate(bearer(READ), socket).name, 'reader');
    cached.reload(counting(`fresh read ${'f'.repeat(20)}`));
    assert.equal(code(() => cached.authenticate(bearer(READ), socket)), 'IMPULSE_ERR_AUTH_REQUIRED', 'a token removed by a reload stops working on an open connection');
    assert.equal(code(() => cached.authenticate({}, socket)), 'IMPULSE_ERR_AUTH_REQUIRED', 'no header is never accepted from the cache');
  });
});

describe('prefix limits', () => {
  const app: Principal = { name: 'app', role: 'write', prefix: Buffer.from('app/') };

  it('keys: only those starting with the prefix', () => {
    requireKeyAllowed(app, Buffer.from('app/x'));
    requireKeyAllowed(app, Buffer.from('app/'));
    for (const key of ['app', 'apq/', 'other', 'ap']) assert.equal(code(() => requireKeyAllowed(app, Buffer.from(key))), 'IMPULSE_ERR_AUTH_FORBIDDEN', key);
  });

  it('ranges: only those wholly inside the prefix', () => {
    requireRangeAllowed(app, { gte: Buffer.from('app/'), lt: Buffer.from('app0'), limit: 10 });
    requireRangeAllowed(app, { gt: Buffer.from('app/m'), lte: Buffer.from('app/z'), limit: 10 });
    assert.equal(code(() => requireRangeAllowed(app, { limit: 10 })), 'IMPULSE_ERR_AUTH_FORBIDDEN');
    assert.equal(code(() => requireRangeAllowed(app, { gte: Buffer.from('app/'), limit: 10 })), 'IMPULSE_ERR_AUTH_FORBIDDEN');
    assert.equal(code(() => requireRangeAllowed(app, { gte: Buffer.from('apo'), lt: Buffer.from('app0'), limit: 10 })), 'IMPULSE_ERR_AUTH_FORBIDDEN');
    assert.equal(code(() => requireRangeAllowed(app, { gte: Buffer.from('app/'), lte: Buffer.from('app0'), limit: 10 })), 'IMPULSE_ERR_AUTH_FORBIDDEN');
  });

  it('property: a range that passes holds only keys under the prefix, and every range inside the prefix passes', () => {
    const bytes = fc.uint8Array({ minLength: 0, maxLength: 4 }).map((array) => Buffer.from(array.map((byte) => byte % 4 === 3 ? 0xff : byte % 4)));
    fc.assert(
      fc.property(bytes.filter((prefix) => prefix.length > 0), bytes, fc.option(bytes, { nil: undefined }), fc.option(bytes, { nil: undefined }), fc.boolean(), fc.boolean(), fc.array(bytes, { maxLength: 30 }), (prefix, extra, lowerBytes, upperBytes, lowerInclusive, upperInclusive, keys) => {
        const principal: Principal = { name: 't', role: 'read', prefix };
        const range = {
          ...(lowerBytes !== undefined ? (lowerInclusive ? { gte: lowerBytes } : { gt: lowerBytes }) : {}),
          ...(upperBytes !== undefined ? (upperInclusive ? { lte: upperBytes } : { lt: upperBytes }) : {}),
          limit: 10,
        };
        const inRange = (key: Buffer): boolean =>
          (lowerBytes === undefined || (lowerInclusive ? Buffer.compare(key, lowerBytes) >= 0 : Buffer.compare(key, lowerBytes) > 0)) &&
          (upperBytes === undefined || (upperInclusive ? Buffer.compare(key, upperBytes) <= 0 : Buffer.compare(key, upperBytes) < 0));
        const allowed = code(() => requireRangeAllowed(principal, range)) === undefined;
        // Soundness: candidate keys (random ones, and ones around the prefix) in an allowed range all start with the prefix.
        const candidates = [...keys, prefix, Buffer.concat([prefix, extra]), ...(prefixUpperBound(prefix) ? [prefixUpperBound(prefix)!] : []), Buffer.alloc(0)];
        if (allowed) for (const key of candidates) if (inRange(key)) assert.ok(key.subarray(0, prefix.length).equals(prefix), `${key.toString('hex')} escapes ${prefix.toString('hex')}`);
        // Completeness for the common shape: [prefix+extra, prefixEnd) passes.
        const end = prefixUpperBound(prefix);
        if (end !== undefined) requireRangeAllowed(principal, { gte: Buffer.concat([prefix, extra]), lt: end, limit: 10 });
      }),
      { numRuns: 2000 },
    );
  });
});
