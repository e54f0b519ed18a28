import { SegmentedLogStore } from '../dist/src/raft/log-store/log-store.js';
import { MemVfs } from '../dist/testkit/vfs/mem-vfs.js';
import { LogHistory } from '../dist/testkit/raft-log/log-model.js';
const normal = (index, term, bytes = 40) => ({ kind: 'normal', index, term, data: Buffer.alloc(bytes, index) });
const conf = (index, term) => ({ kind: 'conf-change', index, term, change: { type: 'add-learner', nodeId: 4 }, confState: { voters: [1, 2, 3], learners: [4] } });
const members = { voters: [1, 2, 3], learners: [] };
const OPERATIONS = [
  { kind: 'save', update: { snapshot: null, entries: [], hardState: { term: 1, vote: 1, commit: 0 } } },
  { kind: 'save', update: { snapshot: null, entries: [normal(1, 1), normal(2, 1), normal(3, 1)], hardState: { term: 1, vote: 1, commit: 1 } } },
  { kind: 'save', update: { snapshot: null, entries: [conf(4, 1)], hardState: null } },
  { kind: 'save', update: { snapshot: null, entries: [normal(3, 2), conf(4, 2)], hardState: { term: 2, vote: 2, commit: 2 } } },
  { kind: 'save', update: { snapshot: { index: 6, term: 2, confState: members }, entries: [normal(7, 2), normal(8, 2)], hardState: { term: 2, vote: 2, commit: 6 } } },
  { kind: 'save', update: { snapshot: null, entries: [normal(9, 2)], hardState: { term: 2, vote: 2, commit: 8 } } },
  { kind: 'compact', meta: { index: 7, term: 2, confState: members } },
  { kind: 'save', update: { snapshot: null, entries: [conf(10, 2), normal(11, 2)], hardState: { term: 3, vote: 0, commit: 9 } } },
  { kind: 'save', update: { snapshot: null, entries: [normal(12, 3, 120)], hardState: { term: 3, vote: 0, commit: 10 } } },
  { kind: 'save', update: { snapshot: null, entries: [normal(13, 3)], hardState: null } },
  { kind: 'compact', meta: { index: 8, term: 2, confState: members } },
  { kind: 'save', update: { snapshot: null, entries: [normal(14, 3), normal(15, 3)], hardState: { term: 3, vote: 0, commit: 12 } } },
];
const vfs = new MemVfs();
const store = await SegmentedLogStore.open(vfs, 'raft/3', { segmentBytesMax: 420, cacheBytesMax: 0 });
const h = new LogHistory();
for (const op of OPERATIONS) { await h.run(store, op); console.log(op.kind, vfs.fileNames().map(n => n.slice(7, 23).replace(/^0+/, '') + '-' + n.slice(24, 40).replace(/^0+/, '')).join(' ')); }
