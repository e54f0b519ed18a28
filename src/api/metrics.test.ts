import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RequestMetrics } from './metrics.js';

describe('request metrics', () => {
  it('renders counters and cumulative histograms in Prometheus text format', () => {
    const metrics = new RequestMetrics();
    metrics.observe('/kv/{key}', 'GET', 200, 0.0002);
    metrics.observe('/kv/{key}', 'GET', 200, 0.003);
    metrics.observe('/kv/{key}', 'GET', 200, 10);
    metrics.observe('/kv', 'GET', 400, 0.00001);
    const text = metrics.render();
    assert.match(text, /^impulse_http_requests_total\{route="\/kv\/\{key\}",method="GET",status="200"\} 3$/m);
    assert.match(text, /^impulse_http_request_duration_seconds_bucket\{le="0.0001",route="\/kv\/\{key\}",method="GET",status="200"\} 0$/m);
    assert.match(text, /^impulse_http_request_duration_seconds_bucket\{le="0.00025",route="\/kv\/\{key\}",method="GET",status="200"\} 1$/m);
    assert.match(text, /^impulse_http_request_duration_seconds_bucket\{le="0.005",route="\/kv\/\{key\}",method="GET",status="200"\} 2$/m);
    assert.match(text, /^impulse_http_request_duration_seconds_bucket\{le="5",route="\/kv\/\{key\}",method="GET",status="200"\} 2$/m);
    assert.match(text, /^impulse_http_request_duration_seconds_bucket\{le="\+Inf",route="\/kv\/\{key\}",method="GET",status="200"\} 3$/m);
    assert.match(text, /^impulse_http_request_duration_seconds_count\{route="\/kv",method="GET",status="400"\} 1$/m);
    assert.match(text, /^impulse_http_request_duration_seconds_sum\{route="\/kv\/\{key\}",method="GET",status="200"\} 10\.0032/m);
    assert.match(text, /^# TYPE impulse_http_request_duration_seconds histogram$/m);
  });

  it('sums the key-value routes, and only those, into one histogram for /status', () => {
    const metrics = new RequestMetrics();
    metrics.observe('/kv/{key}', 'GET', 200, 0.0002);
    metrics.observe('/kv/{key}', 'PUT', 412, 0.003);
    metrics.observe('/kv', 'GET', 200, 10);
    metrics.observe('/kv/batch', 'POST', 204, 0.003);
    metrics.observe('/status', 'GET', 200, 0.003);
    metrics.observe('/ui/{asset}', 'GET', 200, 0.003);
    metrics.observe('/cluster/nodes/{id}/{view}', 'GET', 502, 0.003);
    const summary = metrics.kvSummary();
    assert.equal(summary.count, 4);
    assert.equal(summary.latencyCounts.length, summary.latencyBoundsSeconds.length + 1);
    const at = (seconds: number): number => summary.latencyCounts[summary.latencyBoundsSeconds.findIndex((bound) => seconds <= bound)]!;
    assert.deepEqual([at(0.0002), at(0.003), summary.latencyCounts.at(-1)], [1, 2, 1]);
  });

  it('bounds the number of series: odd methods fold into OTHER, excess statuses into "other"', () => {
    const metrics = new RequestMetrics();
    metrics.observe('unmatched', 'BREW', 404, 0.001);
    metrics.observe('unmatched', 'WHEN', 404, 0.001);
    for (let status = 0; status < 2000; status++) metrics.observe('/kv', 'GET', status, 0.001);
    const text = metrics.render();
    assert.match(text, /impulse_http_requests_total\{route="unmatched",method="OTHER",status="404"\} 2/);
    const series = text.split('\n').filter((line) => line.startsWith('impulse_http_requests_total{')).length;
    assert.ok(series <= 501, `${series} series`);
    assert.match(text, /impulse_http_requests_total\{route="\/kv",method="GET",status="other"\} \d+/);
  });
});
