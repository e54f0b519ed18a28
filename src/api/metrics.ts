/**
 * Prometheus metrics (prom-client): request counts and latency histograms per
 * route, method and status, the engine's own figures, and Node's process
 * metrics. One registry per server so tests can run several servers in one
 * process.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Engine } from '../storage/engine.js';

/** Route labels are the route pattern, never the key: label cardinality stays bounded. */
export type RouteLabel = '/kv/{key}' | '/kv' | '/kv/batch' | '/health' | '/status' | '/metrics' | 'unmatched';

interface RequestChild {
  count: { inc(): void };
  latency: { observe(seconds: number): void };
}

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly latency: Histogram<'route' | 'method' | 'status'>;
  /** Label lookups cached: prom-client hashes label values on every call otherwise. */
  private readonly children = new Map<string, RequestChild>();

  constructor(engine: Engine) {
    collectDefaultMetrics({ register: this.registry, prefix: 'impulse_' });
    this.requests = new Counter({
      name: 'impulse_http_requests_total',
      help: 'HTTP requests answered, by route pattern, method and status code.',
      labelNames: ['route', 'method', 'status'],
      registers: [this.registry],
    });
    this.latency = new Histogram({
      name: 'impulse_http_request_duration_seconds',
      help: 'Time from request start to response end, by route pattern, method and status code.',
      labelNames: ['route', 'method', 'status'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [this.registry],
    });
    const figures = new Gauge({
      name: 'impulse_engine_figure',
      help: 'Engine-specific figures (see /status "engine.figures"), by engine and figure name.',
      labelNames: ['engine', 'figure'],
      registers: [this.registry],
      async collect() {
        if (!engine.isOpen) return;
        const stats = await engine.stats();
        this.reset();
        for (const [name, value] of Object.entries(stats.figures)) this.set({ engine: engine.name, figure: name }, value);
        if (stats.keyCount !== undefined) this.set({ engine: engine.name, figure: 'key_count' }, stats.keyCount);
        if (stats.diskBytes !== undefined) this.set({ engine: engine.name, figure: 'disk_bytes' }, stats.diskBytes);
      },
    });
    void figures;
  }

  observe(route: RouteLabel, method: string, status: number, seconds: number): void {
    const id = `${route} ${method} ${status}`;
    let child = this.children.get(id);
    if (child === undefined) {
      // Unknown methods collapse to OTHER so a client cannot grow the label set without bound.
      const labels = { route, method: KNOWN_METHODS.has(method) ? method : 'OTHER', status: String(status) };
      child = { count: this.requests.labels(labels), latency: this.latency.labels(labels) };
      if (this.children.size < 1000) this.children.set(id, child);
    }
    child.count.inc();
    child.latency.observe(seconds);
  }
}

const KNOWN_METHODS = new Set(['GET', 'PUT', 'POST', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH']);
