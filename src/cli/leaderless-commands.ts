/**
 * The client commands of leaderless mode (docs/leaderless.md):
 *
 *   impulse versions get <key> [--r R]                       every sibling value, one per line; exit 4 when none
 *   impulse versions put <key> [value] [--context C] [--w W]  supersedes exactly what C saw; prints OK
 *   impulse versions del <key> [--context C] [--w W]          a tombstone; prints OK
 *   impulse repair                                           anti-entropy of the node with every other member
 *
 * In text the causal context goes to stderr (`context c1....`), so stdout
 * stays the values; with `-o json` everything is one JSON line on stdout.
 */
import type { Command } from 'commander';
import { type ClientContext, readStdinValue, withClient } from './client-commands.js';
import { EXIT } from './exit-codes.js';
import { bytesArgument, printJson, show } from './output.js';

export function registerLeaderlessCommands(program: Command, context: ClientContext): void {
  const versions = program.command('versions').description('leaderless mode: every sibling of a key, and writes that supersede exactly what a read returned');
  versions
    .command('get')
    .description('every sibling value of a key, one per line (exit 4 when none); the causal context to stderr')
    .argument('<key>', 'the key (base64:... for binary keys)')
    .option('--r <r>', 'replicas to read from: a number, one, quorum or all')
    .action(async (key: string, flags: { r?: string }) => {
      const keyBytes = bytesArgument(key);
      const read = await withClient(context, (c) => c.getVersions(keyBytes, flags.r !== undefined ? { r: flags.r } : {}));
      if (context.format() === 'json') printJson({ key: show(keyBytes), values: read.values.map(show), context: read.context });
      else {
        process.stderr.write(`context ${read.context}\n`);
        for (const value of read.values) process.stdout.write(`${show(value)}\n`);
      }
      if (read.values.length === 0) {
        if (context.format() !== 'json') process.stderr.write(`impulse: key ${JSON.stringify(show(keyBytes))} not found\n`);
        process.exitCode = EXIT.notFound;
      }
    });
  for (const name of ['put', 'del'] as const) {
    const command = versions
      .command(name)
      .description(name === 'put' ? 'store a value (argument or stdin) superseding exactly what --context saw (none: kept beside what is there); prints OK' : 'delete a key (a tombstone) superseding exactly what --context saw; prints OK')
      .argument('<key>', 'the key (base64:... for binary keys)');
    if (name === 'put') command.argument('[value]', 'the value; omitted: read from stdin');
    command
      .option('--context <context>', 'the context `impulse versions get` printed')
      .option('--w <w>', 'replicas that must acknowledge: a number, one, quorum or all')
      .action(async (key: string, ...rest: unknown[]) => {
        const flags = rest[name === 'put' ? 1 : 0] as { context?: string; w?: string };
        const options = { ...(flags.context !== undefined ? { context: flags.context } : {}), ...(flags.w !== undefined ? { w: flags.w } : {}) };
        const keyBytes = bytesArgument(key);
        const value = name === 'put' ? ((rest[0] as string | undefined) !== undefined ? Buffer.from(rest[0] as string, 'utf8') : await readStdinValue(false)) : undefined;
        const written = await withClient(context, (c) => (value !== undefined ? c.putVersion(keyBytes, value, options) : c.deleteVersion(keyBytes, options)));
        if (context.format() === 'json') printJson({ ok: true, context: written.context });
        else {
          process.stdout.write('OK\n');
          process.stderr.write(`context ${written.context}\n`);
        }
      });
  }
  program
    .command('repair')
    .description('leaderless mode: anti-entropy of the node at --endpoint with every other member now; prints what each exchange moved')
    .action(async () => {
      const report = await withClient(context, (c) => c.repair());
      process.stdout.write((context.format() === 'json' ? JSON.stringify(report) : JSON.stringify(report, null, 2)) + '\n');
    });
}
