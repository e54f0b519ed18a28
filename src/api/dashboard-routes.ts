/**
 * The dashboard's routes (docs/dashboard.md), all GET (and HEAD for files):
 *
 *   /ui, /ui/, /ui/{asset}            the page and its files (dashboard-assets.ts)
 *   /ui/api/chaos                     the chaos runs in --chaos-results (chaos-results.ts)
 *   /ui/chaos/{run}/{file}            one file of a chaos run
 *
 * The page reads everything else from the API every client uses: /cluster,
 * /status, /kv, /kv/{key}, and `/cluster/nodes/{id}/{view}` for the other
 * members (member-proxy.ts).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { ImpulseError } from '../errors.js';
import type { Vfs } from '../vfs/vfs.js';
import { ChaosResults, REPORT_CSP } from './chaos-results.js';
import { DASHBOARD_CSP, DashboardAssets } from './dashboard-assets.js';
import type { RouteLabel } from './metrics.js';
import { JSON_TYPE } from './responses.js';

export type DashboardRoute =
  | { readonly label: '/ui/{asset}'; readonly asset: string }
  | { readonly label: '/ui/api/chaos' }
  | { readonly label: '/ui/chaos/{run}/{file}'; readonly run: string; readonly file: string };

/** What to answer: status, headers and body (none for 304). */
export interface DashboardAnswer {
  readonly status: number;
  readonly type: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer | string | undefined;
}

/** The dashboard route `path` names, or undefined. */
export function matchDashboardRoute(path: string): DashboardRoute | undefined {
  if (path !== '/ui' && !path.startsWith('/ui/')) return undefined;
  if (path === '/ui/api/chaos') return { label: '/ui/api/chaos' };
  const chaos = /^\/ui\/chaos\/([^/]{1,128})\/([^/]{1,64})$/.exec(path);
  if (chaos !== null) return { label: '/ui/chaos/{run}/{file}', run: chaos[1]!, file: chaos[2]! };
  return { label: '/ui/{asset}', asset: path.slice(3) };
}

/** Methods each dashboard route takes. */
export function dashboardMethods(label: RouteLabel): readonly string[] {
  return label === '/ui/api/chaos' ? ['GET'] : ['GET', 'HEAD'];
}

export class DashboardRoutes {
  private readonly assets: DashboardAssets;
  private readonly chaos: ChaosResults;

  /** `chaosResultsDir`: --chaos-results, if given. `assetsDir`: where the built dashboard is (tests). */
  constructor(vfs: Vfs, chaosResultsDir: string | undefined, assetsDir?: string) {
    this.assets = new DashboardAssets(vfs, assetsDir);
    this.chaos = new ChaosResults(vfs, chaosResultsDir);
  }

  async serve(route: DashboardRoute, headers: IncomingHttpHeaders): Promise<DashboardAnswer> {
    switch (route.label) {
      case '/ui/api/chaos':
        return { status: 200, type: JSON_TYPE, headers: { 'cache-control': 'no-store' }, body: JSON.stringify(await this.chaos.list()) };
      case '/ui/chaos/{run}/{file}': {
        const { type, body } = await this.chaos.file(route.run, route.file);
        const headers: Record<string, string> = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
        if (type.startsWith('text/html')) headers['content-security-policy'] = REPORT_CSP;
        return { status: 200, type, headers, body };
      }
      default:
        return this.asset(route.asset, headers);
    }
  }

  private async asset(path: string, headers: IncomingHttpHeaders): Promise<DashboardAnswer> {
    const asset = await this.assets.get(path);
    if (asset === undefined) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND', `the dashboard has no file ${path.slice(0, 128)}`);
    const common: Record<string, string> = { etag: asset.etag, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff', vary: 'accept-encoding' };
    if (asset.type.startsWith('text/html')) common['content-security-policy'] = DASHBOARD_CSP;
    if (headers['if-none-match'] === asset.etag) return { status: 304, type: undefined, headers: common, body: undefined };
    const gzip = asset.gzip !== undefined && /\bgzip\b/.test(headers['accept-encoding'] ?? '');
    const body = gzip ? asset.gzip! : asset.body;
    return {
      status: 200,
      type: asset.type,
      headers: gzip ? { ...common, 'content-encoding': 'gzip' } : common,
      body, // node:http sends no body for HEAD, but the Content-Length of this one
    };
  }
}
