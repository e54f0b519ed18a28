/**
 * The chaos reports the dashboard shows (`impulse serve --chaos-results DIR`).
 * A chaos run with `--out` writes summary.json, report.html, history.jsonl and
 * faults.jsonl into one directory; a results directory holds runs in its
 * subdirectories (`--out DIR/<run>`), or is one run itself (listed as `@`).
 *
 *   GET /ui/api/chaos                 {"dir", "runs": [...], "truncated"}: one line per run, newest name first
 *   GET /ui/chaos/{run}/{file}        one of the files above, as written
 *
 * Read-only, and bounded: at most `ENTRIES_SCANNED_MAX` directory entries are
 * looked at, `RUNS_LISTED_MAX` runs listed, a summary read up to 1 MiB, a file
 * served up to 16 MiB. A run whose summary does not parse is listed with the
 * reason rather than hidden. Reports are served with a sandboxing
 * Content-Security-Policy: they are documents, never code run on this origin.
 */
import { join } from 'node:path';
import { ImpulseError } from '../errors.js';
import type { Vfs } from '../vfs/vfs.js';

const ENTRIES_SCANNED_MAX = 1000;
const RUNS_LISTED_MAX = 100;
const SUMMARY_BYTES_MAX = 1024 * 1024;
const FILE_BYTES_MAX = 16 * 1024 * 1024;
/** The name under which the results directory itself is listed when it holds one run. */
export const ROOT_RUN = '@';
const RUN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

const RUN_FILES: Readonly<Record<string, string>> = {
  'report.html': 'text/html; charset=utf-8',
  'summary.json': 'application/json',
  'faults.jsonl': 'text/plain; charset=utf-8',
  'history.jsonl': 'text/plain; charset=utf-8',
};

export const REPORT_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/** One run as the dashboard lists it; fields are null when the summary lacks them. */
export interface ChaosRunLine {
  readonly name: string;
  /** Why the summary could not be read; the other fields are then null. */
  readonly problem: string | null;
  readonly valid: boolean | null;
  readonly seed: number | null;
  readonly workload: string | null;
  readonly nemesis: readonly string[];
  readonly nodes: number | null;
  readonly engine: string | null;
  readonly durationS: number | null;
  readonly checks: readonly { readonly name: string; readonly ok: boolean }[];
  readonly recoveryMs: number | null;
  readonly leaderChanges: number | null;
  /** Which of the run's files exist (report.html, ...). */
  readonly files: readonly string[];
}

export interface ChaosListing {
  /** The results directory, or null when the node was started without --chaos-results. */
  readonly dir: string | null;
  readonly runs: readonly ChaosRunLine[];
  /** More runs exist than were listed. */
  readonly truncated: boolean;
}

export class ChaosResults {
  constructor(
    private readonly vfs: Vfs,
    private readonly dir: string | undefined,
  ) {}

  async list(): Promise<ChaosListing> {
    if (this.dir === undefined) return { dir: null, runs: [], truncated: false };
    if (!(await this.vfs.exists(this.dir))) return { dir: this.dir, runs: [], truncated: false };
    const names: string[] = [];
    if (await this.vfs.exists(join(this.dir, 'summary.json'))) names.push(ROOT_RUN);
    const entries = (await this.vfs.list(this.dir)).slice(0, ENTRIES_SCANNED_MAX).filter((name) => RUN_NAME.test(name)).reverse();
    for (const name of entries) {
      if (await this.holdsRun(name)) names.push(name);
    }
    const runs: ChaosRunLine[] = [];
    for (const name of names.slice(0, RUNS_LISTED_MAX)) runs.push(await this.runLine(name));
    return { dir: this.dir, runs, truncated: names.length > RUNS_LISTED_MAX };
  }

  /** File `file` of run `run`, with its content type. ROUTE_NOT_FOUND for anything not listed. */
  async file(run: string, file: string): Promise<{ type: string; body: Buffer }> {
    const type = RUN_FILES[file];
    if (this.dir === undefined) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', 'this node was started without --chaos-results');
    if (type === undefined || (run !== ROOT_RUN && !RUN_NAME.test(run))) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', `no chaos file ${run}/${file}`);
    const path = join(this.runDir(run), file);
    if (!(await this.vfs.exists(path))) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', `chaos run ${run} has no ${file}`);
    const size = await this.vfs.size(path);
    if (size > FILE_BYTES_MAX) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', `${run}/${file} is ${size} bytes; the dashboard serves at most ${FILE_BYTES_MAX} (read it on the node)`);
    return { type, body: await this.vfs.readFile(path) };
  }

  /** Whether entry `name` is a run's directory; a plain file (e.g. the root run's own report.html) is not. */
  private async holdsRun(name: string): Promise<boolean> {
    try {
      return await this.vfs.exists(join(this.dir!, name, 'summary.json'));
    } catch {
      return false; // ENOTDIR: a file, not a directory
    }
  }

  private runDir(run: string): string {
    return run === ROOT_RUN ? this.dir! : join(this.dir!, run);
  }

  private async runLine(name: string): Promise<ChaosRunLine> {
    const dir = this.runDir(name);
    const files: string[] = [];
    for (const file of Object.keys(RUN_FILES)) if (await this.vfs.exists(join(dir, file))) files.push(file);
    const summaryPath = join(dir, 'summary.json');
    const size = await this.vfs.size(summaryPath);
    if (size > SUMMARY_BYTES_MAX) return emptyLine(name, files, `summary.json is ${size} bytes (more than ${SUMMARY_BYTES_MAX})`);
    let summary: unknown;
    try {
      summary = JSON.parse((await this.vfs.readFile(summaryPath)).toString('utf8'));
    } catch {
      return emptyLine(name, files, 'summary.json is not valid JSON');
    }
    if (typeof summary !== 'object' || summary === null) return emptyLine(name, files, 'summary.json is not an object');
    return summaryLine(name, files, summary as Record<string, unknown>);
  }
}

function emptyLine(name: string, files: readonly string[], problem: string): ChaosRunLine {
  return { name, problem, valid: null, seed: null, workload: null, nemesis: [], nodes: null, engine: null, durationS: null, checks: [], recoveryMs: null, leaderChanges: null, files };
}

/** The fields of a chaos summary.json (testkit/chaos/runner.ts, writeResults) that the listing shows; anything else is ignored. */
function summaryLine(name: string, files: readonly string[], summary: Record<string, unknown>): ChaosRunLine {
  const options = (typeof summary['options'] === 'object' && summary['options'] !== null ? summary['options'] : {}) as Record<string, unknown>;
  const checks = Array.isArray(summary['checks']) ? summary['checks'] : [];
  return {
    name,
    problem: null,
    valid: typeof summary['valid'] === 'boolean' ? summary['valid'] : null,
    seed: numberOrNull(options['seed']),
    workload: typeof options['workload'] === 'string' ? options['workload'] : null,
    nemesis: Array.isArray(options['nemesis']) ? options['nemesis'].filter((item): item is string => typeof item === 'string') : [],
    nodes: numberOrNull(options['nodes']),
    engine: typeof options['engine'] === 'string' ? options['engine'] : null,
    durationS: numberOrNull(options['durationS']),
    checks: checks.flatMap((check: unknown) => {
      const { name: checkName, ok } = (check ?? {}) as Record<string, unknown>;
      return typeof checkName === 'string' && typeof ok === 'boolean' ? [{ name: checkName, ok }] : [];
    }),
    recoveryMs: numberOrNull(summary['recoveryMs']),
    leaderChanges: Array.isArray(summary['leaderChanges']) ? summary['leaderChanges'].length : null,
    files,
  };
}

function numberOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}
