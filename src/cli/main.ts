#!/usr/bin/env node
/**
 * `impulse`: the one binary. `serve` runs a node; `put`, `get`, `del`, `scan`
 * and `status` are clients of a running node (`--endpoint`). Every failure
 * prints one sentence to stderr and exits non-zero (2 for bad usage or config).
 */
import { Command, Option } from 'commander';
import { ImpulseClient } from '../client/client.js';
import { isImpulseError } from '../errors.js';
import { ENGINE_NAMES } from '../storage/registry.js';
import { VERSION } from '../version.js';
import { DEFAULT_ENGINE, DEFAULT_HOST, DEFAULT_PORT, type ServeFlags, parseServeConfig } from './config.js';
import { serve } from './serve.js';

const program = new Command();
program.name('impulse').description('impulse: a distributed key-value store').version(VERSION).showHelpAfterError();

program
  .command('serve')
  .description('run one impulse node')
  .option('--port <port>', 'TCP port', String(DEFAULT_PORT))
  .option('--host <host>', 'address to listen on', DEFAULT_HOST)
  .addOption(new Option('--engine <engine>', 'storage engine').choices(ENGINE_NAMES).default(DEFAULT_ENGINE))
  .option('--data-dir <dir>', 'data directory (the engine uses <dir>/<engine>)', 'data')
  .addOption(new Option('--sync <mode>', 'fsync: acknowledged writes are on disk; none: left to the OS').choices(['fsync', 'none']).default('fsync'))
  .option('--key-bytes-max <bytes>', 'longest key', '4096')
  .option('--value-bytes-max <bytes>', 'longest value', String(16 * 1024 * 1024))
  .option('--batch-ops-max <count>', 'most operations in one batch', '10000')
  .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', 'info')
  .action(async (flags: ServeFlags) => {
    await serve(parseServeConfig(flags));
  });

function client(): ImpulseClient {
  const options = program.opts<{ endpoint: string; timeout: string }>();
  const timeoutMs = Number(options.timeout);
  return new ImpulseClient({ endpoint: options.endpoint, timeoutMs: Number.isFinite(timeoutMs) && timeoutMs > 0 ? timeoutMs : 10_000 });
}

program
  .option('--endpoint <url>', 'server for client commands (env IMPULSE_ENDPOINT)', process.env['IMPULSE_ENDPOINT'] ?? `http://${DEFAULT_HOST}:${DEFAULT_PORT}`)
  .option('--timeout <ms>', 'client request timeout in milliseconds', '10000');

program
  .command('put')
  .description('store a value under a key (value from the argument, or stdin when omitted)')
  .argument('<key>')
  .argument('[value]')
  .action(async (key: string, value: string | undefined) => {
    const c = client();
    try {
      await c.put(key, value ?? (await readStdin()));
    } finally {
      c.close();
    }
  });

program
  .command('get')
  .description('print the value stored under a key (raw bytes to stdout)')
  .argument('<key>')
  .action(async (key: string) => {
    const c = client();
    try {
      const value = await c.get(key);
      if (value === undefined) {
        process.stderr.write(`impulse: key ${JSON.stringify(key)} not found\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(value);
      if (process.stdout.isTTY) process.stdout.write('\n');
    } finally {
      c.close();
    }
  });

program
  .command('del')
  .description('delete a key (succeeds when it is absent too)')
  .argument('<key>')
  .action(async (key: string) => {
    const c = client();
    try {
      await c.del(key);
    } finally {
      c.close();
    }
  });

program
  .command('scan')
  .description('list keys in order, one "key<TAB>value" line each (binary shown as base64:...)')
  .option('--start <key>', 'first key (inclusive)')
  .option('--end <key>', 'stop before this key (exclusive)')
  .option('--prefix <prefix>', 'only keys with this prefix')
  .option('--limit <n>', 'most entries to print', '100')
  .option('--reverse', 'descending order')
  .option('--json', 'one JSON object per line')
  .action(async (flags: { start?: string; end?: string; prefix?: string; limit: string; reverse?: boolean; json?: boolean }) => {
    const entriesMax = Number(flags.limit);
    if (!Number.isSafeInteger(entriesMax) || entriesMax < 1) throw new UsageError('--limit must be a positive integer');
    const c = client();
    try {
      const scanOptions = {
        ...(flags.start !== undefined ? { start: flags.start } : {}),
        ...(flags.end !== undefined ? { end: flags.end } : {}),
        ...(flags.prefix !== undefined ? { prefix: flags.prefix } : {}),
        ...(flags.reverse ? { reverse: true } : {}),
        limit: Math.min(entriesMax, 1000),
      };
      for await (const { key, value } of c.scanAll(scanOptions, entriesMax)) {
        process.stdout.write(flags.json ? JSON.stringify({ key: show(key), value: show(value) }) + '\n' : `${show(key)}\t${show(value)}\n`);
      }
    } finally {
      c.close();
    }
  });

program
  .command('status')
  .description("print the server's status as JSON")
  .action(async () => {
    const c = client();
    try {
      process.stdout.write(JSON.stringify(await c.status(), null, 2) + '\n');
    } finally {
      c.close();
    }
  });

class UsageError extends Error {}

function show(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) && !/[\t\n\r]/.test(text) ? text : `base64:${bytes.toString('base64')}`;
}

async function readStdin(): Promise<Buffer> {
  if (process.stdin.isTTY) throw new UsageError('give a value argument, or pipe the value on stdin');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`impulse: ${error.message}\n`);
    process.exit(2);
  }
  if (isImpulseError(error)) {
    process.stderr.write(`impulse: ${error.message}\n`);
    process.exit(error.code === 'IMPULSE_ERR_CONFIG_INVALID' ? 2 : 1);
  }
  const code = (error as { code?: string }).code;
  if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    process.stderr.write(`impulse: cannot listen: ${(error as Error).message}\n`);
    process.exit(1);
  }
  process.stderr.write(`impulse: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
});
