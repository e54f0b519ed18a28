/**
 * A local etcd cluster for side-by-side benchmarks (Debian's `etcd-server`,
 * 3.4): N members on 127.0.0.1 with free ports, data in a temporary
 * directory, each member in its own process group. `start` waits until a
 * leader is elected and every member answers; `stop` kills only what it
 * started and removes the data.
 *
 * Clients use etcd's JSON gateway: `POST /v3/kv/put {"key","value"}` and
 * `POST /v3/kv/range {"key"}` with base64 keys and values. Range reads are
 * linearizable by default in etcd (serializable only when asked), as ours are.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reapOnExit } from '../../testkit/process/member-process.js';
import { freePorts, killGroup, waitFor } from './processes.js';

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  /** Where the member listens for peers. */
  readonly peerUrl: string;
  /** The peer URL the other members dial (the listen URL, or a proxy in front of it). */
  readonly advertisePeerUrl: string;
  process: ChildProcess | undefined;
}

export interface EtcdCluster {
  readonly members: EtcdMember[];
  /** The client URL of the current leader. */
  leaderUrl(): Promise<string>;
  /** kill -9 of one member (its process group). */
  kill(member: EtcdMember): Promise<void>;
  /** Starts a killed member again on its data. */
  restart(member: EtcdMember): Promise<void>;
  stop(): Promise<void>;
}

/** Installs etcd from Debian's packages when it is missing (CI machines start bare). */
export function ensureEtcd(): void {
  try {
    execFileSync('etcd', ['--version'], { stdio: 'ignore' });
  } catch {
    console.log('etcd is missing: installing etcd-server from Debian packages');
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', 'etcd-server'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
}

/**
 * `advertisePeerUrl(index, listenPeerUrl)`: the URL the other members should
 * dial for member `index` (e.g. a proxy in front of its listen URL, as the
 * resilience benchmark does); default the listen URL itself.
 */
export async function startEtcdCluster(size: number, options: { advertisePeerUrl?: (index: number, listenPeerUrl: string) => Promise<string> | string } = {}): Promise<EtcdCluster> {
  ensureEtcd();
  const dataRoot = await mkdtemp(join(tmpdir(), 'impulse-etcd-'));
  const ports = await freePorts(size * 2);
  const members: EtcdMember[] = [];
  for (let i = 0; i < size; i++) {
    const peerUrl = `http://127.0.0.1:${ports[i * 2 + 1]}`;
    members.push({ name: `etcd${i + 1}`, clientUrl: `http://127.0.0.1:${ports[i * 2]}`, peerUrl, advertisePeerUrl: (await options.advertisePeerUrl?.(i, peerUrl)) ?? peerUrl, process: undefined });
  }
  const initialCluster = members.map((member) => `${member.name}=${member.advertisePeerUrl}`).join(',');
  const launch = (member: EtcdMember, state: 'new' | 'existing'): void => {
    member.process = spawn(
      'etcd',
      [
        '--name', member.name,
        '--data-dir', join(dataRoot, member.name),
        '--listen-client-urls', member.clientUrl,
        '--advertise-client-urls', member.clientUrl,
        '--listen-peer-urls', member.peerUrl,
        '--initial-advertise-peer-urls', member.advertisePeerUrl,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', state,
        '--initial-cluster-token', 'impulse-bench',
        '--log-level', 'error',
      ],
      { detached: true, stdio: 'ignore' },
    );
    reapOnExit(member.process); // an interrupted benchmark leaves no etcd behind
  };
  for (const member of members) launch(member, 'new');
  const cluster: EtcdCluster = {
    members,
    async leaderUrl() {
      for (const member of members) {
        if (member.process === undefined) continue;
        const status = await etcdStatus(member.clientUrl).catch(() => undefined);
        if (status !== undefined && status.leader === status.memberId) return member.clientUrl;
      }
      throw new Error('no etcd leader');
    },
    async kill(member) {
      if (member.process === undefined) return;
      await killGroup(member.process);
      member.process = undefined;
    },
    async restart(member) {
      launch(member, 'existing');
      await waitFor(async () => (await etcdStatus(member.clientUrl).catch(() => undefined)) !== undefined, 20_000, `etcd ${member.name} to answer`);
    },
    async stop() {
      for (const member of members) await cluster.kill(member);
      await rm(dataRoot, { recursive: true, force: true });
    },
  };
  try {
    await waitFor(async () => {
      for (const member of members) if ((await etcdStatus(member.clientUrl).catch(() => undefined))?.leader === undefined) return false;
      return true;
    }, 30_000, 'etcd to elect a leader');
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

/** The maintenance status of one member: its id and the leader it knows (undefined while there is none). */
export async function etcdStatus(clientUrl: string): Promise<{ memberId: string; leader: string | undefined }> {
  const response = await fetch(`${clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(2000) });
  const body = (await response.json()) as { header?: { member_id?: string }; leader?: string };
  if (body.header?.member_id === undefined) throw new Error(`etcd status without a member id: ${JSON.stringify(body)}`);
  return { memberId: body.header.member_id, leader: body.leader === undefined || body.leader === '0' ? undefined : body.leader };
}

/** One etcd put through the JSON gateway; resolves when etcd acknowledged it. */
export async function etcdPut(clientUrl: string, key: string, value: string, timeoutMs = 2000): Promise<void> {
  const body = JSON.stringify({ key: Buffer.from(key).toString('base64'), value: Buffer.from(value).toString('base64') });
  const response = await fetch(`${clientUrl}/v3/kv/put`, { method: 'POST', body, signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new Error(`etcd put: HTTP ${response.status}`);
  const answer = (await response.json()) as { error?: string };
  if (answer.error !== undefined) throw new Error(`etcd put: ${answer.error}`);
}
