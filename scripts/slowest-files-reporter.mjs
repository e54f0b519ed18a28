// A node:test reporter that prints, when the run ends, the test files that took longest
// (wall time of each file's process, as the runner measures it) and the total, so a slow
// suite shows where its time goes. Used by scripts/run-tests.mjs next to the spec reporter.
// SLOWEST_FILES=n sets how many files are listed (default 20).
import { relative } from 'node:path';

const listedFiles = Number(process.env.SLOWEST_FILES ?? 20);

/** The runner reports each file as a top-level test whose name is the file's path (Node 20) or basename (Node 24). */
function isFileEvent(data) {
  return data.nesting === 0 && typeof data.file === 'string' && (data.name === data.file || data.file.endsWith(`/${data.name}`));
}

export default async function* slowestFiles(source) {
  const fileMs = new Map();
  for await (const event of source) {
    if (event.type === 'test:complete' && isFileEvent(event.data)) {
      fileMs.set(relative(process.cwd(), event.data.file), event.data.details?.duration_ms ?? 0);
    }
  }
  if (fileMs.size === 0) return;
  const sorted = [...fileMs].sort((a, b) => b[1] - a[1]);
  const totalMs = sorted.reduce((sum, [, ms]) => sum + ms, 0);
  yield `\nslowest ${Math.min(listedFiles, sorted.length)} of ${sorted.length} test files (sum of file times ${(totalMs / 1000).toFixed(1)} s):\n`;
  for (const [file, ms] of sorted.slice(0, listedFiles)) {
    yield `${(ms / 1000).toFixed(1).padStart(8)} s  ${file}\n`;
  }
}
