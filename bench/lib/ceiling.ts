/**
 * Starting the ceiling server (bench/ceiling-server.ts) from a benchmark
 * script: a bare node:http (or node:https) server holding a Map, in its own
 * process, on a free port of 127.0.0.1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface CeilingProcess {
  readonly url: string;
  readonly pid: number;
  /** SIGTERM, then waits until the process has exited. */
  stop(): Promise<void>;
}

export interface CeilingOptions {
  /** 'node-http' (default) or 'fastify'. */
  readonly framework?: string;
  /** Serve HTTPS with this certificate and key (files). */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  /** Keys key0..key<n-1> stored before it listens. */
  readonly preload?: number;
}

export async function startCeiling(options: CeilingOptions = {}): Promise<CeilingProcess> {
  const script = fileURLToPath(new URL('../ceiling-server.js', import.meta.url));
  const args = [script, '--framework', options.framework ?? 'node-http'];
  if (options.tls !== undefined) args.push('--tls-cert', options.tls.certFile, '--tls-key', options.tls.keyFile);
  if (options.preload !== undefined) args.push('--preload', String(options.preload));
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      const match = /listening (\d+)/.exec(chunk.toString());
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`ceiling server exited ${code}`)));
  });
  return {
    url: `${options.tls !== undefined ? 'https' : 'http'}://127.0.0.1:${port}`,
    pid: child.pid!,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
