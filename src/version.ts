import { readFileSync } from 'node:fs';

/** impulse's version, from package.json (two levels above dist/src/). */
export const VERSION: string = (() => {
  try {
    const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return manifest.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
})();
