/**
 * The dashboard's arithmetic, free of the DOM so Node's test runner checks it
 * (figures.test.ts) and the browser runs the same code (src/ui/app/).
 *
 *   - rates and latency quantiles from two cumulative samples of a node's
 *     `/status` "requests" (the way Prometheus's rate() and
 *     histogram_quantile() read a histogram);
 *   - bytes as text or hex, and the percent-encoding of a key in a URL path.
 */

/** The "requests" object of a node's /status (src/api/metrics.ts, RequestSummary, plus the sample time). */
export interface RequestSample {
  readonly count: number;
  readonly latencyBoundsSeconds: readonly number[];
  readonly latencyCounts: readonly number[];
  /** When the sample was taken: milliseconds since that server process started (monotonic). */
  readonly sampledAtUptimeMs: number;
}

/** Requests per second and the p99 latency of the interval between two samples. */
export interface IntervalFigures {
  readonly requestsPerSecond: number;
  /** Milliseconds; null when the interval saw no request. */
  readonly p99Ms: number | null;
}

/**
 * The figures of the interval from `before` to `after`, two samples of ONE
 * server process; undefined when they cannot be compared (the process
 * restarted: time or counts went back; or no time passed).
 */
export function intervalFigures(before: RequestSample, after: RequestSample): IntervalFigures | undefined {
  const seconds = (after.sampledAtUptimeMs - before.sampledAtUptimeMs) / 1000;
  const requests = after.count - before.count;
  if (!(seconds > 0) || requests < 0 || before.latencyCounts.length !== after.latencyCounts.length) return undefined;
  const counts = after.latencyCounts.map((count, i) => count - (before.latencyCounts[i] ?? 0));
  if (counts.some((count) => count < 0)) return undefined;
  const p99Seconds = quantileSeconds(0.99, after.latencyBoundsSeconds, counts);
  return { requestsPerSecond: requests / seconds, p99Ms: p99Seconds === null ? null : p99Seconds * 1000 };
}

/**
 * The `q` quantile (0 < q <= 1) of a histogram, in seconds, interpolating
 * linearly within the bucket it falls in (as histogram_quantile does): bucket
 * i holds `counts[i]` observations in (bounds[i-1], bounds[i]] (the first
 * from 0), the last bucket those above the largest bound, for which the
 * largest bound is answered. Null for an empty histogram.
 */
export function quantileSeconds(q: number, boundsSeconds: readonly number[], counts: readonly number[]): number | null {
  const total = counts.reduce((sum, count) => sum + count, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const count = counts[i]!;
    if (count > 0 && seen + count >= rank) {
      if (i >= boundsSeconds.length) return boundsSeconds[boundsSeconds.length - 1] ?? null;
      const lower = i === 0 ? 0 : boundsSeconds[i - 1]!;
      return lower + (boundsSeconds[i]! - lower) * ((rank - seen) / count);
    }
    seen += count;
  }
  return boundsSeconds[boundsSeconds.length - 1] ?? null;
}

/** `bytes` as UTF-8 text, or undefined when they are not valid UTF-8 (or hold control characters other than tab and newlines). */
export function bytesAsText(bytes: Uint8Array): string | undefined {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
  return /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text) ? undefined : text;
}

/** A hex dump: 16 bytes a line, offset, hex, and the printable ASCII beside it. At most `linesMax` lines, then a note. */
export function hexDump(bytes: Uint8Array, linesMax = 4096): string {
  const lines: string[] = [];
  for (let offset = 0; offset < bytes.length; offset += 16) {
    if (lines.length === linesMax) {
      lines.push(`… ${bytes.length - offset} more bytes`);
      break;
    }
    const row = bytes.subarray(offset, offset + 16);
    const hex = Array.from(row, (byte) => byte.toString(16).padStart(2, '0')).join(' ');
    const ascii = Array.from(row, (byte) => (byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : '.')).join('');
    lines.push(`${offset.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${ascii}`);
  }
  return lines.join('\n');
}

/** A short label for a key: its text, or `0x…` hex when it is not text. */
export function keyLabel(bytes: Uint8Array): string {
  return bytesAsText(bytes) ?? `0x${Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('')}`;
}

/** Percent-encodes every byte outside the unreserved set, for a key in `/kv/{key}` or a query value (src/protocol/codec.ts decodes it). */
export function percentEncodeBytes(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) {
    const unreserved = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || byte === 0x2d || byte === 0x2e || byte === 0x5f || byte === 0x7e;
    out += unreserved ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Bytes from base64 (the range API's `encoding=base64`). */
export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** `bytes` in B, KiB, MiB or GiB, three significant digits. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toPrecision(3)} ${units[unit]}`;
}

/** Bytes from hex (the shard map's split keys). */
export function fromHex(hex: string): Uint8Array {
  const bytes = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}
