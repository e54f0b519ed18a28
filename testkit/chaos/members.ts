/**
 * The member processes of a chaos run: `impulse serve --node-id ...` children,
 * each in its own process group, with standard input kept as a pipe for the
 * test-only control channel (clock and disk faults). Only processes started
 * here are ever signalled, by process group; a kill waits until the process is
 * gone (a kill -9'd child lingers as a zombie until reaped).
 *
 * Slots: the run's members by position (0..n-1, the schedule's indexes), plus
 * spare slots with ports and proxies of their own for members that replace a
 * removed one (a removed node id is never reused: Raft remembers it).
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI_PATH } from '../process/server-process.js';
import { killGroupAndWait, reapOnExit, signalGroup, untilListening } from '../process/member-process.js';

export interface MemberSpec {
  readonly id: number;
  /** Where it listens and is reached (127.0.0.1, or a namespace's address). */
  readonly host: string;
  readonly clientPort: number;
  readonly peerPort: number;
}

/** Runs a command for member `id` (plain spawn, or inside its network namespace). */
export type Spawner = (id: number, command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;

interface Running {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  paused: boolean;
}

const OUTPUT_LINES_KEPT = 2000;

export class MemberProcesses {
  private readonly running = new Map<number, Running>();
  private readonly outputs = new Map<number, string[]>();

  constructor(
    readonly root: string,
    private readonly spawner: Spawner = (_id, command, args, options) => spawn(command, args, options),
    private readonly startTimeoutMs = 30_000,
  ) {}

  dataDir(id: number): string {
    return join(this.root, `node-${id}`);
  }

  isRunning(id: number): boolean {
    return this.running.has(id);
  }

  isPaused(id: number): boolean {
    return this.running.get(id)?.paused ?? false;
  }

  /** The last lines member `id` wrote (for failure messages). */
  output(id: number): string {
    return (this.outputs.get(id) ?? []).join('\n');
  }

  /** Starts `impulse serve <args>` for member `id`; resolves once it listens (its "impulse is listening" line, logged at info). */
  async start(id: number, args: readonly string[]): Promise<void> {
    if (this.running.has(id)) throw new Error(`member ${id} is running`);
    const child = this.spawner(id, process.execPath, [CLI_PATH, 'serve', ...args], { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin!.on('error', () => undefined); // a dead member's pipe
    reapOnExit(child);
    // One log per member across its restarts (bounded), so a run's results show what each incarnation said.
    const output = this.outputs.get(id) ?? [];
    this.outputs.set(id, output);
    output.push(`---- started with: ${args.join(' ')}`);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const running: Running = { child, exited, paused: false };
    this.running.set(id, running);
    void exited.then(() => {
      if (this.running.get(id) === running) this.running.delete(id);
    });
    await untilListening(child, exited, output, `member ${id}`, this.startTimeoutMs, OUTPUT_LINES_KEPT).catch(async (error: unknown) => {
      await this.kill(id);
      throw error;
    });
  }

  /** Sends `signal` to member `id`'s process group (nothing if it is not running). */
  signal(id: number, signal: NodeJS.Signals): void {
    const running = this.running.get(id);
    if (running === undefined || !signalGroup(running.child.pid, signal)) return;
    if (signal === 'SIGSTOP') running.paused = true;
    if (signal === 'SIGCONT') running.paused = false;
  }

  /** kill -9; resolves once the process has exited. */
  async kill(id: number): Promise<void> {
    const running = this.running.get(id);
    if (running === undefined) return;
    running.paused = false;
    await killGroupAndWait(running.child.pid, running.exited);
  }

  /** Writes one test-control command (src/test-hooks/control.ts) to member `id`'s stdin; false if it is not running. */
  control(id: number, command: unknown): boolean {
    const stdin = this.running.get(id)?.child.stdin;
    if (stdin === undefined || stdin === null || stdin.destroyed) return false;
    stdin.write(JSON.stringify(command) + '\n');
    return true;
  }

  /** Removes member `id`'s data directory (it must not be running). */
  async wipe(id: number): Promise<void> {
    if (this.running.has(id)) throw new Error(`member ${id} is running`);
    await rm(this.dataDir(id), { recursive: true, force: true });
  }

  /** Kills every member started here. */
  async killAll(): Promise<void> {
    await Promise.all([...this.running.keys()].map((id) => this.kill(id)));
  }

  /** Every member that ever ran here, with its last output lines. */
  logs(): Map<number, string> {
    return new Map([...this.outputs].map(([id, lines]) => [id, lines.join('\n') + '\n']));
  }

  get runningIds(): number[] {
    return [...this.running.keys()].sort((a, b) => a - b);
  }
}
