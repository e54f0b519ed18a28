import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type ParsedCommand, ProtocolError, RequestParser, type ParserLimits, splitInline } from './parser.js';

const LIMITS: ParserLimits = { argsMax: 64, argBytesMax: 1000, commandBytesMax: 4000, inlineBytesMax: 256, bulkBytesProtocolMax: 1 << 20 };

function multibulk(args: readonly Buffer[]): Buffer {
  return Buffer.concat([Buffer.from(`*${args.length}\r\n`), ...args.flatMap((arg) => [Buffer.from(`$${arg.length}\r\n`), arg, Buffer.from('\r\n')])]);
}

/** Feeds `chunks` one by one and takes every command after each; stops at a protocol error. */
function parseAll(chunks: readonly Buffer[], limits: ParserLimits = LIMITS): (ParsedCommand | ProtocolError)[] {
  const parser = new RequestParser(limits);
  const out: (ParsedCommand | ProtocolError)[] = [];
  for (const chunk of chunks) {
    parser.feed(chunk);
    for (let next = parser.next(); next !== undefined; next = parser.next()) {
      out.push(next);
      if (next instanceof ProtocolError) return out;
    }
  }
  return out;
}

/** Splits `bytes` at the given cut points. */
function cut(bytes: Buffer, points: readonly number[]): Buffer[] {
  const sorted = [...new Set(points.map((point) => point % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const point of sorted) {
    chunks.push(bytes.subarray(from, point));
    from = point;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

const arg = fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes));
const command = fc.array(arg, { minLength: 1, maxLength: 6 });

describe('RESP request parser', () => {
  it('returns every pipelined command, bytes intact, however the stream is cut (property)', () => {
    fc.assert(
      fc.property(fc.array(command, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 30 }), (commands, points) => {
        const stream = Buffer.concat(commands.map(multibulk));
        const parsed = parseAll(cut(stream, points));
        assert.deepEqual(
          parsed.map((item) => (item as ParsedCommand).args),
          commands,
        );
        assert.ok(parsed.every((item) => !(item instanceof ProtocolError) && item.tooLargeBytes === undefined));
      }),
      { numRuns: 300 },
    );
  });

  it('reads inline commands with quoting as Redis does, and skips empty lines', () => {
    const parsed = parseAll([Buffer.from('SET k "a b\\x41\\n" \r\n\r\nGET \'it\\\'s\'\nPING\r\n')]);
    assert.deepEqual(parsed.map((item) => (item as ParsedCommand).args.map(String)), [['SET', 'k', 'a bA\n'], ['GET', "it's"], ['PING']]);
    assert.equal(splitInline(Buffer.from('set "unbalanced')), undefined);
    assert.equal(splitInline(Buffer.from('set "a"b')), undefined, 'a closing quote must be followed by a space');
  });

  it('skips an argument over the limit without storing it, flags the command, and goes on with the next', () => {
    const big = Buffer.alloc(5000, 0x61);
    const stream = Buffer.concat([multibulk([Buffer.from('SET'), Buffer.from('k'), big]), multibulk([Buffer.from('GET'), Buffer.from('k')])]);
    const parser = new RequestParser(LIMITS);
    const seen: ParsedCommand[] = [];
    let bufferedMax = 0;
    for (const chunk of cut(stream, Array.from({ length: 40 }, (_, i) => i * 131))) {
      parser.feed(chunk);
      bufferedMax = Math.max(bufferedMax, parser.bufferedBytes);
      for (let next = parser.next(); next !== undefined; next = parser.next()) seen.push(next as ParsedCommand);
    }
    assert.equal(seen.length, 2);
    assert.equal(seen[0]!.tooLargeBytes, 3 + 1 + 5000, 'every argument byte the command declared');
    assert.deepEqual(seen[1]!.args.map(String), ['GET', 'k']);
    assert.ok(bufferedMax < 1000, `held ${bufferedMax} bytes for a skipped argument`);
  });

  it('refuses a command whose arguments together pass the command limit', () => {
    const args = [Buffer.from('MSET'), ...Array.from({ length: 10 }, () => Buffer.alloc(900))];
    const [parsed] = parseAll([multibulk(args)]);
    assert.ok((parsed as ParsedCommand).tooLargeBytes! > LIMITS.commandBytesMax);
  });

  it('answers malformed framing with Redis\'s protocol errors, after the commands before it', () => {
    const cases: [string, string][] = [
      ['*1\r\n+PING\r\n', "Protocol error: expected '$', got '+'"],
      ['*x\r\n', 'Protocol error: invalid multibulk length'],
      ['*65\r\n', 'Protocol error: invalid multibulk length'],
      ['*1\r\n$-5\r\n', 'Protocol error: invalid bulk length'],
      ['*1\r\n$2000000\r\n', 'Protocol error: invalid bulk length'],
      ['*1\r\n$4\r\nPINGxx', 'Protocol error: invalid bulk format'],
      ['"unbalanced\r\n', 'Protocol error: unbalanced quotes in request'],
      ['x'.repeat(300), 'Protocol error: too big inline request'],
      ['*1\r\n$' + '1'.repeat(300), 'Protocol error: too big bulk count string'],
    ];
    for (const [bad, message] of cases) {
      const parsed = parseAll([Buffer.from('*1\r\n$4\r\nPING\r\n'), Buffer.from(bad)]);
      assert.deepEqual((parsed[0] as ParsedCommand).args.map(String), ['PING'], bad);
      assert.ok(parsed[1] instanceof ProtocolError, `${JSON.stringify(bad)} gave ${JSON.stringify(parsed[1])}`);
      assert.equal(parsed[1].message, message);
    }
  });

  it('ignores *0 and *-1 as Redis does', () => {
    const parsed = parseAll([Buffer.from('*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n')]);
    assert.equal(parsed.length, 1);
  });
});
