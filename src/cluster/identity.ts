/**
 * Who a data directory belongs to: `<data-dir>/member.json`, written once,
 * before anything else of the member, at its first start:
 *
 *   {"format":"impulse-member/1","clusterId":"…","nodeId":2,"bootstrap":"initial"|"join",
 *    "initialCluster":{"1":"10.0.0.1:7171",…}}
 *
 * On every later start the flags must agree with it: another `--node-id` or
 * another cluster id (`--cluster-id`, or the one derived from
 * `--cluster-token` and `--initial-cluster`) is refused with one sentence, so
 * a member never joins a cluster it does not belong to and two members never
 * share an id. Everything else about the membership comes from the member's
 * replicated state, so `--initial-cluster` only bootstraps.
 *
 * The file is replaced write-fsync-rename-fsync-dir through the Vfs; a
 * leftover `member.json.tmp` is an unfinished first write and is ignored.
 */
import { ImpulseError } from '../errors.js';
import type { NodeId } from '../raft/types.js';
import { type Vfs, isNotFound, joinPath } from '../vfs/vfs.js';
import type { ClusterConfig } from './config.js';

export const IDENTITY_FILE = 'member.json';
const FORMAT = 'impulse-member/1';

export interface MemberIdentity {
  readonly clusterId: string;
  readonly nodeId: NodeId;
  /** How the member started: as one of the initial voters, or waiting to be added. */
  readonly bootstrap: 'initial' | 'join';
  /** The --initial-cluster of the first start (the voters it bootstrapped, or the members it joined). */
  readonly initialCluster: ReadonlyMap<NodeId, string>;
}

/**
 * The identity recorded in `dataDir`, checked against `config`; on a first
 * start, the identity of `config`, written durably. `isNew` says which.
 */
export async function claimIdentity(vfs: Vfs, dataDir: string, config: ClusterConfig): Promise<{ identity: MemberIdentity; isNew: boolean }> {
  const recorded = await readIdentity(vfs, dataDir);
  if (recorded !== undefined) {
    if (recorded.nodeId !== config.nodeId) {
      throw configInvalid(`${joinPath(dataDir, IDENTITY_FILE)} belongs to node ${recorded.nodeId}, not --node-id ${config.nodeId}; start it as node ${recorded.nodeId} or use another --data-dir`);
    }
    if (recorded.clusterId !== config.clusterId) {
      throw configInvalid(
        `${joinPath(dataDir, IDENTITY_FILE)} belongs to cluster ${recorded.clusterId}; the flags name cluster ${config.clusterId} ` +
          '(give the --cluster-token and --initial-cluster of its first start, or --cluster-id, or use another --data-dir)',
      );
    }
    return { identity: recorded, isNew: false };
  }
  const identity: MemberIdentity = { clusterId: config.clusterId, nodeId: config.nodeId, bootstrap: config.join ? 'join' : 'initial', initialCluster: config.initialCluster };
  await writeIdentity(vfs, dataDir, identity);
  return { identity, isNew: true };
}

/** The identity in `dataDir`, or undefined when there is none. IMPULSE_ERR_ENGINE_CORRUPTION when the file is malformed. */
export async function readIdentity(vfs: Vfs, dataDir: string): Promise<MemberIdentity | undefined> {
  const path = joinPath(dataDir, IDENTITY_FILE);
  let bytes: Buffer;
  try {
    bytes = await vfs.readFile(path);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
  try {
    const value = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    const { format, clusterId, nodeId, bootstrap, initialCluster } = value;
    if (format !== FORMAT) throw new Error(`format ${JSON.stringify(format)} is not ${FORMAT}`);
    if (typeof clusterId !== 'string' || !/^[0-9a-f]{16}$/.test(clusterId)) throw new Error('clusterId is not 16 hex digits');
    if (typeof nodeId !== 'number' || !Number.isSafeInteger(nodeId) || nodeId < 1) throw new Error('nodeId is not a positive integer');
    if (bootstrap !== 'initial' && bootstrap !== 'join') throw new Error('bootstrap is neither initial nor join');
    if (typeof initialCluster !== 'object' || initialCluster === null) throw new Error('initialCluster is not an object');
    const members = new Map<NodeId, string>();
    for (const [id, address] of Object.entries(initialCluster)) {
      if (!/^[1-9][0-9]*$/.test(id) || typeof address !== 'string') throw new Error('initialCluster is not {id: "host:port"}');
      members.set(Number(id), address);
    }
    return { clusterId, nodeId, bootstrap, initialCluster: members };
  } catch (error) {
    throw new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', `${path} is malformed (${(error as Error).message}); it was not changed`);
  }
}

async function writeIdentity(vfs: Vfs, dataDir: string, identity: MemberIdentity): Promise<void> {
  const document = {
    format: FORMAT,
    clusterId: identity.clusterId,
    nodeId: identity.nodeId,
    bootstrap: identity.bootstrap,
    initialCluster: Object.fromEntries([...identity.initialCluster].sort(([a], [b]) => a - b).map(([id, address]) => [String(id), address])),
  };
  await vfs.mkdir(dataDir);
  const path = joinPath(dataDir, IDENTITY_FILE);
  const temp = `${path}.tmp`;
  const file = await vfs.open(temp, { create: true, truncate: true });
  try {
    await file.write(0, Buffer.from(JSON.stringify(document, null, 2) + '\n', 'utf8'));
    await file.sync();
  } finally {
    await file.close();
  }
  await vfs.rename(temp, path);
  await vfs.syncDir(dataDir);
}

function configInvalid(message: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', message);
}
