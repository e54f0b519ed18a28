/**
 * Prometheus metrics: request counts and latency histograms per route,
 * method and status; the engine's own figures; Node's process metrics.
 *
 * The per-request series are kept by `RequestMetrics` below in plain arrays
 * and rendered in the Prometheus text format at scrape time: prom-client's
 * labelled children hash their label values on every observation (~2 µs, a
 * measurable share of a 30 µs request). Everything else (registry, process
 * metrics, engine figures, the text format) is prom-client. One registry per
 * server, so tests can run several servers in one process.
 */
import { Gauge, type Metric, Registry, collectDefaultMetrics } from 'prom-client';
import type { KvService } from '../service/kv-service.js';

/** Route labels are the route pattern, never the key: label cardinality stays bounded. */
export type RouteLabel =
  | '/kv/{key}'
  | '/kv'
  | '/kv/batch'
  | '/health'
  | '/status'
  | '/metrics'
  | '/digest'
  | '/cluster'
  | '/cluster/members'
  | '/cluster/members/{id}'
  | '/cluster/members/{id}/promote'
  | '/cluster/leader'
  | '/shards'
  | '/cluster/nodes/{id}/{view}'
  | '/ui/{asset}'
  | '/ui/api/chaos'
  | '/ui/chaos/{run}/{file}'
  | '/cluster/repair'
  | '/shards/split'
  | '/shards/merge'
  | '/shards/merge/cancel'
  | 'unmatched';

/** Latency histogram bucket upper bounds, seconds. */
const BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const ROUTE_INDEX: Readonly<Record<RouteLabel, number>> = {
  '/kv/{key}': 0,
  '/kv': 1,
  '/kv/batch': 2,
  '/health': 3,
  '/status': 4,
  '/metrics': 5,
  '/digest': 6,
  '/cluster': 7,
  '/cluster/members': 8,
  '/cluster/members/{id}': 9,
  '/cluster/members/{id}/promote': 10,
  '/cluster/leader': 11,
  '/shards': 12,
  '/cluster/nodes/{id}/{view}': 13,
  '/ui/{asset}': 14,
  '/ui/api/chaos': 15,
  '/ui/chaos/{run}/{file}': 16,
  '/cluster/repair': 17,
  unmatched: 18,
  '/shards/split': 19,
  '/shards/merge': 20,
  '/shards/merge/cancel': 21,
};
/** The routes that carry user requests: what "requests per second" and "p99" mean on the dashboard (never its own polling). */
const KV_ROUTES: ReadonlySet<RouteLabel> = new Set<RouteLabel>(['/kv/{key}', '/kv', '/kv/batch']);
/** The methods with a label of their own; index 0 is every other method (label OTHER). */
const METHOD_INDEX: Readonly<Record<string, number>> = Object.assign(Object.create(null) as Record<string, number>, { GET: 1, PUT: 2, POST: 3, DELETE: 4, HEAD: 5, OPTIONS: 6, PATCH: 7 });
const METHOD_INDEX_COUNT = 8;
/** Bound on distinct (route, method, status) series; later ones fold into status "other". */
const SERIES_MAX = 500;

interface Series {
  readonly labels: string;
  /** Counts toward the key-value summary (a request to /kv/{key}, /kv or /kv/batch). */
  readonly kv: boolean;
  count: number;
  sumSeconds: number;
  /** Non-cumulative count per bucket; the last slot is +Inf. */
  readonly buckets: Float64Array;
}

/** Key-value requests answered since the server started (`RequestMetrics.kvSummary`). */
export interface RequestSummary {
  readonly count: number;
  /** Upper bounds of the latency buckets, seconds, ascending. */
  readonly latencyBoundsSeconds: readonly number[];
  /** Requests per bucket (NOT cumulative), one more than the bounds: the last is above the largest bound. Sums to `count`. */
  readonly latencyCounts: readonly number[];
}

export class RequestMetrics {
  /** The series, by their rendered label set. */
  private readonly series = new Map<string, Series>();
  /** Cache from the (route, method, status) id to its series; several ids may share one. */
  private readonly byId = new Map<number, Series>();

  observe(route: RouteLabel, method: string, status: number, seconds: number): void {
    // A number, not a string: no concatenation per request. Unknown methods share index 0 and so
    // share a series (they all become OTHER); statuses are 100..999.
    const id = (ROUTE_INDEX[route] * METHOD_INDEX_COUNT + (METHOD_INDEX[method] ?? 0)) * 1000 + status;
    let series = this.byId.get(id);
    if (series === undefined) series = this.createSeries(id, route, method, status);
    series.count++;
    series.sumSeconds += seconds;
    let bucket = 0;
    while (bucket < BUCKETS_SECONDS.length && seconds > BUCKETS_SECONDS[bucket]!) bucket++;
    series.buckets[bucket]!++;
  }

  /** The request series in Prometheus text exposition format. */
  render(): string {
    const lines: string[] = [
      '# HELP impulse_http_requests_total HTTP requests answered, by route pattern, method and status code.',
      '# TYPE impulse_http_requests_total counter',
    ];
    for (const series of this.series.values()) lines.push(`impulse_http_requests_total{${series.labels}} ${series.count}`);
    lines.push(
      '# HELP impulse_http_request_duration_seconds Time from request start to response end, by route pattern, method and status code.',
      '# TYPE impulse_http_request_duration_seconds histogram',
    );
    for (const series of this.series.values()) {
      let cumulative = 0;
      for (let i = 0; i < BUCKETS_SECONDS.length; i++) {
        cumulative += series.buckets[i]!;
        lines.push(`impulse_http_request_duration_seconds_bucket{le="${BUCKETS_SECONDS[i]}",${series.labels}} ${cumulative}`);
      }
      lines.push(`impulse_http_request_duration_seconds_bucket{le="+Inf",${series.labels}} ${series.count}`);
      lines.push(`impulse_http_request_duration_seconds_sum{${series.labels}} ${series.sumSeconds}`);
      lines.push(`impulse_http_request_duration_seconds_count{${series.labels}} ${series.count}`);
    }
    return lines.join('\n') + '\n';
  }

  /**
   * Every key-value request so far (any method and status) as one count and
   * one latency histogram: cumulative since the server started, so a reader
   * takes two samples and differences them (requests per second, quantiles of
   * the interval), as Prometheus's rate() and histogram_quantile() do.
   */
  kvSummary(): RequestSummary {
    const counts = new Array<number>(BUCKETS_SECONDS.length + 1).fill(0);
    let count = 0;
    for (const series of this.series.values()) {
      if (!series.kv) continue;
      count += series.count;
      for (let i = 0; i < counts.length; i++) counts[i]! += series.buckets[i]!;
    }
    return { count, latencyBoundsSeconds: BUCKETS_SECONDS, latencyCounts: counts };
  }

  private createSeries(id: number, route: RouteLabel, method: string, status: number): Series {
    // Unknown methods collapse to OTHER, and past SERIES_MAX statuses to "other", so clients cannot grow the set without bound.
    const methodLabel = METHOD_INDEX[method] !== undefined ? method : 'OTHER';
    let labels = `route="${route}",method="${methodLabel}",status="${status}"`;
    if (!this.series.has(labels) && this.series.size >= SERIES_MAX) labels = `route="${route}",method="${methodLabel}",status="other"`;
    let series = this.series.get(labels);
    if (series === undefined) {
      series = { labels, kv: KV_ROUTES.has(route), count: 0, sumSeconds: 0, buckets: new Float64Array(BUCKETS_SECONDS.length + 1) };
      this.series.set(labels, series);
    }
    if (this.byId.size < SERIES_MAX * 4) this.byId.set(id, series);
    return series;
  }
}

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new RequestMetrics();
  /** More series in the text format, from other front ends of the node (the RESP server). */
  private readonly texts: (() => string)[] = [];

  /** `extra`: metrics of the service's own (e.g. the Raft commit latency histogram), registered here. */
  constructor(service: KvService, extra: readonly Metric[] = []) {
    collectDefaultMetrics({ register: this.registry, prefix: 'impulse_' });
    for (const metric of extra) this.registry.registerMetric(metric);
    new Gauge({
      name: 'impulse_engine_figure',
      help: 'Engine and service figures (see /status "figures"), by engine and figure name.',
      labelNames: ['engine', 'figure'],
      registers: [this.registry],
      async collect() {
        if (service.health().status === 'unavailable') return;
        const status = await service.status();
        this.reset();
        const engine = status.engine;
        for (const [name, value] of Object.entries(status.figures)) this.set({ engine, figure: name }, value);
        if (status.keyCount !== null) this.set({ engine, figure: 'key_count' }, status.keyCount);
        if (status.diskBytes !== null) this.set({ engine, figure: 'disk_bytes' }, status.diskBytes);
        this.set({ engine, figure: 'applied_index' }, status.appliedIndex);
      },
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  observe(route: RouteLabel, method: string, status: number, seconds: number): void {
    this.requests.observe(route, method, status, seconds);
  }

  /** Adds series rendered by `render` (Prometheus text format, names not used elsewhere) to every scrape. */
  include(render: () => string): void {
    this.texts.push(render);
  }

  async render(): Promise<string> {
    return this.requests.render() + this.texts.map((render) => render()).join('') + (await this.registry.metrics());
  }
}
