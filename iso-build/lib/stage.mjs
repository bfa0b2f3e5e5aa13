// Progress: one line when a stage starts and one with its duration when it ends.
import { execa } from "execa";

export async function stage(name, fn) {
  const t = Date.now();
  console.log(`[image] ${name} ...`);
  const result = await fn();
  console.log(`[image] ${name} done (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  return result;
}

/** Runs a command, its output kept for the error message, which names the command. */
export async function run(cmd, args, opts = {}) {
  try {
    return await execa(cmd, args, { all: true, ...opts });
  } catch (e) {
    const tail = String(e.all ?? e.message)
      .split("\n")
      .slice(-25)
      .join("\n");
    throw new Error(`${cmd} ${args.slice(0, 4).join(" ")}... failed:\n${tail}`);
  }
}
