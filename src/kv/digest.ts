/**
 * A digest of the whole replicated state at one applied index: SHA-256 over
 * the state machine's snapshot image (every data record with its revision,
 * the client sessions, the cluster metadata, the applied index and term).
 * Replicas at the same applied index have equal digests exactly when their
 * states are equal, whether they applied the log or installed a snapshot —
 * which is what a test (or the chaos tester) compares. Costs a full scan.
 */
import { createHash } from 'node:crypto';
import type { KvStateMachine } from './state-machine.js';

export interface ContentDigest {
  readonly appliedIndex: number;
  readonly appliedTerm: number;
  /** Hex SHA-256 of the image. */
  readonly digest: string;
  /** Bytes of the image hashed. */
  readonly bytes: number;
  /**
   * A sharded member's digest of each shard it hosts (in key order): members
   * hosting different shards (after moves) compare them shard by shard.
   * Absent elsewhere.
   */
  readonly shards?: ReadonlyArray<{ readonly id: number; readonly appliedIndex: number; readonly digest: string }>;
}

export async function contentDigest(machine: KvStateMachine): Promise<ContentDigest> {
  const snapshot = await machine.snapshot();
  try {
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of snapshot.chunks) {
      hash.update(chunk);
      bytes += chunk.length;
    }
    return { appliedIndex: snapshot.appliedIndex, appliedTerm: snapshot.appliedTerm, digest: hash.digest('hex'), bytes };
  } finally {
    snapshot.release();
  }
}
