/**
 * The RESP server's Prometheus figures, rendered into the node's /metrics:
 *   impulse_resp_connections                       open connections (gauge)
 *   impulse_resp_connections_total                 accepted connections
 *   impulse_resp_connections_rejected_total        refused at the connection limit
 *   impulse_resp_disconnects_total{reason}         closed connections by reason (client, quit,
 *                                                  protocol_error, output_stalled,
 *                                                  output_buffer_full, shutdown, socket_error)
 *   impulse_resp_auth_refusals_total{reason}       refused by the token check: wrongpass, noauth, noperm
 *   impulse_resp_commands_total{command,result}    commands answered, result ok or error
 *   impulse_resp_command_duration_seconds{command} histogram, from taking the command to its reply
 * Kept in plain arrays indexed by command (one label set per command in the
 * table, plus "unknown"), like the HTTP request series (src/api/metrics.ts),
 * and rendered at scrape time: nothing per command but a few array writes.
 */
import type { AuthRefusal, CommandSpec } from './command.js';
import type { CloseReason } from './connection.js';

const BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const AUTH_REFUSALS: readonly AuthRefusal[] = ['wrongpass', 'noauth', 'noperm'];
const REASONS: readonly CloseReason[] = ['client', 'quit', 'protocol_error', 'output_stalled', 'output_buffer_full', 'shutdown', 'socket_error'];

export class RespMetrics {
  connectionsOpen = 0;
  connectionsTotal = 0;
  connectionsRejected = 0;
  commandsTotal = 0;
  private readonly disconnects = new Map<CloseReason, number>(REASONS.map((reason) => [reason, 0]));
  private readonly authRefusals = new Map<AuthRefusal, number>(AUTH_REFUSALS.map((reason) => [reason, 0]));
  private readonly names: string[];
  private readonly index = new Map<CommandSpec, number>();
  private lastSpec: CommandSpec | undefined;
  private lastIndex: number;
  private readonly ok: Float64Array;
  private readonly errors: Float64Array;
  private readonly sums: Float64Array;
  /** Non-cumulative bucket counts, `BUCKETS_SECONDS.length + 1` per command (the last is +Inf). */
  private readonly buckets: Float64Array;

  constructor(commands: readonly CommandSpec[]) {
    this.names = [...commands.map((spec) => spec.name), 'unknown'];
    commands.forEach((spec, i) => this.index.set(spec, i));
    this.lastIndex = this.names.length - 1; // lastSpec undefined: "unknown"
    this.ok = new Float64Array(this.names.length);
    this.errors = new Float64Array(this.names.length);
    this.sums = new Float64Array(this.names.length);
    this.buckets = new Float64Array(this.names.length * (BUCKETS_SECONDS.length + 1));
  }

  /** Connections closed because the client did not read its replies. */
  get outputDisconnects(): number {
    return this.disconnects.get('output_stalled')! + this.disconnects.get('output_buffer_full')!;
  }

  /** A command or AUTH refused by the token check. */
  authRefused(reason: AuthRefusal): void {
    this.authRefusals.set(reason, this.authRefusals.get(reason)! + 1);
  }

  /** Refusals by the token check so far, by reason. */
  authRefusalCount(reason: AuthRefusal): number {
    return this.authRefusals.get(reason)!;
  }

  disconnected(reason: CloseReason): void {
    this.disconnects.set(reason, this.disconnects.get(reason)! + 1);
  }

  commandDone(spec: CommandSpec | undefined, seconds: number, failed: boolean): void {
    const at = this.indexOf(spec);
    this.commandsTotal++;
    if (failed) this.errors[at]!++;
    else this.ok[at]!++;
    this.sums[at]! += seconds;
    let bucket = 0;
    while (bucket < BUCKETS_SECONDS.length && seconds > BUCKETS_SECONDS[bucket]!) bucket++;
    this.buckets[at * (BUCKETS_SECONDS.length + 1) + bucket]!++;
  }

  /** The series index of `spec` ("unknown" for undefined); the last one is kept, since a pipeline mostly repeats one command. */
  private indexOf(spec: CommandSpec | undefined): number {
    if (spec === this.lastSpec) return this.lastIndex;
    const at = spec === undefined ? this.names.length - 1 : (this.index.get(spec) ?? this.names.length - 1);
    this.lastSpec = spec;
    this.lastIndex = at;
    return at;
  }

  /** The figures in the Prometheus text format. */
  render(): string {
    const lines = [
      '# HELP impulse_resp_connections Open RESP (Redis protocol) connections.',
      '# TYPE impulse_resp_connections gauge',
      `impulse_resp_connections ${this.connectionsOpen}`,
      '# HELP impulse_resp_connections_total RESP connections accepted.',
      '# TYPE impulse_resp_connections_total counter',
      `impulse_resp_connections_total ${this.connectionsTotal}`,
      '# HELP impulse_resp_connections_rejected_total RESP connections refused at the connection limit.',
      '# TYPE impulse_resp_connections_rejected_total counter',
      `impulse_resp_connections_rejected_total ${this.connectionsRejected}`,
      '# HELP impulse_resp_disconnects_total RESP connections closed, by reason (output_stalled and output_buffer_full: the client did not read its replies).',
      '# TYPE impulse_resp_disconnects_total counter',
      ...REASONS.map((reason) => `impulse_resp_disconnects_total{reason="${reason}"} ${this.disconnects.get(reason)}`),
      '# HELP impulse_resp_auth_refusals_total RESP commands refused by the token check: wrongpass (AUTH with an unknown token), noauth (not authenticated), noperm (role or key prefix).',
      '# TYPE impulse_resp_auth_refusals_total counter',
      ...AUTH_REFUSALS.map((reason) => `impulse_resp_auth_refusals_total{reason="${reason}"} ${this.authRefusals.get(reason)}`),
      '# HELP impulse_resp_commands_total RESP commands answered, by command and result.',
      '# TYPE impulse_resp_commands_total counter',
    ];
    const used = this.names.map((_, i) => i).filter((i) => this.ok[i]! + this.errors[i]! > 0);
    for (const i of used) {
      lines.push(`impulse_resp_commands_total{command="${this.names[i]}",result="ok"} ${this.ok[i]}`);
      lines.push(`impulse_resp_commands_total{command="${this.names[i]}",result="error"} ${this.errors[i]}`);
    }
    lines.push(
      '# HELP impulse_resp_command_duration_seconds Time from taking a RESP command to its reply being ready, by command.',
      '# TYPE impulse_resp_command_duration_seconds histogram',
    );
    for (const i of used) {
      const label = `command="${this.names[i]}"`;
      let cumulative = 0;
      for (let b = 0; b <= BUCKETS_SECONDS.length; b++) {
        cumulative += this.buckets[i * (BUCKETS_SECONDS.length + 1) + b]!;
        lines.push(`impulse_resp_command_duration_seconds_bucket{le="${b < BUCKETS_SECONDS.length ? BUCKETS_SECONDS[b] : '+Inf'}",${label}} ${cumulative}`);
      }
      lines.push(`impulse_resp_command_duration_seconds_sum{${label}} ${this.sums[i]}`);
      lines.push(`impulse_resp_command_duration_seconds_count{${label}} ${this.ok[i]! + this.errors[i]!}`);
    }
    return lines.join('\n') + '\n';
  }
}
