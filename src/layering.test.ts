/**
 * The layering, checked from the imports (docs/architecture.md, "Layers"):
 *   - product code (src/) never imports test tooling (testkit/) statically; the
 *     CLI may load a testkit command (sim, chaos) on demand with `import()`;
 *   - the bottom layers know nothing of the ones above them: errors and util
 *     import nothing but each other; vfs, storage and raft import neither the
 *     API, the client, the CLI nor the cluster runtime; protocol (the wire
 *     encodings shared by server and client) imports only errors; kv (the
 *     state machine) sits on storage, and service (the KvService seam) on kv;
 *     cluster (the node runtime) uses all of those and the transport, never
 *     the API, the client or the CLI; shard (the shard map and placement,
 *     pure) uses only errors, util and raft's types, and cluster uses it; the
 *     dashboard (src/ui/, browser code) imports nothing outside its folder.
 *   - the TEST-ONLY hooks of `impulse serve` (src/test-hooks) are imported by the
 *     CLI alone.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function sources(dir: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(join(ROOT, dir)).sort()) {
    const path = join(dir, name);
    if (statSync(join(ROOT, path)).isDirectory()) found.push(...sources(path));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.bench.ts')) found.push(path);
  }
  return found;
}

/** Static imports of `file`, as paths relative to the repository root ('src/storage/engine.ts'). */
function staticImports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const imports: string[] = [];
  for (const match of text.matchAll(/^(?:import|export)\s[^;]*?from\s+'(\.{1,2}\/[^']+)'/gms)) {
    imports.push(normalize(join(dirname(file), match[1]!)).replace(/\.js$/, '.ts'));
  }
  return imports;
}

/** The layer of a path: 'testkit', 'src/errors.ts', or 'src/<folder>'. */
function layerOf(path: string): string {
  const parts = path.split('/');
  if (parts[0] !== 'src') return parts[0]!;
  return parts.length === 2 ? path : `src/${parts[1]}`;
}

const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  'src/errors.ts': [],
  'src/util': ['src/errors.ts'],
  'src/protocol': ['src/errors.ts'],
  'src/vfs': ['src/errors.ts', 'src/util'],
  'src/storage': ['src/errors.ts', 'src/util', 'src/vfs'],
  'src/raft': ['src/errors.ts', 'src/util', 'src/vfs'],
  'src/kv': ['src/errors.ts', 'src/util', 'src/vfs', 'src/storage'],
  'src/service': ['src/errors.ts', 'src/util', 'src/vfs', 'src/storage', 'src/kv'],
  // Tokens and TLS of the client listeners (HTTP and RESP share them).
  'src/security': ['src/errors.ts', 'src/util', 'src/protocol', 'src/storage'],
  'src/resp': ['src/errors.ts', 'src/util', 'src/vfs', 'src/storage', 'src/kv', 'src/service', 'src/security'],
  'src/shard': ['src/errors.ts', 'src/util', 'src/raft'],
  'src/leaderless': ['src/errors.ts', 'src/util', 'src/vfs', 'src/storage', 'src/kv', 'src/service', 'src/transport'],
  'src/cluster': ['src/errors.ts', 'src/util', 'src/vfs', 'src/storage', 'src/kv', 'src/service', 'src/raft', 'src/transport', 'src/protocol', 'src/shard', 'src/leaderless'],
  // The dashboard runs in a browser, compiled on its own (src/ui/tsconfig.json): nothing of the server's.
  'src/ui': [],
};

describe('layering', () => {
  const files = sources('src');

  it('finds the product sources', () => {
    assert.ok(files.length > 30, `only ${files.length} files found under src/`);
  });

  it('product code never imports test tooling statically', () => {
    const offenders = files.flatMap((file) => staticImports(file).filter((target) => layerOf(target) === 'testkit').map((target) => `${file} -> ${target}`));
    assert.deepEqual(offenders, []);
  });

  it('the bottom layers import only what lies beneath them', () => {
    const offenders: string[] = [];
    for (const file of files) {
      const layer = layerOf(file);
      const allowed = MAY_IMPORT[layer];
      if (allowed === undefined) continue;
      for (const target of staticImports(file)) {
        const targetLayer = layerOf(target);
        if (targetLayer !== layer && !allowed.includes(targetLayer)) offenders.push(`${relative(ROOT, join(ROOT, file))} -> ${target}`);
      }
    }
    assert.deepEqual(offenders, []);
  });

  it('only the CLI loads the test-only hooks (src/test-hooks), so no other code path can switch one on', () => {
    const offenders = files.flatMap((file) =>
      layerOf(file) === 'src/cli' || layerOf(file) === 'src/test-hooks' ? [] : staticImports(file).filter((target) => layerOf(target) === 'src/test-hooks').map((target) => `${file} -> ${target}`),
    );
    assert.deepEqual(offenders, []);
  });
});
