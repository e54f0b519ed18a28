/**
 * The disk hook of a member under `impulse serve --test-control`
 * (src/test-hooks/test-hooks.ts loads this module with `import()`): a
 * `FaultVfs` around the member's real disk whose policies the chaos runner
 * replaces at run time with a fault spec (testkit/vfs/fault-spec.ts), e.g.
 * `fsync-error@p=1` (every fsync fails) or `fsync-latency=200ms` (a slow disk).
 */
import { SeededRandom } from '../../src/util/random.js';
import type { Vfs } from '../../src/vfs/vfs.js';
import { parseFaultSpec } from '../vfs/fault-spec.js';
import { FaultVfs } from '../vfs/fault-vfs.js';

export interface DiskFaults {
  readonly vfs: Vfs;
  /** Replaces every policy with those of `spec` ("" = a healthy disk); returns the vfs's description. Throws on a malformed spec, changing nothing. */
  apply(spec: string): string;
}

export function createDiskFaults(inner: Vfs, seed: number): DiskFaults {
  const vfs = new FaultVfs(inner);
  const random = new SeededRandom(seed);
  return {
    vfs,
    apply(spec: string): string {
      const policies = parseFaultSpec(spec, random.fork());
      vfs.clearFaults();
      for (const policy of policies) vfs.inject(policy);
      return vfs.name;
    },
  };
}
