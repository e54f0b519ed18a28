import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Bytes used by the files under `dir` (recursive, apparent sizes). For engines
 * whose files are not written through our Vfs (leveldb). At most `entriesMax`
 * directory entries are visited so a huge tree cannot stall /status.
 */
export async function diskUsageBytes(dir: string, entriesMax = 100_000): Promise<number> {
  let total = 0;
  let visited = 0;
  const pending = [dir];
  while (pending.length > 0 && visited < entriesMax) {
    const current = pending.pop()!;
    let names;
    try {
      names = await readdir(current, { withFileTypes: true });
    } catch {
      continue; // vanished while we walked: compaction deletes files.
    }
    for (const entry of names) {
      if (++visited > entriesMax) break;
      const path = join(current, entry.name);
      if (entry.isDirectory()) pending.push(path);
      else if (entry.isFile()) total += await stat(path).then((s) => s.size, () => 0);
    }
  }
  return total;
}
