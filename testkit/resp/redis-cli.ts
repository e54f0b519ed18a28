/**
 * Driving real impulse processes over RESP: the RESP port a server logged,
 * and redis-cli (Debian's redis-tools) run against it.
 */
import { execFile } from 'node:child_process';

/** The RESP port an `impulse serve` logged in its "listening" line. */
export function respPortOf(lines: readonly string[]): number {
  for (const line of lines) {
    const match = /"msg":"impulse is listening"/.test(line) ? /"resp":"[^"]*:(\d+)"/.exec(line) : null;
    if (match) return Number(match[1]);
  }
  throw new Error(`no RESP address in the output:\n${lines.join('\n')}`);
}

/** Runs redis-cli against `port` with `args` (and `input` on stdin); its stdout. */
export function redisCli(port: number, args: readonly string[], input?: Buffer | string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 30_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`redis-cli ${args.join(' ')}: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
    child.stdin!.end(input);
  });
}

