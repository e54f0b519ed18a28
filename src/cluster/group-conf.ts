/**
 * Membership steps of one Raft group, run on its leader: a configuration
 * change proposed and awaited until applied, and a leadership transfer
 * awaited until the target leads. Used by the meta group's admin operations
 * (cluster-admin.ts) and by replica moves of shard groups (shard-conf.ts).
 * Callers run them on the leader (the core refuses a change elsewhere).
 */
import { ImpulseError } from '../errors.js';
import type { ApplyResult } from '../kv/apply.js';
import type { ConfChange, NodeId } from '../raft/types.js';
import type { Clock } from '../util/clock.js';
import type { RaftGroup } from './raft-group.js';
import { outcomeUnknown, unavailable } from './request-errors.js';

/** Proposes `change` on `group` and resolves once it applied; past `timeoutMs` its outcome is unknown (IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN). */
export function changeConf(group: RaftGroup, change: ConfChange, clock: Clock, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const timer = clock.setTimer(timeoutMs, () => settle(outcomeUnknown(`the membership change was not applied within ${timeoutMs} ms`)));
    const settle = (error: Error | null): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      if (error === null) resolve();
      else reject(error);
    };
    const called = group.guard(() =>
      group.driver.proposeConfChange(change, (error, result?: ApplyResult) => settle(error ?? (result !== undefined && !result.ok ? new ImpulseError('IMPULSE_ERR_INTERNAL', 'the membership change was refused when applied') : null))),
    );
    if (!called) settle(new ImpulseError('IMPULSE_ERR_RAFT_STOPPED', 'the Raft group stopped on this node'));
  });
}

/** Starts a transfer of `group`'s leadership to voter `target` (a Raft id) and waits (at most `timeoutMs`, polling every `pollMs`) until it leads. */
export async function transferLeadership(group: RaftGroup, target: NodeId, clock: Clock, pollMs: number, timeoutMs: number): Promise<void> {
  if (target === group.driver.id) return;
  if (!group.membership.confState.voters.includes(target)) {
    throw new ImpulseError('IMPULSE_ERR_RAFT_CONF_CHANGE_REJECTED', `node ${target} is not a voter; leadership goes only to a voter`);
  }
  await new Promise<void>((resolve, reject) => {
    const called = group.guard(() => group.driver.transferLeadership(target, (error) => (error === null ? resolve() : reject(error))));
    if (!called) reject(new ImpulseError('IMPULSE_ERR_RAFT_STOPPED', 'the Raft group stopped on this node'));
  });
  const deadline = clock.now() + timeoutMs;
  while (group.leaderRaftId !== target) {
    // The core gives a transfer one election timeout; still leading with no transfer running means it was aborted.
    const status = group.driver.status();
    if (status.role === 'leader' && status.transferee !== target) throw unavailable(`leadership did not move to node ${target}: the transfer was aborted (the target did not catch up and win within an election timeout); retry`);
    if (clock.now() >= deadline) throw unavailable(`leadership did not move to node ${target} in time; it may still, or the transfer was aborted`);
    await new Promise<void>((resolve) => clock.setTimer(pollMs, resolve));
  }
}
