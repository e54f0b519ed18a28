// A node:test reporter that writes, when the run ends, one JSON array of [file, milliseconds]:
// the wall time of each test file's process as the runner measured it. scripts/run-tests.mjs
// gives it a file as its destination and prints the slowest files from all lanes.
import { relative } from 'node:path';

/** The runner reports each file as a top-level test whose name is the file's path (Node 20) or basename (Node 24). */
function isFileEvent(data) {
  return data.nesting === 0 && typeof data.file === 'string' && (data.name === data.file || data.file.endsWith(`/${data.name}`));
}

export default async function* fileTimes(source) {
  const fileMs = new Map();
  for await (const event of source) {
    if (event.type === 'test:complete' && isFileEvent(event.data)) {
      fileMs.set(relative(process.cwd(), event.data.file), event.data.details?.duration_ms ?? 0);
    }
  }
  yield JSON.stringify([...fileMs]);
}
