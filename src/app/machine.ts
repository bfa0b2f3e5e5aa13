// Which machine a use case looks at: this host ("/"), an extracted tree (--root DIR) or a snapshot
// file (--snapshot F.tar.gz, extracted to a temporary root and removed afterwards). Every front end
// opens machines here, so a root is checked once, the same way.
import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import path from "node:path";
import { InputError, UsageError } from "../core/errors.js";
import { type HostFs, RootedHostFs } from "../host/fs.js";

export interface MachineSource {
  root?: string | undefined;
  snapshot?: string | undefined;
}

export interface Machine {
  /** The machine root as a real path ("/" for this host). */
  root: string;
  fs: HostFs;
  /** A captured or foreign machine: nothing may be changed on it through this handle. */
  captured: boolean;
}

export async function withMachine<T>(source: MachineSource, use: (m: Machine) => Promise<T>): Promise<T> {
  if (source.root && source.snapshot) throw new UsageError("--root and --snapshot cannot be combined");
  let root = source.root ?? "/";
  let cleanup: (() => Promise<void>) | undefined;
  if (source.snapshot) {
    const { openSnapshot } = await import("../host/snapshot-archive.js");
    ({ root, cleanup } = await openSnapshot(source.snapshot));
  }
  try {
    await assertMachineRoot(root);
    const real = path.resolve(root);
    return await use({
      root: real,
      fs: new RootedHostFs(real),
      captured: Boolean(source.snapshot) || real !== "/",
    });
  } finally {
    await cleanup?.();
  }
}

/** This host, as a machine ("/"), for use cases that only ever act on the running system. */
export const thisHost = (): Machine => ({ root: "/", fs: new RootedHostFs("/"), captured: false });

/** A root must be a readable directory holding proc/ or sys/; anything else is an input error. */
export async function assertMachineRoot(root: string): Promise<void> {
  try {
    const st = await stat(root);
    if (!st.isDirectory()) throw new InputError(`--root ${root}: not a directory`);
    await access(root, constants.R_OK | constants.X_OK);
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`--root ${root}: cannot read (${code === "ENOENT" ? "no such directory" : code})`);
  }
  const fs = new RootedHostFs(root);
  if (!(await fs.exists("/proc")) && !(await fs.exists("/sys"))) {
    throw new InputError(
      `--root ${root}: holds neither proc/ nor sys/, so it is not a machine root or snapshot`,
    );
  }
}
