/**
 * Shared pieces of the benchmark scripts: the machine header, markdown
 * tables, and writing a script's section into docs/benchmarks.md between
 * `<!-- name:start -->` and `<!-- name:end -->` markers (other sections stay).
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function machineLine(): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  return `Machine: ${cpu}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB · Node ${process.version} · ${process.platform}/${process.arch} · ${date}`;
}

/** The 1-, 5- and 15-minute load averages, e.g. "load 3.1 / 2.4 / 1.9": printed at a run's start and end, since other work on a shared machine moves the numbers. */
export function loadLine(): string {
  return `load ${loadavg().map((value) => value.toFixed(1)).join(' / ')} on ${cpus().length} cores`;
}

export function table(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const lines = [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  return lines.join('\n');
}

export function formatNumber(value: number, digits = 0): string {
  return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export async function writeSection(name: string, markdown: string): Promise<void> {
  const path = `${REPO_ROOT}docs/benchmarks.md`;
  let document = await readFile(path, 'utf8').catch(() => '# Benchmarks\n');
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${start}\n${markdown.trim()}\n${end}`;
  const from = document.indexOf(start);
  const to = document.indexOf(end);
  document = from !== -1 && to > from ? document.slice(0, from) + block + document.slice(to + end.length) : `${document.trimEnd()}\n\n${block}\n`;
  await writeFile(path, document);
}

/** Prints a benchmark's markdown result and writes it to `path` (e.g. bench/results/<name>.md), creating the folder. */
export function printAndSave(path: string, markdown: string): void {
  console.log('\n' + markdown);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, markdown);
}

/** Parses a `--name value` flag from argv. */
export function flag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index !== -1 && process.argv[index + 1] !== undefined ? process.argv[index + 1]! : fallback;
}

/** The median of `values` (at least one). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** "median (min–max)" of one figure over several runs; the spread is left out for a single run. */
export function medianCell(values: readonly number[], show: (value: number) => string = (value) => formatNumber(value)): string {
  if (values.length === 1) return show(values[0]!);
  return `${show(median(values))} (${show(Math.min(...values))}–${show(Math.max(...values))})`;
}

/** CPU seconds (user + system) process `pid` has used so far, from /proc/<pid>/stat (Linux; NaN elsewhere). */
export async function processCpuSeconds(pid: number): Promise<number> {
  const { userSeconds, systemSeconds } = await processCpuTimes(pid);
  return userSeconds + systemSeconds;
}

/** CPU seconds process `pid` has used so far in user space and in the kernel, from /proc/<pid>/stat (Linux; NaN elsewhere). */
export async function processCpuTimes(pid: number): Promise<{ userSeconds: number; systemSeconds: number }> {
  try {
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    // utime and stime, in USER_HZ ticks (100 per second on every mainstream Linux build).
    return { userSeconds: Number(fields[11]) / 100, systemSeconds: Number(fields[12]) / 100 };
  } catch {
    return { userSeconds: Number.NaN, systemSeconds: Number.NaN };
  }
}
