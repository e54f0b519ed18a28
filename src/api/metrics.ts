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
  | 'unmatched';

/** Latency histogram bucket upper bounds, seconds. */
const BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const KNOWN_METHODS = new Set(['GET', 'PUT', 'POST', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH']);
/** Bound on distinct (route, method, status) series; later ones fold into status "other". */
const SERIES_MAX = 500;

interface Series {
  readonly labels: string;
  count: number;
  sumSeconds: number;
  /** Non-cumulative count per bucket; the last slot is +Inf. */
  readonly buckets: Float64Array;
}

export class RequestMetrics {
  /** The series, by their rendered label set. */
  private readonly series = new Map<string, Series>();
  /** Cache from the raw (route, method, status) to its series; several raw ids may share one. */
  private readonly byId = new Map<string, Series>();

  observe(route: RouteLabel, method: string, status: number, seconds: number): void {
    const id = `${route} ${method} ${status}`;
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

  private createSeries(id: string, route: RouteLabel, method: string, status: number): Series {
    // Unknown methods collapse to OTHER, and past SERIES_MAX statuses to "other", so clients cannot grow the set without bound.
    const methodLabel = KNOWN_METHODS.has(method) ? method : 'OTHER';
    let labels = `route="${route}",method="${methodLabel}",status="${status}"`;
    if (!this.series.has(labels) && this.series.size >= SERIES_MAX) labels = `route="${route}",method="${methodLabel}",status="other"`;
    let series = this.series.get(labels);
    if (series === undefined) {
      series = { labels, count: 0, sumSeconds: 0, buckets: new Float64Array(BUCKETS_SECONDS.length + 1) };
      this.series.set(labels, series);
    }
    if (this.byId.size < SERIES_MAX * 4) this.byId.set(id, series);
    return series;
  }
}

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new RequestMetrics();

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

  async render(): Promise<string> {
    return this.requests.render() + (await this.registry.metrics());
  }
}
