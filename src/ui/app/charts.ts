/** Live charts (uPlot): requests per second and p99 latency of key-value requests, one line per member. */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { html } from './html.js';
import type { RequestSeries } from './poller.js';

const COLOURS = ['#2457c5', '#c62828', '#1a7f37', '#a15c00', '#7b1fa2', '#00838f', '#5d4037', '#455a64', '#ad1457'];

export function ChartsPanel({ series, memberIds, version }: { series: RequestSeries; memberIds: readonly number[]; version: number }) {
  return html`
    <section class="wide" data-testid="charts">
      <h2>Requests <small>key-value requests answered by each node (its own figures, sampled every second; the dashboard's polling is not counted)</small></h2>
      <div class="charts">
        <${Chart} title="requests per second" columns=${series.requestsPerSecond} times=${series.times} memberIds=${memberIds} version=${version} unit="" />
        <${Chart} title="p99 latency (ms)" columns=${series.p99Ms} times=${series.times} memberIds=${memberIds} version=${version} unit=" ms" />
      </div>
      <table data-testid="latest-requests">
        <thead><tr><th>last second</th>${memberIds.map((id) => html`<th class="num">${id === 0 ? 'this node' : `node ${id}`}</th>`)}</tr></thead>
        <tbody>
          <tr><td>requests per second</td>${memberIds.map((id) => html`<td class="num" data-rate-member=${id}>${latest(series.requestsPerSecond, id, 1)}</td>`)}</tr>
          <tr><td>p99 latency</td>${memberIds.map((id) => html`<td class="num" data-p99-member=${id}>${latest(series.p99Ms, id, 2, ' ms')}</td>`)}</tr>
        </tbody>
      </table>
    </section>
  `;
}

/** The newest figure of member `id`, or a dash. */
function latest(columns: Map<number, (number | null)[]>, id: number, digits: number, unit = ''): string {
  const value = columns.get(id)?.at(-1);
  return value === undefined || value === null ? '—' : `${value.toFixed(digits)}${unit}`;
}

interface ChartProps {
  title: string;
  times: number[];
  columns: Map<number, (number | null)[]>;
  memberIds: readonly number[];
  /** Changes on every poll: the cue to redraw. */
  version: number;
  unit: string;
}

function Chart({ title, times, columns, memberIds, version, unit }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const idsKey = memberIds.join(',');

  // A new chart whenever the set of members changes (uPlot's series are fixed at creation).
  useEffect(() => {
    const element = box.current!;
    const chart = new uPlot(
      {
        width: Math.max(300, element.clientWidth),
        height: 220,
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Number.isFinite(max) ? Math.max(1, max * 1.1) : 1] } },
        series: [
          {},
          ...memberIds.map((id, i) => ({
            label: id === 0 ? 'this node' : `node ${id}`,
            stroke: COLOURS[i % COLOURS.length]!,
            width: 1.5,
            value: (_u: uPlot, value: number | null) => (value === null ? '—' : `${value.toFixed(value < 10 ? 2 : 0)}${unit}`),
          })),
        ],
        // Whole seconds on the time axis (uPlot would label half-seconds while the window is short).
        axes: [{ incrs: [1, 5, 10, 15, 30, 60, 120, 300], values: (_u: uPlot, splits: number[]) => splits.map((at) => new Date(at * 1000).toLocaleTimeString()) }, { size: 60 }],
        legend: { live: true },
      },
      data(times, columns, memberIds),
      element,
    );
    plot.current = chart;
    const resize = (): void => chart.setSize({ width: Math.max(300, element.clientWidth), height: 220 });
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      chart.destroy();
      plot.current = null;
    };
  }, [idsKey]);

  useEffect(() => {
    plot.current?.setData(data(times, columns, memberIds));
  }, [version]);

  return html`<div class="chart"><h3>${title}</h3><div ref=${box}></div></div>`;
}

function data(times: number[], columns: Map<number, (number | null)[]>, memberIds: readonly number[]): uPlot.AlignedData {
  return [times.slice(), ...memberIds.map((id) => (columns.get(id) ?? new Array<number | null>(times.length).fill(null)).slice())];
}
