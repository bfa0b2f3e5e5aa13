// Where served bytes come from. The server asks a source to open a cleaned relative name (names.ts);
// the default source reads a directory, and the app can plug in generated content the same way.
import { constants } from "node:fs";
import { open, realpath } from "node:fs/promises";
import path from "node:path";
import { ERR } from "./packet.js";

export interface TftpFile {
  /** Length in bytes, known when the file is opened (it is announced through tsize). */
  readonly size: number;
  /** Up to `length` bytes at `offset`; fewer only at the end of the file. */
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

export interface TftpSource {
  /** Throws a TftpSourceError to answer with a given TFTP error code; any other error is code 0. */
  open(name: string): Promise<TftpFile>;
}

export class TftpSourceError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = "TftpSourceError";
  }
}

/** A TFTP error code and message for whatever a source threw. */
export function errorForOpen(error: unknown): { code: number; message: string } {
  if (error instanceof TftpSourceError) return { code: error.code, message: error.message };
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT" || code === "ENOTDIR") return { code: ERR.NOT_FOUND, message: "file not found" };
  if (code === "EACCES" || code === "EPERM" || code === "ELOOP")
    return { code: ERR.ACCESS, message: "access violation" };
  return { code: ERR.UNDEFINED, message: "cannot open file" };
}

/** A file in memory, for generated content (iPXE scripts, tests). */
export function bufferFile(data: Buffer): TftpFile {
  return {
    size: data.length,
    read: async (offset, length) => data.subarray(offset, offset + length),
    close: async () => {},
  };
}

/**
 * Serves regular files under `root`, read-only. A name is resolved with realpath and must stay under
 * the root's own realpath, so symlinks inside the root work and symlinks out of it are refused.
 */
export function directorySource(root: string): TftpSource {
  let rootReal: Promise<string> | undefined;
  return {
    async open(name) {
      rootReal ??= realpath(root);
      const base = await rootReal;
      const real = await realpath(path.join(base, name));
      if (!real.startsWith(base + path.sep)) throw new TftpSourceError(ERR.ACCESS, "access violation");
      // O_NOFOLLOW because `real` has no links left to follow, so one appearing now is a swap under
      // our feet.
      return openRegularFile(real, constants.O_NOFOLLOW);
    },
  };
}

/**
 * Opens `file` read-only as a TftpFile, refusing anything but a regular file. O_NONBLOCK so a FIFO
 * put in place of a file cannot hang the open; `extraFlags` adds e.g. O_NOFOLLOW.
 */
export async function openRegularFile(file: string, extraFlags = 0): Promise<TftpFile> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | extraFlags);
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new TftpSourceError(ERR.ACCESS, "not a regular file");
    return {
      size: stat.size,
      async read(offset, length) {
        const buf = Buffer.allocUnsafe(length);
        const { bytesRead } = await handle.read(buf, 0, length, offset);
        return bytesRead === length ? buf : buf.subarray(0, bytesRead);
      },
      close: () => handle.close(),
    };
  } catch (error) {
    await handle.close();
    throw error;
  }
}
