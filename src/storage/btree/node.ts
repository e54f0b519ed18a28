/**
 * Decoded, mutable tree nodes of the `btree` engine and the pure parts of
 * tree maintenance: splitting an overfull node in two, merging two siblings
 * or dealing their entries out again, and choosing short separators.
 *
 * A write transaction (txn.ts) decodes each page it changes into a node
 * (`nodeFromView`), edits the node's arrays, and encodes it again at commit.
 * Nothing here allocates pages or does I/O; the transaction does.
 *
 * Why "split in two" and "merge with, or refill from, one sibling" always
 * suffice: every entry takes at most a quarter of a page (PageGeometry), so
 * two siblings holding more than a page between them can always be dealt out
 * into two halves that are each at least a quarter full.
 */
import { assert } from '../../util/assert.js';
import { compareBytes, partitionPoint } from '../../util/bytes.js';
import { HEADER_BYTES, PageType, readEntries, type OverflowRef, type PageGeometry, type PageView } from './page.js';
import { packedEnd } from './page-edit.js';

/** A leaf being changed by the running transaction. */
export interface LeafNode {
  readonly kind: 'leaf';
  page: number;
  keys: Uint8Array[];
  values: Array<Uint8Array | OverflowRef>;
  /** Entry bytes (slots included, header excluded) the page would take. */
  bytes: number;
}

/** A branch being changed: `keys.length` separators and `keys.length + 1` children. */
export interface BranchNode {
  readonly kind: 'branch';
  page: number;
  keys: Uint8Array[];
  children: number[];
  bytes: number;
}

export type TreeNode = LeafNode | BranchNode;

/**
 * A page the running transaction edits as bytes (page-edit.ts) instead of
 * decoding it: what a lone write's path is (one leaf entry changed, one
 * child pointer per branch). `view.bytes` is the page as it will be written,
 * except for the header's page number, stamp and checksum, which the commit
 * fills in (`view.page` and `view.stamp` are the committed page's until
 * then). While `shared`, `view.bytes` is still the committed page's buffer
 * (the cache's, immutable): it is copied before the first change in place.
 * Only pages without overflow keys are edited this way; an edit that would
 * overfill the page, and any split, merge or refill, works on the decoded
 * node instead (`nodeFromView(geometry, raw.view)`).
 */
export interface RawNode {
  readonly kind: 'raw';
  page: number;
  view: PageView;
  shared: boolean;
  /** Entry bytes (slots included, header excluded), as TreeNode.bytes. */
  bytes: number;
}

/** A page changed by the running transaction: decoded, or edited as bytes. */
export type DirtyNode = TreeNode | RawNode;

/** A committed page (without overflow keys) as a RawNode sharing the page's bytes until it changes. */
export function rawFromView(view: PageView): RawNode {
  const end = packedEnd(view.bytes, view.count, view.type === PageType.Leaf);
  return { kind: 'raw', page: view.page, view, shared: true, bytes: end - HEADER_BYTES };
}

/** Decodes a verified page into a node (keys and inline values stay views into the immutable page bytes). */
export function nodeFromView(geometry: PageGeometry, view: PageView): TreeNode {
  const { keys, values, children, bytes } = readEntries(geometry, view);
  return view.type === PageType.Leaf ? { kind: 'leaf', page: view.page, keys, values, bytes } : { kind: 'branch', page: view.page, keys, children, bytes };
}

/** First index whose key is >= `key`. */
export function nodeLowerBound(keys: readonly Uint8Array[], key: Uint8Array): number {
  return partitionPoint(0, keys.length, (index) => compareBytes(keys[index]!, key) >= 0);
}

/** First index whose key is > `key`: the child of a branch that covers `key`. */
export function nodeUpperBound(keys: readonly Uint8Array[], key: Uint8Array): number {
  return partitionPoint(0, keys.length, (index) => compareBytes(keys[index]!, key) > 0);
}

/**
 * Splits an overfull node into itself (the left part) and a new right
 * sibling on page `rightPage`: about half the bytes each, or, at the right
 * edge of an ascending load (`rightEdge`), a right sibling just a quarter
 * full (ascending loads then fill pages to ~75%, not ~50%; LMDB and SQLite
 * have the same append optimization). Returns the right node and the
 * separator to insert into the parent.
 */
export function splitNode(geometry: PageGeometry, node: TreeNode, rightEdge: boolean, rightPage: number): { right: TreeNode; separator: Uint8Array } {
  const cut = (sizes: number[], pushUp: boolean): number => (rightEdge ? rightEdgeCut(sizes, pushUp, geometry.fillBytesMin) : balancedCut(sizes, pushUp));
  if (node.kind === 'leaf') {
    const sizes = node.keys.map((key, index) => geometry.leafEntryBytes(key.length, node.values[index]!.length));
    const middle = cut(sizes, false);
    const right: LeafNode = {
      kind: 'leaf',
      page: rightPage,
      keys: node.keys.splice(middle),
      values: node.values.splice(middle),
      bytes: sum(sizes, middle, sizes.length),
    };
    node.bytes -= right.bytes;
    return { right, separator: shortestSeparator(node.keys[node.keys.length - 1]!, right.keys[0]!) };
  }
  const sizes = node.keys.map((key) => geometry.branchEntryBytes(key.length));
  const middle = cut(sizes, true);
  const separator = node.keys[middle]!;
  const right: BranchNode = {
    kind: 'branch',
    page: rightPage,
    keys: node.keys.splice(middle + 1),
    children: node.children.splice(middle + 1),
    bytes: sum(sizes, middle + 1, sizes.length),
  };
  node.keys.pop();
  node.bytes = sum(sizes, 0, middle);
  return { right, separator };
}

/**
 * Two adjacent siblings, one of them underfull, with `separator` between them
 * in their parent. If both fit one page, every entry moves into `left` and
 * this returns undefined (the caller drops `right` and the separator);
 * otherwise the entries are dealt out evenly and this returns the separator
 * that replaces the old one.
 */
export function rebalanceSiblings(geometry: PageGeometry, left: TreeNode, right: TreeNode, separator: Uint8Array): Uint8Array | undefined {
  if (left.kind === 'leaf' && right.kind === 'leaf') {
    const keys = left.keys.concat(right.keys);
    const values = left.values.concat(right.values);
    const sizes = keys.map((key, at) => geometry.leafEntryBytes(key.length, values[at]!.length));
    const total = left.bytes + right.bytes;
    if (total <= geometry.payloadBytes) {
      left.keys = keys;
      left.values = values;
      left.bytes = total;
      return undefined;
    }
    const middle = balancedCut(sizes, false);
    left.keys = keys.slice(0, middle);
    left.values = values.slice(0, middle);
    left.bytes = sum(sizes, 0, middle);
    right.keys = keys.slice(middle);
    right.values = values.slice(middle);
    right.bytes = total - left.bytes;
    return shortestSeparator(left.keys[left.keys.length - 1]!, right.keys[0]!);
  }
  assert(left.kind === 'branch' && right.kind === 'branch', 'siblings of different kinds', left.page, right.page);
  const keys = left.keys.concat([separator], right.keys);
  const children = left.children.concat(right.children);
  const sizes = keys.map((key) => geometry.branchEntryBytes(key.length));
  const total = sum(sizes, 0, sizes.length);
  if (total <= geometry.payloadBytes) {
    left.keys = keys;
    left.children = children;
    left.bytes = total;
    return undefined;
  }
  const middle = balancedCut(sizes, true);
  left.keys = keys.slice(0, middle);
  left.children = children.slice(0, middle + 1);
  left.bytes = sum(sizes, 0, middle);
  right.keys = keys.slice(middle + 1);
  right.children = children.slice(middle + 1);
  right.bytes = sum(sizes, middle + 1, sizes.length);
  return keys[middle]!;
}

function sum(sizes: readonly number[], from: number, to: number): number {
  let total = 0;
  for (let index = from; index < to; index++) total += sizes[index]!;
  return total;
}

/**
 * Where to cut entries of these sizes so both sides get about half the bytes.
 * For a leaf the cut `m` gives [0, m) and [m, n), 1 <= m <= n-1. For a branch
 * entry `m` moves up to the parent and the sides are [0, m) and (m, n),
 * 1 <= m <= n-2 (each side keeps at least one separator).
 */
function balancedCut(sizes: readonly number[], pushUp: boolean): number {
  const total = sum(sizes, 0, sizes.length);
  const first = 1;
  const last = pushUp ? sizes.length - 2 : sizes.length - 1;
  assert(last >= first, 'too few entries to split', sizes.length);
  let best = first;
  let bestWorst = Infinity;
  let left = sum(sizes, 0, first);
  for (let cut = first; cut <= last; cut++) {
    const right = total - left - (pushUp ? sizes[cut]! : 0);
    const worst = Math.max(left, right);
    if (worst < bestWorst) {
      bestWorst = worst;
      best = cut;
    }
    left += sizes[cut]!;
  }
  return best;
}

/**
 * The cut for a split at the right edge of an ascending load: the right side
 * gets the fewest last entries that make it at least `fillBytesMin` (so the
 * left stays as full as it can, and both sides within the fill bounds because
 * each entry is at most a quarter page). Same index conventions as balancedCut.
 */
function rightEdgeCut(sizes: readonly number[], pushUp: boolean, fillBytesMin: number): number {
  let right = 0;
  let cut = sizes.length;
  // For a branch, entry `cut` moves up, so the right side is (cut, n).
  while (cut > 1 && right < fillBytesMin) {
    cut--;
    if (pushUp && cut === sizes.length - 1) continue;
    right += sizes[pushUp ? cut + 1 : cut]!;
  }
  assert(cut >= 1 && (!pushUp || cut <= sizes.length - 2), 'right-edge cut out of range', sizes.length, cut);
  return cut;
}

/**
 * The shortest key `s` with `left < s <= right`: a prefix of `right` one byte
 * longer than what it shares with `left`. Short separators keep branches wide.
 */
function shortestSeparator(left: Uint8Array, right: Uint8Array): Uint8Array {
  assert(compareBytes(left, right) < 0, 'separator bounds out of order', left, right);
  const shared = Math.min(left.length, right.length);
  let index = 0;
  while (index < shared && left[index] === right[index]) index++;
  return new Uint8Array(right.subarray(0, index + 1)); // a copy: `right` may be a view into a page or a caller's key
}
