import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkCausalLostWrites, checkQuorumReads } from './causal-checks.js';
import { checkHistory } from './checks.js';
import type { HistoryOp } from './history.js';

let index = 0;
function op(fields: Partial<HistoryOp> & Pick<HistoryOp, 'op' | 'key' | 'call'>): HistoryOp {
  return { index: index++, process: 1, value: null, out: null, ret: fields.call + 0.01, status: 'ok', node: 1, ...fields };
}
const put = (value: string, call: number, supersedes: string[] = [], extra: Partial<HistoryOp> = {}): HistoryOp => op({ op: 'put', key: 'r/0', value, supersedes, call, ...extra });
const get = (out: string[], call: number, extra: Partial<HistoryOp> = {}): HistoryOp => op({ op: 'get', key: 'r/0', out, call, ...extra });
/** Final reads start at 100 in these histories. */
const FINAL = 100;

describe('leaderless register checks', () => {
  it('no-lost-writes accepts siblings, and a put replaced by a put whose context saw it (also through an unknown put that a read saw)', () => {
    const history = [
      put('a', 0),
      put('b', 0.005), // concurrent with a: both stay, as siblings
      get(['a', 'b'], 1),
      put('c', 2, ['a', 'b'], { status: 'unknown', ret: null, error: 'IMPULSE_ERR_CLIENT_TIMEOUT' }),
      get(['c'], 3),
      put('d', 4),
      get(['c', 'd'], FINAL),
    ];
    const verdict = checkCausalLostWrites(history, FINAL);
    assert.ok(verdict.ok, verdict.details.join('\n'));
    assert.match(verdict.summary, /1 keys end with siblings \(at most 2 siblings in a read\)/);
  });

  it('no-lost-writes rejects an acknowledged put that vanished, naming it and the final read', () => {
    const verdict = checkCausalLostWrites([put('a', 0), put('b', 1), get(['b'], FINAL)], FINAL);
    assert.equal(verdict.ok, false);
    assert.ok(verdict.details.some((line) => line.includes('LOST') && line.includes('put r/0 "a"') && line.includes('get r/0')), verdict.details.join('\n'));
  });

  it('no-lost-writes rejects a replacement by a put that never happened (failed, or unknown and never seen)', () => {
    for (const status of [{ status: 'fail' as const, error: 'ECONNREFUSED' }, { status: 'unknown' as const, ret: null, error: 'IMPULSE_ERR_CLIENT_TIMEOUT' }]) {
      const history = [put('a', 0), get(['a'], 1), put('b', 2, ['a'], status), get([], FINAL)];
      assert.equal(checkCausalLostWrites(history, FINAL).ok, false, JSON.stringify(status));
    }
  });

  it('no-lost-writes rejects phantoms (a value nobody wrote, or one whose put certainly failed) and a missing final read', () => {
    assert.equal(checkCausalLostWrites([put('a', 0), get(['a', 'zz'], FINAL)], FINAL).ok, false);
    assert.equal(checkCausalLostWrites([put('a', 0), put('f', 1, [], { status: 'fail', error: 'ECONNREFUSED' }), get(['a', 'f'], FINAL)], FINAL).ok, false);
    const unread = checkCausalLostWrites([put('a', 0), get(['a'], 1), get([], FINAL, { status: 'fail', error: 'IMPULSE_ERR_QUORUM_UNAVAILABLE' })], FINAL);
    assert.equal(unread.ok, false);
    assert.match(unread.details[0]!, /no successful final read/);
  });

  it('quorum-reads accepts a read that returns the put, or a value whose causal past holds it (transitively), and a read concurrent with the put', () => {
    const history = [
      put('a', 0),
      get(['a'], 1),
      put('b', 2, ['a']),
      get(['b'], 3),
      put('c', 4, ['b']),
      get(['c'], 5), // c supersedes b supersedes a
      put('d', 6),
      get(['c'], 6.005), // began before d was acknowledged
    ];
    const verdict = checkQuorumReads(history);
    assert.ok(verdict.ok, verdict.details.join('\n'));
  });

  it('quorum-reads rejects a read that missed a put acknowledged before it began, once per put', () => {
    const history = [put('a', 0), get(['a'], 1), put('b', 2), get(['a'], 3, { node: 2 }), get(['a'], 4, { node: 3 })];
    const verdict = checkQuorumReads(history);
    assert.equal(verdict.ok, false);
    assert.equal(verdict.details.length, 1);
    assert.ok(verdict.details[0]!.includes('get r/0 → ["a"]') && verdict.details[0]!.includes('put r/0 "b"'), verdict.details[0]);
    // A value that superseded a, not b, does not cover b.
    assert.equal(checkQuorumReads([put('a', 0), get(['a'], 1), put('b', 1.5), put('c', 2, ['a']), get(['c'], 3)]).ok, false);
  });

  it('a leaderless register gets the causal checks (quorum-reads only when the quorums overlap), never linearizability', () => {
    const history = [put('a', 0), get(['a'], FINAL)];
    assert.deepEqual(checkHistory('register', history, FINAL, { leaderless: { overlappingQuorums: true } }).map((check) => check.name), ['no-lost-writes', 'quorum-reads']);
    assert.deepEqual(checkHistory('register', history, FINAL, { leaderless: { overlappingQuorums: false } }).map((check) => check.name), ['no-lost-writes']);
    assert.deepEqual(checkHistory('register', [op({ op: 'get', key: 'k', out: null, call: FINAL })], FINAL, 'raft').map((check) => check.name), ['linearizable', 'no-lost-writes']);
  });
});
