/**
 * TEST-ONLY. The runtime control channel of `impulse serve --test-control`:
 * newline-delimited JSON commands on the process's standard input, from the
 * chaos runner that started it (nobody else holds that pipe). Each command is
 * applied, then logged; a malformed one is logged and ignored; end of input is
 * ignored (the runner may die first; the member keeps running).
 *
 *   {"clock":{"jumpMs":5000}}                       time leaps 5 s forward
 *   {"clock":{"rate":2}}                            time runs twice as fast (0.5: half as fast)
 *   {"clock":{"strobe":{"periodMs":200,"jumpMs":300}}}   leaps 300 ms every 200 ms
 *   {"clock":"reset"}                               normal rate, strobe off
 *   {"disk":"fsync-error@p=1"}                      disk fault policies (testkit/vfs/fault-spec.ts grammar)
 *   {"disk":""}                                     no disk faults
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { FaultClock } from './fault-clock.js';

/** Longest command line; longer input is discarded up to the next newline. */
export const CONTROL_LINE_BYTES_MAX = 8192;

/** What a disk hook must offer the control channel (testkit/chaos/disk-faults.ts). */
export interface DiskFaultControl {
  /** Replaces the disk's fault policies with `spec` ("" = none); returns their description. Throws on a malformed spec. */
  apply(spec: string): string;
}

export interface ControlTargets {
  readonly clock: FaultClock;
  readonly disk: DiskFaultControl | undefined;
  readonly logger: Logger;
}

/** Reads commands from `input` until it ends. */
export function listenForControl(input: Readable, targets: ControlTargets): void {
  let pending = '';
  let discarding = false;
  input.setEncoding('utf8');
  input.on('data', (chunk: string) => {
    pending += chunk;
    for (let newline = pending.indexOf('\n'); newline !== -1; newline = pending.indexOf('\n')) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (!discarding) applyLine(line, targets);
      discarding = false;
    }
    if (pending.length > CONTROL_LINE_BYTES_MAX) {
      targets.logger.warn({ bytes: pending.length }, 'test control: command line too long; discarded');
      pending = '';
      discarding = true;
    }
  });
  input.on('error', () => undefined);
}

/** Applies one command line (exported for tests). */
export function applyLine(line: string, targets: ControlTargets): void {
  if (line.trim() === '') return;
  try {
    const command = JSON.parse(line) as { clock?: unknown; disk?: unknown };
    if (command.clock !== undefined) applyClock(command.clock, targets.clock);
    else if (typeof command.disk === 'string') {
      if (targets.disk === undefined) throw new Error('this member has no disk fault hook (its engine does not write through the Vfs seam)');
      const described = targets.disk.apply(command.disk);
      targets.logger.warn({ disk: described }, 'test control: disk faults set');
      return;
    } else throw new Error('expected {"clock":...} or {"disk":"<spec>"}');
    targets.logger.warn({ command }, 'test control: applied');
  } catch (error) {
    targets.logger.warn({ line: line.slice(0, 200), err: (error as Error).message }, 'test control: command refused');
  }
}

function applyClock(command: unknown, clock: FaultClock): void {
  if (command === 'reset') return clock.reset();
  if (typeof command !== 'object' || command === null) throw new Error('clock: expected "reset" or an object');
  const { jumpMs, rate, strobe } = command as { jumpMs?: unknown; rate?: unknown; strobe?: { periodMs?: unknown; jumpMs?: unknown } };
  if (typeof jumpMs === 'number') return clock.jump(jumpMs);
  if (typeof rate === 'number') return clock.setRate(rate);
  if (typeof strobe === 'object' && strobe !== null && typeof strobe.periodMs === 'number' && typeof strobe.jumpMs === 'number') {
    return clock.startStrobe(strobe.periodMs, strobe.jumpMs);
  }
  throw new Error('clock: expected jumpMs, rate or strobe {periodMs, jumpMs}');
}
