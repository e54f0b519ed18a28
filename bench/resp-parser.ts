/**
 * The RESP request parser: impulse's hand-written one (src/resp/parser.ts)
 * against npm's `redis-parser` (node-redis's and ioredis's reply parser, which
 * reads the same multibulk framing), on the bytes redis-benchmark sends: SET
 * and GET commands, delivered in 64 KiB chunks and as one command per read.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/resp-parser.js [--commands 200000] [--runs 3]
 *
 * Prints commands per second, median of the runs, with the spread, and writes
 * the table to docs/benchmarks.md (section "resp-parser").
 */
import { createRequire } from 'node:module';
import { RequestParser } from '../src/resp/parser.js';
import { flag, formatNumber, machineLine, table, writeSection } from './report.js';

interface RedisParserOptions {
  returnReply(reply: unknown): void;
  returnError(error: Error): void;
  returnBuffers?: boolean;
}
interface RedisParser {
  execute(chunk: Buffer): void;
}
const RedisParserClass = createRequire(import.meta.url)('redis-parser') as new (options: RedisParserOptions) => RedisParser;

const commands = Number(flag('commands', '200000'));
const runs = Number(flag('runs', '3'));

function multibulk(args: readonly string[]): Buffer {
  return Buffer.from(`*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`);
}

function stream(): Buffer[] {
  const one = Array.from({ length: commands }, (_, i) => (i % 2 === 0 ? multibulk(['SET', `key:${String(i).padStart(12, '0')}`, 'xxx']) : multibulk(['GET', `key:${String(i).padStart(12, '0')}`])));
  return one;
}

function chunked(pieces: readonly Buffer[], bytes: number): Buffer[] {
  const all = Buffer.concat(pieces);
  const chunks: Buffer[] = [];
  for (let at = 0; at < all.length; at += bytes) chunks.push(all.subarray(at, at + bytes));
  return chunks;
}

function handWritten(chunks: readonly Buffer[]): number {
  const parser = new RequestParser({ argsMax: 1 << 20, argBytesMax: 16 << 20, commandBytesMax: 64 << 20, inlineBytesMax: 64 << 10, bulkBytesProtocolMax: 512 << 20 });
  let count = 0;
  for (const chunk of chunks) {
    parser.feed(chunk);
    while (parser.next() !== undefined) count++;
  }
  return count;
}

function npmParser(chunks: readonly Buffer[]): number {
  let count = 0;
  const parser = new RedisParserClass({ returnReply: () => count++, returnError: (error) => { throw error; }, returnBuffers: true });
  for (const chunk of chunks) parser.execute(chunk);
  return count;
}

function measure(run: (chunks: readonly Buffer[]) => number, chunks: readonly Buffer[]): number {
  const started = performance.now();
  const parsed = run(chunks);
  const seconds = (performance.now() - started) / 1000;
  if (parsed !== commands) throw new Error(`parsed ${parsed} of ${commands} commands`);
  return commands / seconds;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const pieces = stream();
const shapes: [string, Buffer[]][] = [
  ['64 KiB reads (pipelined)', chunked(pieces, 64 * 1024)],
  ['one command per read', pieces],
];
const rows: string[][] = [];
for (const [shape, chunks] of shapes) {
  for (const [name, run] of [['impulse (hand-written)', handWritten], ['redis-parser 3.0.0 (npm)', npmParser]] as const) {
    measure(run, chunks); // warm-up
    const results = Array.from({ length: runs }, () => measure(run, chunks));
    rows.push([shape, name, formatNumber(median(results)), `${formatNumber(Math.min(...results))} – ${formatNumber(Math.max(...results))}`]);
  }
}
const markdown = [
  `## RESP request parser (\`node dist/bench/resp-parser.js\`)`,
  '',
  machineLine(),
  '',
  `${formatNumber(commands)} commands (SET and GET alternating, 16-byte keys, as redis-benchmark sends them), parsed in memory; median of ${runs} runs after a warm-up, with the range. Shared machine.`,
  '',
  table(['input', 'parser', 'commands/s (median)', 'range'], rows),
].join('\n');
console.log(markdown);
await writeSection('resp-parser', markdown);
