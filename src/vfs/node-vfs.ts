/**
 * `NodeVfs`: the real-disk `Vfs` over node:fs/promises.
 *
 * How to use: `const vfs = new NodeVfs(); const file = await vfs.open('db/wal', { create: true });`
 * Paths are used as given (absolute, or relative to the process's working directory).
 *
 * Mapping to system calls (Linux):
 *   - `VfsFile.sync()`  → fdatasync(2) on the open descriptor.
 *   - `syncDir(dir)`    → open(dir, O_RDONLY) + fsync(2) + close: makes the
 *     directory's entries (creates, renames, unlinks) durable.
 *   - `rename`          → rename(2), atomic within one file system.
 *   - reads and writes are positional (pread/pwrite); a file is opened once and
 *     its FileHandle reused, so each call costs one system call (more only for
 *     short reads/writes, which we loop over).
 * Every failure rejects with `ImpulseError('IMPULSE_ERR_ENGINE_IO')` whose
 * message names the operation and path and whose cause is the node error
 * (with its errno `code`; see `isNotFound`).
 */
import { constants, readSync, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as fs from 'node:fs/promises';
import { errnoError, vfsError, type Vfs, type VfsFile, type VfsOpenOptions } from './vfs.js';

export class NodeVfs implements Vfs {
  readonly name = 'node-fs';

  async open(path: string, options: VfsOpenOptions = {}): Promise<VfsFile> {
    let flags = options.readOnly ? constants.O_RDONLY : constants.O_RDWR;
    if (options.create) flags |= constants.O_CREAT;
    if (options.create && options.exclusive) flags |= constants.O_EXCL;
    if (options.truncate) flags |= constants.O_TRUNC;
    // Numeric flags rather than 'a+'/'w+': O_APPEND would make Linux ignore the
    // position of every write, and 'w+' always truncates.
    let handle: FileHandle;
    try {
      handle = await fs.open(path, flags, 0o644);
    } catch (error) {
      throw vfsError('open', path, error);
    }
    return new NodeVfsFile(path, handle, options.readOnly === true);
  }

  async readFile(path: string): Promise<Buffer> {
    try {
      return await fs.readFile(path);
    } catch (error) {
      throw vfsError('readFile', path, error);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    try {
      await fs.rename(from, to);
    } catch (error) {
      throw vfsError('rename', `${from} -> ${to}`, error);
    }
  }

  async unlink(path: string): Promise<void> {
    try {
      await fs.unlink(path);
    } catch (error) {
      throw vfsError('unlink', path, error);
    }
  }

  async list(dir: string): Promise<string[]> {
    try {
      const names = await fs.readdir(dir);
      // readdir's order is the file system's; the contract says sorted (by UTF-16 code unit, like Array.sort).
      return names.sort();
    } catch (error) {
      throw vfsError('list', dir, error);
    }
  }

  async mkdir(dir: string): Promise<void> {
    try {
      await fs.mkdir(dir, { recursive: true });
    } catch (error) {
      throw vfsError('mkdir', dir, error);
    }
  }

  async removeDir(dir: string): Promise<void> {
    try {
      await fs.rmdir(dir);
    } catch (error) {
      throw vfsError('removeDir', dir, error);
    }
  }

  async syncDir(dir: string): Promise<void> {
    let handle: FileHandle | undefined;
    try {
      handle = await fs.open(dir, constants.O_RDONLY);
      await handle.sync();
    } catch (error) {
      throw vfsError('syncDir', dir, error);
    } finally {
      // A close failure after a successful fsync does not undo durability; ignore it.
      await handle?.close().catch(() => undefined);
    }
  }

  async exists(path: string): Promise<boolean> {
    try {
      await fs.stat(path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw vfsError('exists', path, error);
    }
  }

  async size(path: string): Promise<number> {
    try {
      return (await fs.stat(path)).size;
    } catch (error) {
      throw vfsError('size', path, error);
    }
  }
}

/** One open file. Not safe to use after `close` (every call then rejects with EBADF). */
class NodeVfsFile implements VfsFile {
  private closed = false;

  constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private readonly readOnly: boolean,
  ) {}

  async read(position: number, length: number): Promise<Buffer> {
    this.checkOpen('read');
    const buffer = Buffer.allocUnsafe(length);
    let filled = 0;
    try {
      // pread may return fewer bytes than asked before end of file (signals, large reads); loop until EOF.
      while (filled < length) {
        const { bytesRead } = await this.handle.read(buffer, filled, length - filled, position + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
    } catch (error) {
      throw vfsError('read', this.path, error);
    }
    return filled === length ? buffer : buffer.subarray(0, filled);
  }

  readSync(position: number, length: number): Buffer {
    this.checkOpen('read');
    const buffer = Buffer.allocUnsafe(length);
    let filled = 0;
    try {
      // Same short-read loop as `read`, on the handle's descriptor with pread(2) in this thread.
      while (filled < length) {
        const bytesRead = readSync(this.handle.fd, buffer, filled, length - filled, position + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
    } catch (error) {
      throw vfsError('read', this.path, error);
    }
    return filled === length ? buffer : buffer.subarray(0, filled);
  }

  async write(position: number, data: Uint8Array): Promise<void> {
    this.checkOpen('write');
    if (this.readOnly) throw vfsError('write', this.path, errnoError('EBADF', 'file is open read-only'));
    let written = 0;
    try {
      while (written < data.byteLength) {
        const { bytesWritten } = await this.handle.write(data, written, data.byteLength - written, position + written);
        written += bytesWritten;
      }
    } catch (error) {
      throw vfsError('write', this.path, error);
    }
  }

  writeSync(position: number, data: Uint8Array): void {
    this.checkOpen('write');
    if (this.readOnly) throw vfsError('write', this.path, errnoError('EBADF', 'file is open read-only'));
    let written = 0;
    try {
      // Same short-write loop as `write`, with pwrite(2) in this thread.
      while (written < data.byteLength) {
        written += writeSync(this.handle.fd, data, written, data.byteLength - written, position + written);
      }
    } catch (error) {
      throw vfsError('write', this.path, error);
    }
  }

  async size(): Promise<number> {
    this.checkOpen('size');
    try {
      return (await this.handle.stat()).size;
    } catch (error) {
      throw vfsError('size', this.path, error);
    }
  }

  async truncate(length: number): Promise<void> {
    this.checkOpen('truncate');
    if (this.readOnly) throw vfsError('truncate', this.path, errnoError('EBADF', 'file is open read-only'));
    try {
      await this.handle.truncate(length);
    } catch (error) {
      throw vfsError('truncate', this.path, error);
    }
  }

  async sync(): Promise<void> {
    this.checkOpen('sync');
    try {
      await this.handle.datasync();
    } catch (error) {
      throw vfsError('sync', this.path, error);
    }
  }

  /** Closes the descriptor. Closing twice is a no-op (like node's FileHandle). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.handle.close();
    } catch (error) {
      throw vfsError('close', this.path, error);
    }
  }

  private checkOpen(operation: string): void {
    if (this.closed) throw vfsError(operation, this.path, errnoError('EBADF', 'file is closed'));
  }
}
