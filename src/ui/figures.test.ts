/**
 * The dashboard's arithmetic: latency quantiles against a sorted-sample model,
 * interval figures (and refusing samples of a restarted process), and the
 * key encodings against the server's own decoder.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { percentDecode } from '../protocol/codec.js';
import { bytesAsText, formatBytes, fromBase64, hexDump, intervalFigures, keyLabel, percentEncodeBytes, quantileSeconds, type RequestSample } from './figures.js';

const BOUNDS = [0.001, 0.01, 0.1, 1];

/** Histogram counts (not cumulative, +Inf last) of `samples` over BOUNDS, bucket i holding (bounds[i-1], bounds[i]]. */
function histogram(samples: readonly number[]): number[] {
  const counts = new Array<number>(BOUNDS.length + 1).fill(0);
  for (const sample of samples) {
    let bucket = 0;
    while (bucket < BOUNDS.length && sample > BOUNDS[bucket]!) bucket++;
    counts[bucket]!++;
  }
  return counts;
}

function sample(count: number, counts: number[], atMs: number): RequestSample {
  return { count, latencyBoundsSeconds: BOUNDS, latencyCounts: counts, sampledAtUptimeMs: atMs };
}

describe('dashboard figures', () => {
  it('puts a quantile inside the bucket that holds the true quantile of the samples', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0.0001, max: 0.9, noNaN: true }), { minLength: 1, maxLength: 300 }), fc.constantFrom(0.5, 0.9, 0.99), (samples, q) => {
        const estimate = quantileSeconds(q, BOUNDS, histogram(samples))!;
        const sorted = [...samples].sort((a, b) => a - b);
        const truth = sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
        // The estimate and the truth lie in the same bucket: (lower, upper] (give or take a rounding of the interpolation).
        const upper = BOUNDS.find((bound) => truth <= bound)!;
        const lower = BOUNDS[BOUNDS.indexOf(upper) - 1] ?? 0;
        assert.ok(estimate >= lower && estimate <= upper * (1 + 1e-12), `q${q} of ${samples.length}: estimate ${estimate}, truth ${truth} in (${lower}, ${upper}]`);
      }),
    );
  });

  it('answers null for an empty histogram and the largest bound for observations above it', () => {
    assert.equal(quantileSeconds(0.99, BOUNDS, [0, 0, 0, 0, 0]), null);
    assert.equal(quantileSeconds(0.99, BOUNDS, [0, 0, 0, 0, 7]), 1);
    assert.equal(quantileSeconds(0.5, BOUNDS, [4, 0, 0, 0, 0]), 0.0005); // halfway into (0, 1 ms]
  });

  it('computes requests per second and p99 of an interval, and refuses samples of a restarted process', () => {
    const before = sample(100, [100, 0, 0, 0, 0], 10_000);
    const after = sample(300, [100, 200, 0, 0, 0], 12_000);
    const figures = intervalFigures(before, after)!;
    assert.equal(figures.requestsPerSecond, 100);
    assert.ok(figures.p99Ms! > 1 && figures.p99Ms! <= 10, `p99 ${figures.p99Ms} ms: all 200 requests of the interval took 1-10 ms`);
    assert.equal(intervalFigures(after, after), undefined, 'no time passed');
    assert.equal(intervalFigures(after, sample(5, [5, 0, 0, 0, 0], 500)), undefined, 'the process restarted: counts and time went back');
    assert.deepEqual(intervalFigures(before, sample(100, [100, 0, 0, 0, 0], 11_000)), { requestsPerSecond: 0, p99Ms: null });
  });

  it('percent-encodes any key so that the server decodes the same bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes) => {
        const encoded = percentEncodeBytes(bytes);
        assert.match(encoded, /^[A-Za-z0-9\-._~%]+$/);
        assert.deepEqual(new Uint8Array(percentDecode(encoded, false, 'IMPULSE_ERR_KEY_ENCODING')), bytes);
        assert.deepEqual(new Uint8Array(percentDecode(encoded, true, 'IMPULSE_ERR_RANGE_INVALID')), bytes, 'also as a query value, where + is a space');
      }),
    );
  });

  it('shows text as text and anything else as hex', () => {
    assert.equal(bytesAsText(Buffer.from('héllo\nworld\t!')), 'héllo\nworld\t!');
    assert.equal(bytesAsText(Buffer.from([0xff, 0xfe])), undefined, 'not UTF-8');
    assert.equal(bytesAsText(Buffer.from([0x61, 0x00, 0x62])), undefined, 'a NUL is not text');
    assert.equal(keyLabel(Buffer.from([0x00, 0xab])), '0x00ab');
    assert.equal(keyLabel(Buffer.from('user/1')), 'user/1');
    assert.equal(hexDump(Buffer.from('ABC\x00')), '00000000  41 42 43 00' + ' '.repeat(36) + '  ABC.');
    const long = hexDump(new Uint8Array(100), 2).split('\n');
    assert.deepEqual(long.slice(2), ['… 68 more bytes']);
    assert.deepEqual(fromBase64(Buffer.from([1, 2, 250]).toString('base64')), new Uint8Array([1, 2, 250]));
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1536), '1.50 KiB');
  });
});
