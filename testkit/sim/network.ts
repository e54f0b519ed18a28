/**
 * The simulated network between nodes: every message is delayed (mostly a
 * few ms, sometimes tens, now and then hundreds: that reorders), may be lost
 * or duplicated, and is dropped when the link is cut at sending or at arrival.
 * Links are directed, so partitions can be one-way (A hears B, B does not hear
 * A). Snapshot streams travel as chunks: each chunk may be lost (the transfer
 * then fails, as a broken connection would) and, while the `slow-snapshots`
 * fault is on, takes far longer.
 */
import type { NodeId } from '../../src/raft/types.js';
import type { SimWorld } from './world.js';

export class SimNetwork {
  /** Cut directed links, "from>to"; empty when the network is whole. */
  private cut = new Set<string>();
  lossy = false;
  slowSnapshots = false;
  readonly baseLoss: number;
  readonly baseDuplication: number;

  /** `lossless`: no random loss or duplication (scripted scenarios); delays stay. */
  constructor(
    private readonly world: SimWorld,
    lossless = false,
  ) {
    this.baseLoss = lossless ? 0 : 0.01;
    this.baseDuplication = lossless ? 0 : 0.01;
  }

  get partitioned(): boolean {
    return this.cut.size > 0;
  }

  canSend(from: NodeId, to: NodeId): boolean {
    return !this.cut.has(`${from}>${to}`);
  }

  /** Cuts every link between different groups (both ways). Nodes in no group keep all links. */
  partition(groups: readonly (readonly NodeId[])[], connectedPairs: readonly [NodeId, NodeId][] = []): void {
    const allowed = new Set<string>();
    for (const group of groups) for (const a of group) for (const b of group) allowed.add(`${a}>${b}`);
    for (const [a, b] of connectedPairs) {
      allowed.add(`${a}>${b}`);
      allowed.add(`${b}>${a}`);
    }
    const members = groups.flat();
    this.cut = new Set();
    for (const a of members) for (const b of members) if (a !== b && !allowed.has(`${a}>${b}`)) this.cut.add(`${a}>${b}`);
  }

  /** Cuts only the links from each of `from` to each of `to`. */
  cutOneWay(from: readonly NodeId[], to: readonly NodeId[]): void {
    for (const a of from) for (const b of to) if (a !== b) this.cut.add(`${a}>${b}`);
  }

  heal(): void {
    this.cut = new Set();
  }

  /** Sends one message: `deliver` runs at the receiver later, zero, one or two times. */
  send(from: NodeId, to: NodeId, deliver: () => void): void {
    const world = this.world;
    world.stats.messagesSent++;
    const loss = this.lossy ? 0.2 : this.baseLoss;
    const duplication = this.lossy ? 0.15 : this.baseDuplication;
    if (!this.canSend(from, to) || world.random.chance(loss)) {
      world.stats.messagesDropped++;
      return;
    }
    const copies = world.random.chance(duplication) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      world.at(this.delayMs(), () => {
        if (!this.canSend(from, to)) {
          world.stats.messagesDropped++;
          return;
        }
        deliver();
      });
    }
  }

  /**
   * Streams `chunkCount` chunks from `from` to `to`, then runs `deliver` at
   * the receiver, whose answer travels back; `done(null)` at the sender when
   * the receiver accepted, `done(error)` when a chunk or the answer was lost
   * or the receiver refused.
   */
  stream(from: NodeId, to: NodeId, chunkCount: number, deliver: (answer: (error: Error | null) => void) => void, done: (error: Error | null) => void): void {
    const world = this.world;
    let durationMs = 0;
    let lost = false;
    for (let i = 0; i < chunkCount; i++) {
      durationMs += this.delayMs() * (this.slowSnapshots ? 20 : 1);
      if (world.random.chance(this.lossy ? 0.1 : this.baseLoss)) lost = true;
    }
    world.stats.messagesSent += chunkCount;
    world.at(durationMs, () => {
      if (lost || !this.canSend(from, to)) {
        world.stats.messagesDropped++;
        done(new Error(`snapshot stream n${from}->n${to} broke`));
        return;
      }
      deliver((error) => {
        world.at(this.delayMs(), () => {
          if (error === null && !this.canSend(to, from)) done(new Error(`snapshot acknowledgement n${to}->n${from} lost`));
          else done(error);
        });
      });
      // Now and then the stream arrives a second time, much later (a retry whose first try had made it).
      if (world.random.chance(this.baseDuplication * 5)) world.at(50 + world.random.next() * 200, () => deliver(() => {}));
    });
  }

  /** Mostly fast, sometimes slow: the spread reorders messages. */
  private delayMs(): number {
    const random = this.world.random;
    let delayMs = 0.5 + random.next() * 3;
    if (random.chance(this.lossy ? 0.3 : 0.05)) delayMs += random.next() * 60;
    if (random.chance(0.02)) delayMs += 50 + random.next() * 250; // stuck in a queue somewhere
    return delayMs;
  }
}
