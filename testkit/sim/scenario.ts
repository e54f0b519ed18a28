/**
 * Scripted scenarios: short, deterministic scripts that drive the simulated
 * cluster (cluster.ts: the product driver on in-memory seams) into one exact
 * situation — the ones where classic Raft bugs show — with the same invariant
 * checks and linearizability check as the random sweep. The random sweep finds
 * some bugs in a fraction of a percent of seeds; a scenario finds its bug
 * every time. The format follows etcd's datadriven testdata in spirit: one
 * file per scenario under testdata/, one command per line, `#` comments.
 *
 *   # catches: grantSecondVote          mutants this scenario must catch
 *   cluster 3 preVote=off checkQuorum=off compact=8 catchUp=0 entriesPerAppend=1 inflight=1
 *   tick 1,2 [times]        tick these nodes (or `all`), settling after each tick
 *   campaign 1              tick node 1 until it campaigns (or leads), then settle
 *   elect 1                 tick node 1 until it leads
 *   put 1 key value         a client write at node 1 (answered or not, it enters the history)
 *   get 1 key               a client read at node 1
 *   settle                  run every queued event (deliveries, fsyncs) until none is left
 *   cut 1,2 -> 3            cut links one way (isolate 3: both ways with everyone); heal: all back
 *   drop 1 -> 3 append above 4   drop appends from 1 to 3 carrying an entry past index 4
 *   drop 1 -> 3 heartbeat   drop every message of a type from 1 to 3
 *   trim 1 -> 3 above 4     appends from 1 to 3 arrive without their entries past index 4
 *   drop clear              forget every drop and trim rule
 *   crash 2                 power loss (every unsynced write is lost); restart 2
 *   add-learner 1 4 | add-voter 1 4 | remove 1 4 | transfer 1 2   (add-learner creates node 4)
 *   replay-snapshot         the last snapshot stream arrives again (a duplicate)
 *   expect leader 1 | expect role 2 follower | expect stopped 4
 *
 * Expectations document the correct core's path and are checked only when no
 * mutant is switched on (a broken core may take another path).
 */
import { DEFAULT_RAFT_TIMING } from '../../src/raft/raft.js';
import type { Message, NodeId, RaftMutations } from '../../src/raft/types.js';
import { AssertionError } from '../../src/util/assert.js';
import type { Random } from '../../src/util/random.js';
import { checkKvLinearizability, type KvInput, type Operation } from '../check/linearizability.js';
import { SimCluster, type ClientOp, type RunConfig, type SimNode } from './cluster.js';
import type { ViolationKind } from './invariants.js';
import { SimWorld } from './world.js';

export interface ScenarioViolation {
  readonly kind: ViolationKind;
  readonly message: string;
  readonly line: number;
}

export interface ScenarioResult {
  /** Mutants the file says it catches. */
  readonly catches: readonly string[];
  readonly violations: readonly ScenarioViolation[];
  /** Expectations that did not hold (checked only without mutants). */
  readonly failedExpectations: readonly string[];
}

/** What a crash keeps of unsynced writes: nothing (scripts want the worst case, exactly). */
const LOSE_EVERYTHING: Random = { next: () => 0, int: () => 0, between: (min) => min, chance: () => false, fork: () => LOSE_EVERYTHING };
const EVENTS_PER_SETTLE_MAX = 200_000;
const TICKS_TO_CAMPAIGN_MAX = 200;

/** Drops messages of `type` from `from` to `to` (appends only when they carry an entry above `above`), or trims them. */
interface DropRule {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly type: string;
  readonly above: number;
  /** Instead of dropping an append, deliver it without its entries above `above` (still a valid append). */
  readonly trim: boolean;
}

class ScenarioRun {
  readonly world: SimWorld;
  cluster: SimCluster | null = null;
  readonly violations: ScenarioViolation[] = [];
  readonly failedExpectations: string[] = [];
  readonly history: Operation[] = [];
  private drops: DropRule[] = [];
  line = 0;

  constructor(
    private readonly mutations: RaftMutations | undefined,
    trace?: (line: string) => void,
  ) {
    this.world = new SimWorld(1, trace);
  }

  get checkExpectations(): boolean {
    return this.mutations === undefined;
  }

  private node(word: string | undefined): SimNode {
    const node = this.cluster?.nodes.get(Number(word));
    if (node === undefined) throw new Error(`line ${this.line}: no node ${word}`);
    return node;
  }

  private ids(word: string | undefined): NodeId[] {
    if (word === 'all') return [...this.cluster!.nodes.keys()];
    return (word ?? '').split(',').map((id) => this.node(id).id);
  }

  run(words: readonly string[]): void {
    const [command, ...args] = words;
    if (command === 'cluster') return this.createCluster(args);
    if (this.cluster === null) throw new Error(`line ${this.line}: start with a cluster command`);
    const cluster = this.cluster;
    switch (command) {
      case 'tick':
        for (let i = 0; i < Number(args[1] ?? 1); i++) {
          for (const id of this.ids(args[0])) this.node(String(id)).driver?.tick();
          this.settle();
        }
        return;
      case 'campaign':
      case 'elect':
        return this.campaign(this.node(args[0]), command === 'elect');
      case 'put':
        return this.request(this.node(args[0]), { kind: 'put', key: args[1]!, value: args[2]! });
      case 'get':
        return this.request(this.node(args[0]), { kind: 'get', key: args[1]! });
      case 'settle':
        return this.settle();
      case 'cut':
        return cluster.network.cutOneWay(this.ids(args[0]), this.ids(args[2]));
      case 'isolate': {
        const id = this.node(args[0]).id;
        const others = [...cluster.nodes.keys()].filter((other) => other !== id);
        cluster.network.cutOneWay([id], others);
        cluster.network.cutOneWay(others, [id]);
        return;
      }
      case 'heal':
        return cluster.network.heal();
      case 'drop':
      case 'trim':
        return this.drop(args, command === 'trim');
      case 'crash':
        return cluster.crash(this.node(args[0]), undefined, false, LOSE_EVERYTHING);
      case 'restart':
        cluster.boot(this.node(args[0]));
        return this.settle();
      case 'replay-snapshot': {
        const stream = cluster.lastStream;
        if (stream === null) throw new Error(`line ${this.line}: no snapshot stream to replay`);
        cluster.deliverSnapshot(stream.to, stream.from, stream.header, stream.chunks, () => {});
        return this.settle();
      }
      case 'add-learner':
      case 'add-voter':
      case 'remove': {
        const type = command === 'remove' ? 'remove-node' : command;
        if (!cluster.nodes.has(Number(args[1]))) cluster.createNode(Number(args[1]), []);
        cluster.proposeConfChange(this.node(args[0]), { type, nodeId: Number(args[1]), context: new TextEncoder().encode(`addr-${args[1]}`) });
        return this.settle();
      }
      case 'transfer':
        cluster.transferLeadership(this.node(args[0]), Number(args[1]));
        return this.settle();
      case 'expect':
        return this.expect(args);
      default:
        throw new Error(`line ${this.line}: unknown command ${command}`);
    }
  }

  private createCluster(args: readonly string[]): void {
    const count = Number(args[0]);
    const options = new Map(args.slice(1).map((arg) => arg.split('=') as [string, string]));
    const flag = (name: string, fallback: boolean): boolean => (options.has(name) ? options.get(name) === 'on' : fallback);
    const number = (name: string, fallback: number): number => Number(options.get(name) ?? fallback);
    const voters = Array.from({ length: count }, (_, i) => i + 1);
    const config: RunConfig = {
      initialConf: { voters, learners: [] },
      raft: {
        ...DEFAULT_RAFT_TIMING,
        learnerCatchUpEntriesMax: 8,
        preVote: flag('preVote', true),
        checkQuorum: flag('checkQuorum', true),
        entriesPerAppendMax: number('entriesPerAppend', DEFAULT_RAFT_TIMING.entriesPerAppendMax),
        inflightAppendsMax: number('inflight', DEFAULT_RAFT_TIMING.inflightAppendsMax),
        ...(this.mutations !== undefined ? { mutations: this.mutations } : {}),
      },
      limits: { compactThresholdEntries: number('compact', Number.MAX_SAFE_INTEGER), snapshotCatchUpEntries: number('catchUp', 0) },
    };
    const violate = (kind: ViolationKind, message: string): void => {
      this.violations.push({ kind, message, line: this.line });
    };
    this.cluster = new SimCluster(this.world, config, violate, true);
    this.cluster.rewrite = (from, to, message) => {
      let out: Message | null = message;
      for (const rule of this.drops) if (out !== null) out = applyRule(rule, from, to, out);
      return out;
    };
    for (const id of voters) this.cluster.createNode(id, voters);
    this.settle();
  }

  /** `drop A -> B type [above N]`, `drop clear`, or (trim) `trim A -> B above N`. */
  private drop(args: readonly string[], trim: boolean): void {
    if (args[0] === 'clear') {
      this.drops = [];
      return;
    }
    const rest = trim ? ['append', ...args.slice(3)] : args.slice(3);
    const above = rest[1] === 'above' ? Number(rest[2]) : -1;
    for (const from of this.ids(args[0])) for (const to of this.ids(args[2])) this.drops.push({ from, to, type: rest[0]!, above, trim });
  }

  /** Runs queued events until none is left (no automatic ticks here, so the queue drains). */
  settle(): void {
    const world = this.world;
    for (let n = 0; n < EVENTS_PER_SETTLE_MAX && this.violations.length === 0; n++) {
      const event = world.queue.pop();
      if (event === undefined) return;
      world.nowMs = event.timeMs;
      try {
        event.run();
        this.cluster!.checkAfterEvent();
      } catch (error) {
        if (!(error instanceof AssertionError)) throw error;
        this.violations.push({ kind: 'core-assertion', message: error.message, line: this.line });
      }
    }
    if (this.violations.length === 0) throw new Error(`line ${this.line}: the cluster did not settle`);
  }

  private campaign(node: SimNode, untilLeader: boolean): void {
    for (let i = 0; i < TICKS_TO_CAMPAIGN_MAX; i++) {
      const role = node.driver?.node.role ?? 'follower';
      if (role === 'leader' || (!untilLeader && role !== 'follower')) break;
      node.driver?.tick();
      if (!untilLeader && node.driver?.node.role !== 'follower') break;
      this.settle();
    }
    this.settle();
    if (untilLeader && this.checkExpectations && node.driver?.node.role !== 'leader') this.failedExpectations.push(`line ${this.line}: n${node.id} did not become leader`);
  }

  private request(node: SimNode, input: KvInput): void {
    const operation: Operation = { clientId: this.history.length + 1, input, call: this.world.nowMs, return: undefined, output: undefined };
    this.history.push(operation);
    const op: ClientOp = input.kind === 'get' ? { kind: 'get', key: input.key } : { kind: 'write', command: { clientId: operation.clientId, requestId: 1, write: input as Exclude<KvInput, { kind: 'get' }> } };
    this.cluster!.request(node.id, op, (reply) => {
      if (reply.kind === 'ok') {
        operation.return = this.world.nowMs;
        operation.output = reply.output;
      } else if (reply.kind === 'rejected' || input.kind === 'get') {
        this.history.splice(this.history.indexOf(operation), 1); // certainly no effect: no trace
      }
    });
    this.settle();
  }

  private expect(args: readonly string[]): void {
    if (!this.checkExpectations) return;
    const node = this.node(args[1]);
    const raft = node.driver?.node;
    const fail = (what: string): void => {
      this.failedExpectations.push(`line ${this.line}: expected ${args.join(' ')}, ${what}`);
    };
    if (args[0] === 'leader' && raft?.role !== 'leader') fail(`n${node.id} is ${raft?.role ?? node.status}`);
    if (args[0] === 'role' && raft?.role !== args[2]) fail(`n${node.id} is ${raft?.role ?? node.status}`);
    if (args[0] === 'stopped' && node.status !== 'removed') fail(`n${node.id} is ${node.status}`);
  }
}

function applyRule(rule: DropRule, from: NodeId, to: NodeId, message: Message): Message | null {
  if (rule.from !== from || rule.to !== to || message.type !== rule.type) return message;
  if (message.type !== 'append' || rule.above < 0) return null;
  if (!message.entries.some((entry) => entry.index > rule.above)) return message;
  if (!rule.trim) return null;
  return { ...message, entries: message.entries.filter((entry) => entry.index <= rule.above) };
}

/** Runs a scenario script; `mutations` switches on a broken core; `trace` receives the simulator's trace. */
export function runScenario(text: string, mutations?: RaftMutations, trace?: (line: string) => void): ScenarioResult {
  const run = new ScenarioRun(mutations, trace);
  let catches: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    run.line = i + 1;
    const line = lines[i]!.trim();
    const declared = /^#\s*catches:\s*(.*)$/.exec(line);
    if (declared !== null) catches = declared[1]!.split(',').map((name) => name.trim()).filter((name) => name.length > 0);
    const words = line.replace(/#.*$/, '').trim().split(/\s+/).filter((word) => word.length > 0);
    if (words.length === 0) continue;
    trace?.(`> ${line}`);
    run.run(words);
    if (run.violations.length > 0) break;
  }
  if (run.violations.length === 0 && run.history.length > 0) {
    const check = checkKvLinearizability(run.history, { stepBudget: 1_000_000 });
    if (check.verdict === 'not-linearizable') run.violations.push({ kind: 'linearizability', message: check.explanation, line: lines.length });
  }
  return { catches, violations: run.violations, failedExpectations: run.failedExpectations };
}
