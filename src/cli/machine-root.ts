// Which machine a command looks at: this host ("/"), an extracted tree (--root DIR) or a snapshot
// file (--snapshot F.tar.gz, extracted to a temporary root and removed afterwards).
import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { RootedHostFs } from "../host/fs.js";
import { InputError, UsageError } from "./errors.js";

export async function withMachineRoot<T>(
  options: { root?: string; snapshot?: string },
  use: (root: string) => Promise<T>,
): Promise<T> {
  if (options.root && options.snapshot) throw new UsageError("--root and --snapshot cannot be combined");
  let root = options.root ?? "/";
  let cleanup: (() => Promise<void>) | undefined;
  if (options.snapshot) {
    const { openSnapshot } = await import("./snapshot-command.js");
    ({ root, cleanup } = await openSnapshot(options.snapshot));
  }
  try {
    await assertMachineRoot(root);
    return await use(root);
  } finally {
    await cleanup?.();
  }
}

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
