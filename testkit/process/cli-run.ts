/**
 * Runs the `impulse` binary to its exit, as a user's shell would, and hands
 * back its exit status and output: for tests of the CLI's conventions (exit
 * statuses, one-sentence errors, what it prints).
 */
import { spawn } from 'node:child_process';
import { CLI_PATH } from './server-process.js';

export interface CliRun {
  readonly code: number | null;
  /** Raw bytes: `get` prints values as they are. */
  readonly stdout: Buffer;
  readonly stderr: string;
}

export interface CliRunOptions {
  /** Written to stdin, which is then closed; without it stdin is closed at once. */
  readonly input?: string | Buffer;
  /** Added to this process's environment. */
  readonly env?: NodeJS.ProcessEnv;
}

export function runCli(args: readonly string[], options: CliRunOptions = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_PATH, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
    child.stdin.end(options.input);
  });
}
