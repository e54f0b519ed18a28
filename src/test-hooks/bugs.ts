/**
 * TEST-ONLY deliberate bugs for real members (`impulse serve --test-bug
 * NAME[,NAME]`), so the chaos tester can show that it catches them
 * (testkit/chaos/bugs.test.ts names the seed that catches each). Each is a
 * known way to break a Raft store; none is ever on unless the flag is given.
 */
import type { RaftConfig } from '../raft/raft.js';
import { configInvalid } from '../util/config-values.js';

export type RaftOverrides = Partial<Omit<RaftConfig, 'id' | 'random'>>;

export const TEST_BUGS = {
  /** The leader answers a read index at once from its own commit index, with no heartbeat round: a deposed leader serves stale reads until it learns of the new term. */
  'no-read-index': { mutations: { readsWithoutReadIndex: true } },
  /**
   * Check-quorum off while the leader still serves reads on its own belief
   * that it leads (etcd's lease-based reads, which etcd documents as safe only
   * WITH check-quorum): an isolated leader never steps down and keeps serving
   * stale reads for as long as the partition lasts.
   */
  'no-check-quorum': { checkQuorum: false, mutations: { readsWithoutReadIndex: true } },
  /** The leader commits (so applies and acknowledges) an entry once it holds it itself, before a majority does: a crash or partition loses acknowledged writes. */
  'ack-before-majority': { mutations: { commitOnLeaderAlone: true } },
} as const satisfies Record<string, RaftOverrides>;

export type TestBugName = keyof typeof TEST_BUGS;
export const TEST_BUG_NAMES = Object.keys(TEST_BUGS) as TestBugName[];

/** "name,name" → the Raft overrides that switch them on (merged). Throws IMPULSE_ERR_CONFIG_INVALID for an unknown name. */
export function parseTestBugs(text: string): { names: TestBugName[]; overrides: RaftOverrides } {
  const names: TestBugName[] = [];
  let checkQuorum: boolean | undefined;
  let mutations = {};
  for (const name of text.split(',').map((part) => part.trim()).filter((part) => part !== '')) {
    if (!(TEST_BUG_NAMES as string[]).includes(name)) throw configInvalid(`--test-bug must name ${TEST_BUG_NAMES.join(', ')}; got ${JSON.stringify(name)}`);
    const bug: RaftOverrides = TEST_BUGS[name as TestBugName];
    names.push(name as TestBugName);
    if (bug.checkQuorum !== undefined) checkQuorum = bug.checkQuorum;
    mutations = { ...mutations, ...bug.mutations };
  }
  return { names, overrides: { ...(checkQuorum !== undefined ? { checkQuorum } : {}), mutations } };
}
