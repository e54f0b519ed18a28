/**
 * The self-contained HTML report of a chaos run: the verdict and every check
 * (with the keys and operations a failed one names), a chart of every
 * operation's latency over time coloured by outcome with the fault windows
 * shaded and leader changes marked, throughput per second, and each fault's
 * recovery. Static SVG drawn here — no script, no network, nothing to load —
 * so the file opens anywhere and a headless browser can check it
 * (report.test.ts).
 */
import type { CheckOutcome } from './checks.js';
import type { HistoryOp } from './history.js';
import type { FaultRecord } from './nemesis.js';
import type { LeaderChange } from './runner.js';

export interface ReportInput {
  readonly title: string;
  readonly options: object;
  readonly valid: boolean;
  readonly checks: readonly CheckOutcome[];
  readonly faults: readonly FaultRecord[];
  readonly leaderChanges: readonly LeaderChange[];
  readonly history: { readonly ops: readonly HistoryOp[] };
  readonly recoveryMs: number | undefined;
  readonly healedAtS?: number;
  readonly networkStats: Record<string, number>;
}

/** Points drawn at most (an evenly spaced sample beyond). */
const POINTS_MAX = 20_000;
const WIDTH = 1100;
const HEIGHT = 320;
const MARGIN = { left: 60, right: 20, top: 20, bottom: 40 };
const COLOURS = { ok: '#2e7d32', fail: '#c62828', unknown: '#f9a825' } as const;

export function renderReport(input: ReportInput): string {
  const ops = input.history.ops;
  const endS = Math.max(1, ...ops.map((op) => op.ret ?? op.call), ...input.faults.map((fault) => fault.endS ?? fault.startS));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(input.title)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
.verdict{font-size:22px;font-weight:700;padding:10px 14px;border-radius:6px;display:inline-block}
.valid{background:#e8f5e9;color:#1b5e20}.invalid{background:#ffebee;color:#b71c1c}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
pre{margin:0;white-space:pre-wrap;font-size:12px}.legend span{margin-right:14px}
</style></head><body>
<h1>${escape(input.title)}</h1>
<p class="verdict ${input.valid ? 'valid' : 'invalid'}" id="verdict">${input.valid ? 'VALID: every check holds' : 'INVALID: a check failed'}</p>
<h2>Checks</h2>
${checksTable(input.checks)}
<h2>Latency of every operation</h2>
<p class="legend"><span style="color:${COLOURS.ok}">● ok</span><span style="color:${COLOURS.fail}">● fail</span><span style="color:${COLOURS.unknown}">● unknown (drawn at the timeout)</span><span style="color:#7e57c2">| leader change</span><span style="background:#fde0dc">&nbsp;fault window&nbsp;</span></p>
${latencyChart(ops, input.faults, input.leaderChanges, endS, input.healedAtS)}
<h2>Throughput per second</h2>
${throughputChart(ops, input.faults, endS)}
<h2>Faults and recovery</h2>
${faultTable(ops, input.faults)}
<p>Recovery after the final heal: ${input.recoveryMs === undefined ? 'no write succeeded' : `${Math.round(input.recoveryMs)} ms to the first acknowledged write`}.</p>
<h2>Run</h2>
<pre>${escape(JSON.stringify({ ...input.options, operations: ops.length, network: input.networkStats }, null, 2))}</pre>
</body></html>
`;
}

function checksTable(checks: readonly CheckOutcome[]): string {
  const rows = checks.map((check) => `<tr><td>${check.ok ? '✔' : '✘'} ${escape(check.name)}</td><td>${escape(check.summary)}${check.details.length > 0 ? `<pre>${escape(check.details.join('\n'))}</pre>` : ''}</td></tr>`);
  return `<table id="checks"><tr><th>check</th><th>result</th></tr>${rows.join('')}</table>`;
}

function scales(endS: number, maxY: number): { x: (s: number) => number; y: (v: number) => number } {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  return { x: (s) => MARGIN.left + (s / endS) * plotW, y: (v) => MARGIN.top + plotH - (Math.min(v, maxY) / maxY) * plotH };
}

function axes(endS: number, maxY: number, unit: string, scale: ReturnType<typeof scales>): string {
  const parts: string[] = [];
  const stepS = endS > 120 ? 30 : endS > 30 ? 10 : 5;
  for (let s = 0; s <= endS; s += stepS) parts.push(`<line x1="${scale.x(s)}" x2="${scale.x(s)}" y1="${MARGIN.top}" y2="${HEIGHT - MARGIN.bottom}" stroke="#eee"/><text x="${scale.x(s)}" y="${HEIGHT - MARGIN.bottom + 16}" font-size="11" text-anchor="middle">${s}s</text>`);
  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const value = maxY * fraction;
    parts.push(`<text x="${MARGIN.left - 6}" y="${scale.y(value) + 4}" font-size="11" text-anchor="end">${round(value)}${unit}</text>`);
  }
  parts.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${WIDTH - MARGIN.left - MARGIN.right}" height="${HEIGHT - MARGIN.top - MARGIN.bottom}" fill="none" stroke="#999"/>`);
  return parts.join('');
}

function faultWindows(faults: readonly FaultRecord[], endS: number, scale: ReturnType<typeof scales>): string {
  return faults
    .map((fault) => {
      const x1 = scale.x(fault.startS);
      const x2 = scale.x(fault.endS ?? endS);
      return `<rect class="fault-window" x="${x1}" y="${MARGIN.top}" width="${Math.max(1, x2 - x1)}" height="${HEIGHT - MARGIN.top - MARGIN.bottom}" fill="#fde0dc" opacity="0.7"><title>#${fault.id} ${escape(fault.description)} → ${fault.targets.join(',')}</title></rect><text x="${x1 + 2}" y="${MARGIN.top + 12}" font-size="10">#${fault.id}</text>`;
    })
    .join('');
}

function latencyChart(ops: readonly HistoryOp[], faults: readonly FaultRecord[], leaders: readonly LeaderChange[], endS: number, healedAtS: number | undefined): string {
  const latencies = ops.filter((op) => op.ret !== null).map((op) => (op.ret! - op.call) * 1000);
  const maxY = Math.max(10, quantile(latencies, 0.999) * 1.1);
  const scale = scales(endS, maxY);
  const step = Math.max(1, Math.ceil(ops.length / POINTS_MAX));
  const points: string[] = [];
  for (let i = 0; i < ops.length; i += step) {
    const op = ops[i]!;
    const latencyMs = op.ret === null ? maxY : (op.ret - op.call) * 1000;
    points.push(`<circle cx="${scale.x(op.call).toFixed(1)}" cy="${scale.y(latencyMs).toFixed(1)}" r="1.8" fill="${COLOURS[op.status]}"/>`);
  }
  const leaderMarks = leaders
    .map((change) => `<line class="leader-change" x1="${scale.x(change.atS)}" x2="${scale.x(change.atS)}" y1="${MARGIN.top}" y2="${HEIGHT - MARGIN.bottom}" stroke="#7e57c2" stroke-dasharray="3,2"><title>leader ${change.leader ?? 'none'} at ${change.atS}s</title></line><text x="${scale.x(change.atS) + 2}" y="${HEIGHT - MARGIN.bottom - 4}" font-size="10" fill="#7e57c2">${change.leader ?? '–'}</text>`)
    .join('');
  const heal = healedAtS === undefined ? '' : `<line x1="${scale.x(healedAtS)}" x2="${scale.x(healedAtS)}" y1="${MARGIN.top}" y2="${HEIGHT - MARGIN.bottom}" stroke="#1565c0" stroke-width="2"><title>final heal at ${healedAtS}s; then recovery, final reads</title></line><text x="${scale.x(healedAtS) + 3}" y="${MARGIN.top + 24}" font-size="10" fill="#1565c0">final heal</text>`;
  return `<svg id="latency-chart" width="${WIDTH}" height="${HEIGHT}" xmlns="http://www.w3.org/2000/svg">${faultWindows(faults, endS, scale)}${axes(endS, maxY, 'ms', scale)}${leaderMarks}${heal}<g class="ops">${points.join('')}</g></svg>`;
}

function throughputChart(ops: readonly HistoryOp[], faults: readonly FaultRecord[], endS: number): string {
  const seconds = Math.ceil(endS);
  const counts = Array.from({ length: seconds + 1 }, () => ({ ok: 0, fail: 0, unknown: 0 }));
  for (const op of ops) counts[Math.min(seconds, Math.floor(op.ret ?? op.call))]![op.status]++;
  const maxY = Math.max(1, ...counts.map((count) => count.ok + count.fail + count.unknown));
  const scale = scales(endS, maxY);
  const width = Math.max(1, scale.x(1) - scale.x(0) - 1);
  const bars = counts.flatMap((count, second) => {
    let base = 0;
    return (['ok', 'unknown', 'fail'] as const).map((status) => {
      const top = base + count[status];
      const bar = `<rect x="${scale.x(second).toFixed(1)}" y="${scale.y(top).toFixed(1)}" width="${width.toFixed(1)}" height="${(scale.y(base) - scale.y(top)).toFixed(1)}" fill="${COLOURS[status]}"><title>${second}s: ${count[status]} ${status}</title></rect>`;
      base = top;
      return bar;
    });
  });
  return `<svg id="throughput-chart" width="${WIDTH}" height="${HEIGHT}" xmlns="http://www.w3.org/2000/svg">${faultWindows(faults, endS, scale)}${axes(endS, maxY, '/s', scale)}${bars.join('')}</svg>`;
}

const WRITES = new Set(['put', 'cas', 'del', 'add', 'transfer']);

/** Seconds from `fromS` to the first acknowledged write that completed after it. */
export function firstWriteAfter(ops: readonly HistoryOp[], fromS: number): number | undefined {
  let best: number | undefined;
  for (const op of ops) if (WRITES.has(op.op) && op.status === 'ok' && op.ret !== null && op.ret >= fromS && (best === undefined || op.ret < best)) best = op.ret;
  return best === undefined ? undefined : best - fromS;
}

function faultTable(ops: readonly HistoryOp[], faults: readonly FaultRecord[]): string {
  const rows = faults.map((fault) => {
    const afterStart = firstWriteAfter(ops, fault.startS);
    const afterHeal = fault.endS === undefined ? undefined : firstWriteAfter(ops, fault.endS);
    const seconds = (value: number | undefined): string => (value === undefined ? '—' : `${value.toFixed(2)} s`);
    return `<tr><td>#${fault.id}</td><td>${escape(fault.description)}</td><td>${fault.targets.join(', ')}</td><td>${fault.startS.toFixed(1)}–${fault.endS?.toFixed(1) ?? '?'} s</td><td>${seconds(afterStart)}</td><td>${seconds(afterHeal)}</td><td>${escape(fault.notes.join('; '))}</td></tr>`;
  });
  return `<table id="faults"><tr><th>#</th><th>fault</th><th>members</th><th>window</th><th>first ack'd write after it began</th><th>after its heal</th><th>notes</th></tr>${rows.join('')}</table>`;
}

function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function round(value: number): string {
  return value >= 100 ? String(Math.round(value)) : value.toFixed(1);
}

function escape(text: string): string {
  return text.replace(/[&<>"]/g, (character) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[character]!);
}
