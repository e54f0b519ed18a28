/**
 * What the cluster commands print: `impulse member list` as a table, the
 * `impulse serve` command that starts a member `impulse member add` added,
 * and, in leaderless mode, what a membership change did.
 */
import type { ClusterView } from '../protocol/cluster-view.js';
import type { ShardsView } from '../protocol/shard-view.js';

/** The view as a table: one line per member, then the leader and the indexes. */
export function formatClusterView(view: ClusterView): string {
  const header = ['ID', 'ROLE', 'PEER', 'CLIENT', 'MATCH', 'LAG', 'CONTACT'];
  const rows = view.members.map((member) => [
    String(member.id) + (member.id === view.nodeId ? '*' : ''),
    member.role,
    member.peerUrl ?? '-',
    member.clientUrl ?? '-',
    member.matchIndex === null ? '-' : String(member.matchIndex),
    member.lag === null ? '-' : String(member.lag),
    member.lastContactMs === null ? '-' : `${member.lastContactMs} ms`,
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]): string => cells.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd();
  const state = view.state === 'running' ? '' : ` — this node is ${view.state}${view.reason !== undefined ? `: ${view.reason}` : ''}`;
  return [
    `cluster ${view.clusterId}, seen from node ${view.nodeId} (*)${state}`,
    line(header),
    ...rows.map(line),
    `leader: ${view.leader === null ? 'none' : `node ${view.leader}`}  term ${view.term}  commit ${view.commitIndex}  applied ${view.appliedIndex}`,
    view.leader !== view.nodeId && view.leader !== null ? '(match, lag and contact are known on the leader only)' : '',
  ]
    .filter((text) => text.length > 0)
    .join('\n') + '\n';
}

/** `impulse shards`: one line per shard, ranges shown as text when printable, else as hex. */
export function formatShardsView(view: ShardsView): string {
  const key = (hex: string | null, none: string): string => {
    if (hex === null || hex === '') return none;
    const text = Buffer.from(hex, 'hex').toString('utf8');
    return /^[\x21-\x7e]+$/.test(text) ? JSON.stringify(text) : `0x${hex}`;
  };
  const figure = (value: number | null | undefined): string => (value === null || value === undefined ? '-' : String(value)); // undefined: a member from before the field
  // SIZE and REQ/S: the leader's report at the meta leader (the same from any member), else the answering member's own count.
  const header = ['SHARD', 'START', 'END', 'EPOCH', 'REPLICAS', 'LEADER', 'KEYS', 'BYTES', 'SIZE', 'REQ/S', 'APPLIED', 'IDLE'];
  const rows = view.shards.map((shard) => [
    String(shard.id),
    key(shard.start, '-inf'),
    key(shard.end, '+inf'),
    String(shard.epoch),
    shard.replicas.join(','),
    figure(shard.leader),
    figure(shard.keyCount),
    figure(shard.diskBytes),
    figure(shard.reportedSizeBytes ?? shard.sizeBytes),
    figure(shard.requestsPerSecond),
    figure(shard.appliedIndex),
    shard.quiesced ? 'yes' : 'no',
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]): string => cells.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd();
  const title = view.sharded ? `${view.shards.length} shards, map version ${view.version}` : 'not sharded: group 1 holds every key';
  const merges = view.shards.filter((shard) => shard.mergeInto !== undefined).map((shard) => `merge in flight: shard ${shard.id} merges into shard ${shard.mergeInto}${shard.mergeAgeMs !== undefined ? ` (${Math.round(shard.mergeAgeMs / 1000)} s)` : ''}${shard.mergeAbort === true ? ', rolling back' : ''}`);
  const aligning = view.shards.filter((shard) => shard.alignTo !== undefined).map((shard) => `aligning for a merge: shard ${shard.id}'s replicas move onto shard ${shard.alignTo}'s`);
  return [`cluster ${view.clusterId}, seen from node ${view.nodeId}: ${title}`, line(header), ...rows.map(line), ...merges, ...aligning].join('\n') + '\n';
}

/**
 * The `impulse serve` command for member `id`, just added at `peerUrl`: it
 * joins cluster `view.clusterId` and finds the current members at their peer
 * addresses.
 */
export function joinCommand(view: ClusterView, id: number, peerUrl: string, clientUrl: string | undefined): string {
  const members = view.members.filter((member) => member.peerUrl !== null).map((member) => `${member.id}=${member.peerUrl}`);
  const colon = peerUrl.lastIndexOf(':');
  const peerHost = peerUrl.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const client = clientUrl === undefined ? undefined : new URL(clientUrl);
  const parts = [
    'impulse serve',
    `--node-id ${id}`,
    `--peer-host ${peerHost} --peer-port ${peerUrl.slice(colon + 1)}`,
    ...(client !== undefined ? [`--host ${client.hostname.replace(/^\[(.*)\]$/, '$1')} --port ${client.port || '80'} --advertise-client ${clientUrl}`] : []),
    `--data-dir data/node-${id}`,
    `--join --cluster-id ${view.clusterId}`,
    `--initial-cluster ${members.join(',')}`,
    // A cluster whose members serve HTTPS runs mutual TLS too (impulse cluster --certs, docs/security.md): the new member needs a certificate naming its id.
    ...(view.members.some((member) => member.clientUrl?.startsWith('https:') === true) ? [`--tls-cert node-${id}.crt --tls-key node-${id}.key --peer-tls-ca ca.crt`] : []),
  ];
  return parts.join(' ');
}

/**
 * What `impulse member add|remove` prints when the answering cluster is
 * leaderless (its view carries `membershipChange`): the change's epoch, state
 * and step, and what to do next — not the Raft learner wording.
 */
export function leaderlessMemberMessage(view: ClusterView, action: 'add' | 'remove' | 'force-remove', id: number): string | undefined {
  const change = view.membershipChange;
  if (change === undefined) return undefined;
  const what = action === 'add' ? `node ${id} joins the leaderless cluster ${view.clusterId}` : `node ${id} leaves the leaderless cluster ${view.clusterId}`;
  const where = `membership change epoch ${change.epoch} to members ${change.members.join(',')}: ${change.state} (step ${change.step}, ${change.elapsedMs} ms)`;
  if (change.state === 'failed') return `${what} — ${where}: ${change.error?.message ?? 'failed'}\n`;
  const next =
    change.state === 'running'
      ? 'it goes on in the background (each member moves the keys it gains); `impulse member list -o json` shows membershipChange until it says done'
      : action === 'add'
        ? `node ${id} now owns its ranges and holds their keys`
        : action === 'remove'
          ? `node ${id} handed its keys to their owners; stop it and delete its data directory`
          : `node ${id} is no longer a member; every member runs an anti-entropy repair now to refill its ranges from the surviving replicas. If it comes back it finds itself removed: delete its data directory before adding it again`;
  return `${what} — ${where}\n${next}\n`;
}
