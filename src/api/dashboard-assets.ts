/**
 * The dashboard's files (src/ui/), served under `/ui/`. `npm run build`
 * compiles and copies them into `dist/ui/` with the vendored libraries
 * (scripts/build-ui.mjs) and writes `dist/ui/manifest.json`, the list of
 * files; only files on that list are served, so a path can never reach
 * outside it. Everything comes from the package itself: no CDN, no internet.
 *
 * The files are read once, on the first request, and kept in memory with a
 * gzip copy (at most `ASSET_FILES_MAX` files and `ASSET_BYTES_MAX` bytes; the
 * whole dashboard is about 220 KB). Answers carry an ETag (304 on
 * If-None-Match) and `Cache-Control: no-cache`, so a browser revalidates and
 * an upgraded node never serves a stale page; the page itself gets a strict
 * Content-Security-Policy (scripts only from this origin, no inline script).
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { ImpulseError } from '../errors.js';
import type { Vfs } from '../vfs/vfs.js';

/** `dist/ui/`, beside `dist/src/` where this module runs from. */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../ui/', import.meta.url));

const ASSET_FILES_MAX = 200;
const ASSET_BYTES_MAX = 16 * 1024 * 1024;

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8',
  '.json': 'application/json',
};

/** The page's policy: everything from this origin; styles may be set inline (uPlot sizes its canvases that way). */
export const DASHBOARD_CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

export interface Asset {
  readonly type: string;
  readonly body: Buffer;
  /** The gzip copy, when it is smaller. */
  readonly gzip: Buffer | undefined;
  /** A strong ETag of the body (quoted). */
  readonly etag: string;
}

export class DashboardAssets {
  private loading: Promise<ReadonlyMap<string, Asset>> | undefined;

  constructor(
    private readonly vfs: Vfs,
    private readonly dir: string = DASHBOARD_DIR,
  ) {}

  /**
   * The asset at `path` below `/ui` (`''` and `'/'` are the page), or
   * undefined when there is no such file. Rejects with ROUTE_NOT_FOUND when
   * the dashboard was never built.
   */
  async get(path: string): Promise<Asset | undefined> {
    const name = path === '' || path === '/' ? 'index.html' : path.slice(1);
    const assets = await this.load();
    return assets.get(name);
  }

  private load(): Promise<ReadonlyMap<string, Asset>> {
    if (this.loading === undefined) {
      this.loading = this.readAll();
      // A failed load (not built yet, an I/O error) is tried again by the next request.
      this.loading.catch(() => (this.loading = undefined));
    }
    return this.loading;
  }

  private async readAll(): Promise<ReadonlyMap<string, Asset>> {
    const manifestPath = join(this.dir, 'manifest.json');
    if (!(await this.vfs.exists(manifestPath))) {
      throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', `the dashboard is not built (no ${manifestPath}); run npm run build`);
    }
    const names = parseManifest(await this.vfs.readFile(manifestPath));
    const assets = new Map<string, Asset>();
    let bytes = 0;
    for (const name of names) {
      const body = await this.vfs.readFile(join(this.dir, name));
      bytes += body.length;
      if (bytes > ASSET_BYTES_MAX) throw new ImpulseError('IMPULSE_ERR_INTERNAL', `the dashboard's files exceed ${ASSET_BYTES_MAX} bytes`);
      const gzip = gzipSync(body);
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
      assets.set(name, { type: contentTypeOf(name), body, gzip: gzip.length < body.length ? gzip : undefined, etag });
    }
    return assets;
  }
}

/** The manifest: a JSON array of relative file names, each safe to join under the directory. */
function parseManifest(bytes: Buffer): readonly string[] {
  let names: unknown;
  try {
    names = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ImpulseError('IMPULSE_ERR_INTERNAL', 'the dashboard manifest is not JSON; rebuild with npm run build');
  }
  if (!Array.isArray(names) || names.length > ASSET_FILES_MAX) throw new ImpulseError('IMPULSE_ERR_INTERNAL', `the dashboard manifest must list at most ${ASSET_FILES_MAX} files`);
  for (const name of names) {
    if (typeof name !== 'string' || !/^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/.test(name) || name.includes('..')) {
      throw new ImpulseError('IMPULSE_ERR_INTERNAL', `the dashboard manifest names ${JSON.stringify(name)}, not a plain relative path`);
    }
  }
  return names as string[];
}

function contentTypeOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return CONTENT_TYPES[dot === -1 ? '' : name.slice(dot)] ?? 'application/octet-stream';
}
