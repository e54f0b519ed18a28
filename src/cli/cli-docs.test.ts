/**
 * docs/cli.md against the program: every flag of every command is documented,
 * and the exit status table is the program's (exit-codes.ts). The flags come
 * from the program itself (its generated completion script), so a new flag
 * without documentation fails here.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { CLI_PATH } from '../../testkit/process/server-process.js';
import { EXIT_CODE_MEANINGS } from './exit-codes.js';

const DOC = readFileSync(new URL('../../../docs/cli.md', import.meta.url), 'utf8');
/** Commander's own flags, documented by commander. */
const BUILT_IN = new Set(['--help', '--version', '-V']);

/** Each command path with its words (subcommands and flags), read from `impulse completion bash`. */
function programWords(): Map<string, string[]> {
  const script = execFileSync(process.execPath, [CLI_PATH, 'completion', 'bash'], { encoding: 'utf8' });
  const words = new Map<string, string[]>();
  for (const match of script.matchAll(/^ {4}"([^"]*)"\) candidates="([^"]*)" ;;$/gm)) words.set(match[1]!, match[2]!.split(' ').filter((word) => word !== ''));
  return words;
}

describe('docs/cli.md', () => {
  it('documents every flag of every command', () => {
    const words = programWords();
    assert.ok(words.has('serve') && words.has('scan') && words.has('member add'), 'the completion script lists the commands');
    const missing: string[] = [];
    for (const [path, candidates] of words) {
      for (const flag of candidates.filter((word) => word.startsWith('-') && !BUILT_IN.has(word))) {
        const documented = DOC.includes(flag.startsWith('--') ? `\`${flag}` : `\`${flag}\``);
        if (!documented) missing.push(`${path || 'impulse'} ${flag}`);
      }
    }
    assert.deepEqual(missing, [], 'flags the program takes but docs/cli.md does not name (as `--flag`)');
  });

  it('documents every command', () => {
    for (const [path] of programWords()) {
      if (path !== '') assert.ok(DOC.includes(`| \`${path}`), `command ${path} has a row in the command table`);
    }
  });

  it('has the exit status table of the program', () => {
    const rows = [...DOC.matchAll(/^\| (\d+) \| (.+) \|$/gm)].map((match) => [Number(match[1]), match[2]!.trim()] as const);
    assert.deepEqual(rows, EXIT_CODE_MEANINGS.map(([code, meaning]) => [code, meaning]));
  });
});
