/**
 * The membership of a leaderless cluster and how it changes (join, leave).
 *
 * Each member keeps the MEMBERSHIP STATE durably (in its store, metadata key
 * "members"): an epoch, the members with their peer addresses, and during a
 * change the PENDING members it moves to. The ring follows the members; while
 * a change is pending, every member knows both rings.
 *
 * A change is driven by the member the operator asked (the claimant,
 * `MembershipChange.run`), in four steps sent to every member of the old and
 * the new membership — every one must take part, or the change is aborted
 * (a forced removal skips the removed members, membership-change.ts):
 *   1. `pending`: each records the pending members. From then on a write
 *      also goes to the key's owners under the new ring, and counts them:
 *      it needs W of the current owners plus every new owner (Cassandra's
 *      pending ranges), so a key's new owners never miss a write made after
 *      this step.
 *   2. the claimant waits one request time: writes begun before step 1 have
 *      then finished or failed.
 *   3. `transfer`: each member pushes every key it stores to the key's owners
 *      under the new ring that are not owners under the current one
 *      (ownership.ts); it answers once all of them hold it durably. So a new
 *      owner holds every write made before step 1.
 *   4. `commit`: each switches to the new ring (reads now go to the new
 *      owners, who hold everything) and hands off, then deletes, the keys it
 *      no longer owns (ownership.ts, `cleanup`).
 * Why stream before counting (rather than joining at once and letting hints
 * and anti-entropy catch up, as Dynamo's paper sketches): a new owner that
 * counted in read quorums before it held the data would answer "not found"
 * for acknowledged writes; with R + W > N that is a guarantee broken, not a
 * delay. Riak (ownership handoff) and Cassandra (bootstrap streaming with
 * pending ranges) make the same choice.
 *
 * No consensus: the claimant refuses a change while one is pending on it, and
 * a member refuses a `pending` step for a stale epoch or while another change
 * is pending. Two claimants at once cannot both complete (each needs every
 * member's step 1); the operator retries the one that was refused.
 */
import { ImpulseError } from '../errors.js';
import type { NodeId } from './dvv.js';
import { Ring } from './ring.js';

export interface MemberAddress {
  readonly id: NodeId;
  /** "host:port" of its peer listener ('' where no TCP is used: in-process tests, the simulator). */
  readonly peerUrl: string;
}

export interface MembershipState {
  /** Increases by one with every committed change (0: the --initial-cluster). */
  readonly epoch: number;
  /** Sorted by id. */
  readonly members: readonly MemberAddress[];
  /** The change under way (its epoch is above `epoch`). */
  readonly pending?: { readonly epoch: number; readonly members: readonly MemberAddress[] };
}

/**
 * The steps of a change; `repair` follows the commit of a forced removal
 * (membership-change.ts): the member starts an anti-entropy repair with its
 * peers in the background and answers at once.
 */
export type MembershipPhase = 'pending' | 'transfer' | 'commit' | 'abort' | 'repair';
export const MEMBERSHIP_PHASES: readonly MembershipPhase[] = ['pending', 'transfer', 'commit', 'abort', 'repair'];
/** Most members a leaderless cluster may have (bounds every message that lists them). */
export const MEMBERS_MAX = 64;

/** The refusal every membership error uses (409). */
export function membershipRejected(why: string, details?: Record<string, number>): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_LEADERLESS_MEMBERSHIP_REJECTED', why, details === undefined ? {} : { details });
}

/** Sorted, distinct, valid members; IMPULSE_ERR_LEADERLESS_MEMBERSHIP_REJECTED otherwise (untrusted input). */
export function checkMembers(members: unknown): MemberAddress[] {
  if (!Array.isArray(members) || members.length === 0 || members.length > MEMBERS_MAX) throw membershipRejected(`a membership lists 1 to ${MEMBERS_MAX} members`);
  const checked = members.map((member: unknown) => {
    const { id, peerUrl } = (member ?? {}) as Record<string, unknown>;
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1 || id > 0xffff_ffff) throw membershipRejected('a member id must be a positive integer');
    if (typeof peerUrl !== 'string' || peerUrl.length > 300 || (peerUrl !== '' && !/^[^\s/]+:[0-9]{1,5}$/.test(peerUrl))) throw membershipRejected(`member ${id}: the peer address must be host:port`);
    return { id, peerUrl };
  });
  checked.sort((a, b) => a.id - b.id);
  if (new Set(checked.map((member) => member.id)).size !== checked.length) throw membershipRejected('a membership names a member twice');
  return checked;
}

/** The bytes of a state as stored. */
export function encodeMembership(state: MembershipState): Buffer {
  return Buffer.from(JSON.stringify(state), 'utf8');
}

/** A stored state; IMPULSE_ERR_ENGINE_CORRUPTION naming `where` when the bytes are not one. */
export function decodeMembership(bytes: Buffer, where: string): MembershipState {
  try {
    const raw = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    const epoch = raw['epoch'];
    if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) throw new Error('epoch');
    const pending = raw['pending'] as Record<string, unknown> | undefined;
    const pendingEpoch = pending?.['epoch'];
    if (pending !== undefined && (typeof pendingEpoch !== 'number' || !Number.isSafeInteger(pendingEpoch) || pendingEpoch <= epoch)) throw new Error('pending epoch');
    return { epoch, members: checkMembers(raw['members']), ...(pending !== undefined ? { pending: { epoch: pendingEpoch as number, members: checkMembers(pending['members']) } } : {}) };
  } catch (error) {
    throw new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', `${where}: the stored membership is damaged (${(error as Error).message})`);
  }
}

/**
 * One member's view of the membership: the rings of the committed and the
 * pending members, and the transitions, each stored durably before it takes
 * effect. Transitions run one at a time (callers serialize on `this`).
 */
export class Membership {
  private current: Ring;
  private next: Ring | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private state: MembershipState,
    private readonly vnodesPerNode: number,
    private readonly persist: (state: MembershipState) => Promise<void>,
    private readonly changed: (state: MembershipState) => void,
  ) {
    this.current = new Ring(state.members.map((member) => member.id), vnodesPerNode);
    this.next = state.pending === undefined ? undefined : new Ring(state.pending.members.map((member) => member.id), vnodesPerNode);
  }

  get view(): MembershipState {
    return this.state;
  }

  ring(): Ring {
    return this.current;
  }

  /** The ring of the change under way, if any. */
  pendingRing(): Ring | undefined {
    return this.next;
  }

  /** Every member of the current and the pending membership. */
  everyone(): MemberAddress[] {
    const all = new Map<NodeId, MemberAddress>();
    for (const member of [...this.state.members, ...(this.state.pending?.members ?? [])]) all.set(member.id, member);
    return [...all.values()].sort((a, b) => a.id - b.id);
  }

  /** Step 1: records the change to `members` with `epoch` (above the current one). Idempotent for the same change. */
  begin(epoch: number, members: readonly MemberAddress[]): Promise<void> {
    return this.serial(async () => {
      const { pending } = this.state;
      if (pending !== undefined && pending.epoch === epoch && sameMembers(pending.members, members)) return;
      if (pending !== undefined) throw membershipRejected(`another membership change (epoch ${pending.epoch}) is under way`, { epoch: pending.epoch });
      // Any later epoch is taken (a joiner starts at 0; the step carries the whole membership), an earlier one is stale.
      if (epoch <= this.state.epoch) throw membershipRejected(`the change is for epoch ${epoch}; this member is at epoch ${this.state.epoch} already`, { epoch: this.state.epoch });
      await this.store({ ...this.state, pending: { epoch, members } });
    });
  }

  /** Step 4: the pending change of `epoch` becomes the membership. Idempotent once committed. */
  commit(epoch: number): Promise<void> {
    return this.serial(async () => {
      if (this.state.epoch === epoch && this.state.pending === undefined) return;
      const { pending } = this.state;
      if (pending === undefined || pending.epoch !== epoch) throw membershipRejected(`no change of epoch ${epoch} is pending here`, { epoch: this.state.epoch });
      await this.store({ epoch, members: pending.members });
    });
  }

  /**
   * Drops the pending change of `epoch` to `members` (nothing else; another
   * change pending here is kept). The aborted change still uses up its epoch:
   * the membership stays, at `epoch`. So an epoch names one attempt, and a
   * member that missed the abort learns it from any peer's committed
   * membership at that epoch naming the old members (membership-gossip.ts).
   */
  abort(epoch: number, members: readonly MemberAddress[]): Promise<void> {
    return this.serial(async () => {
      const { pending } = this.state;
      if (pending?.epoch !== epoch || !sameMembers(pending.members, members)) return;
      await this.store({ epoch, members: this.state.members });
    });
  }

  /**
   * Takes `epoch` for the members this member already has (no change
   * pending here): the trace of a change that was aborted before this member
   * recorded it. False (nothing done) when anything else differs.
   */
  async adoptAbortedEpoch(epoch: number, members: readonly MemberAddress[]): Promise<boolean> {
    let adopted = false;
    await this.serial(async () => {
      if (this.state.pending !== undefined || epoch <= this.state.epoch || !sameMembers(members, this.state.members)) return;
      await this.store({ epoch, members: this.state.members });
      adopted = true;
    });
    return adopted;
  }

  /**
   * Takes a peer's committed membership of a later `epoch` that does not
   * name this member (`self`), which is a member here: the others removed it
   * (a forced removal while it was down) — it is no longer a member, and any
   * change it held pending is dropped. False (nothing done) when the epoch is
   * not later, the membership names this member, or this member is not a
   * member here (a joiner not yet added).
   */
  async adoptRemoval(self: NodeId, epoch: number, members: readonly MemberAddress[]): Promise<boolean> {
    let adopted = false;
    await this.serial(async () => {
      if (epoch <= this.state.epoch || members.some((member) => member.id === self) || !this.state.members.some((member) => member.id === self)) return;
      await this.store({ epoch, members });
      adopted = true;
    });
    return adopted;
  }

  private async store(state: MembershipState): Promise<void> {
    await this.persist(state);
    this.state = state;
    this.current = new Ring(state.members.map((member) => member.id), this.vnodesPerNode);
    this.next = state.pending === undefined ? undefined : new Ring(state.pending.members.map((member) => member.id), this.vnodesPerNode);
    this.changed(state);
  }

  private serial(work: () => Promise<void>): Promise<void> {
    const result = this.queue.then(work, work);
    this.queue = result.catch(() => undefined);
    return result;
  }
}

/** True when `a` and `b` list the same members with the same addresses (both sorted, as `checkMembers` returns them). */
export function sameMembers(a: readonly MemberAddress[], b: readonly MemberAddress[]): boolean {
  return a.length === b.length && a.every((member, index) => member.id === b[index]!.id && member.peerUrl === b[index]!.peerUrl);
}
