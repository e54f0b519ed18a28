/** The members table: who is up, who leads, how far each one is. */
import { html } from './html.js';
import type { ClusterSnapshot, MemberState } from './model.js';

export function MembersPanel({ snapshot }: { snapshot: ClusterSnapshot }) {
  const leaders = snapshot.members.filter((member) => member.reachability === 'up' && member.role === 'leader');
  const leaderText = snapshot.mode === 'single' ? 'single node (no replication)' : leaders.length === 1 ? `node ${leaders[0]!.id}` : leaders.length === 0 ? 'none' : `${leaders.length} claim it`;
  return html`
    <section class="wide" data-testid="members">
      <h2>Members <small>leader: <span data-testid="leader">${leaderText}</span>${snapshot.term !== null ? ` · term ${snapshot.term}` : ''}</small></h2>
      <table>
        <thead>
          <tr>
            <th>node</th><th>state</th><th>role</th><th class="num">term</th><th class="num">commit</th><th class="num">applied</th>
            <th class="num">lag</th><th class="num">last contact</th><th>engine</th><th>client URL</th>
          </tr>
        </thead>
        <tbody>
          ${snapshot.members.map((member) => html`<${MemberRow} key=${member.id} member=${member} pageNode=${snapshot.nodeId} />`)}
        </tbody>
      </table>
      <p class="muted">Lag and last contact come from the leader (only it tracks the others). A member is down when it did not answer the page's node within 1.5 s.</p>
    </section>
  `;
}

function MemberRow({ member, pageNode }: { member: MemberState; pageNode: number | null }) {
  const stateText = member.reachability === 'up' ? stateOf(member) : member.reachability;
  const dash = (value: number | null, unit = ''): string => (value === null ? '—' : `${value}${unit}`);
  return html`
    <tr class=${member.reachability} data-member=${member.id} data-state=${member.reachability} data-role=${member.role}>
      <td>${member.id === 0 ? 'this node' : `node ${member.id}`}${member.id === pageNode && member.id !== 0 ? html` <span class="muted">(this page)</span>` : ''}</td>
      <td><span class=${`state ${stateText}`} title=${member.problem ?? ''}>${stateText}</span>${member.problem !== null ? html`<div class="problem">${member.problem}</div>` : ''}</td>
      <td>${member.role === 'leader' ? html`<span class="leader-mark">★ leader</span>` : member.role}</td>
      <td class="num">${dash(member.term)}</td>
      <td class="num">${dash(member.commitIndex)}</td>
      <td class="num">${dash(member.appliedIndex)}</td>
      <td class="num">${dash(member.lag)}</td>
      <td class="num">${dash(member.lastContactMs, ' ms')}</td>
      <td>${member.status?.engine ?? '—'}</td>
      <td>${member.clientUrl !== null ? html`<a href=${`${member.clientUrl}/ui`}>${member.clientUrl}</a>` : '—'}</td>
    </tr>
  `;
}

/** 'up', or the member's own health when it serves but not normally (failed, removed, no leader). */
function stateOf(member: MemberState): string {
  const health = member.status?.health.status;
  if (health === 'failed' || health === 'removed') return health;
  return 'up';
}
