/**
 * TEST-ONLY deliberate bugs for real members (`impulse serve --test-bug
 * NAME[,NAME]`), so the chaos tester can show that it catches them
 * (testkit/chaos/bugs.test.ts names the seed that catches each). Each is a
 * known way to break a Raft store or a leaderless one; none is ever on unless
 * the flag is given, and a bug of the other replication mode is refused.
 */
import type { LeaderlessMutations } from '../leaderless/coordinator.js';
import type { RaftConfig } from '../raft/raft.js';
import { configInvalid } from '../util/config-values.js';

export type RaftOverrides = Partial<Omit<RaftConfig, 'id' | 'random'>>;

export const TEST_BUGS = {
  /** The leader answers a read index at once from its own commit index, with no heartbeat round: a deposed leader serves stale reads until it learns of the new term. */
  'no-read-index': { mode: 'raft', raft: { mutations: { readsWithoutReadIndex: true } } },
  /**
   * Check-quorum off while the leader still serves reads on its own belief
   * that it leads (etcd's lease-based reads, which etcd documents as safe only
   * WITH check-quorum): an isolated leader never steps down and keeps serving
   * stale reads for as long as the partition lasts.
   */
  'no-check-quorum': { mode: 'raft', raft: { checkQuorum: false, mutations: { readsWithoutReadIndex: true } } },
  /** The leader commits (so applies and acknowledges) an entry once it holds it itself, before a majority does: a crash or partition loses acknowledged writes. */
  'ack-before-majority': { mode: 'raft', raft: { mutations: { commitOnLeaderAlone: true } } },
  /** Leaderless: a write is acknowledged once the coordinating replica stored it, whatever W is: a read quorum that misses that replica does not see an acknowledged write. */
  'ack-before-w': { mode: 'leaderless', leaderless: { acknowledgeEarly: true } },
  /** Leaderless: anti-entropy never repairs half of the ring (leaves with an odd index): a replica that missed writes there never gets them, and replicas never converge. */
  'anti-entropy-skips-range': { mode: 'leaderless', leaderless: { antiEntropySkipsOddLeaves: true } },
  /** Leaderless: a write supersedes every sibling its coordinating owner holds, seen by the client or not: concurrent acknowledged writes vanish (a version per key bumped by the server, instead of dotted version vectors). */
  'overwrite-concurrent': { mode: 'leaderless', leaderless: { supersedeUnseen: true } },
} as const satisfies Record<string, { mode: 'raft'; raft: RaftOverrides } | { mode: 'leaderless'; leaderless: LeaderlessMutations }>;

export type TestBugName = keyof typeof TEST_BUGS;
export const TEST_BUG_NAMES = Object.keys(TEST_BUGS) as TestBugName[];

export interface TestBugs {
  readonly names: TestBugName[];
  /** The Raft overrides that switch the Raft bugs on (merged); empty when none is named. */
  readonly overrides: RaftOverrides;
  /** The leaderless mutations that switch the leaderless bugs on (merged); empty when none is named. */
  readonly leaderless: LeaderlessMutations;
}

/**
 * "name,name" → what switches them on in a member of `mode`. Throws
 * IMPULSE_ERR_CONFIG_INVALID for an unknown name, or a bug of the other mode
 * (it would be silently ignored).
 */
export function parseTestBugs(text: string, mode: 'raft' | 'leaderless' = 'raft'): TestBugs {
  const names: TestBugName[] = [];
  let checkQuorum: boolean | undefined;
  let mutations = {};
  let leaderless: LeaderlessMutations = {};
  for (const name of text.split(',').map((part) => part.trim()).filter((part) => part !== '')) {
    if (!(TEST_BUG_NAMES as string[]).includes(name)) throw configInvalid(`--test-bug must name ${TEST_BUG_NAMES.join(', ')}; got ${JSON.stringify(name)}`);
    const bug = TEST_BUGS[name as TestBugName];
    if (bug.mode !== mode) throw configInvalid(`--test-bug ${name} is a bug of ${bug.mode} members; this member runs --replication ${mode}`);
    names.push(name as TestBugName);
    if ('raft' in bug) {
      const raft: RaftOverrides = bug.raft;
      if (raft.checkQuorum !== undefined) checkQuorum = raft.checkQuorum;
      mutations = { ...mutations, ...raft.mutations };
    } else leaderless = { ...leaderless, ...bug.leaderless };
  }
  return { names, overrides: { ...(checkQuorum !== undefined ? { checkQuorum } : {}), mutations }, leaderless };
}
