// Shared by the apply tests: temporary roots, a full recursive listing of a tree (path, kind, mode and
// content) to compare before and after, and small plan builders.
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach } from "vitest";
import type { Action, Plan } from "../../src/plan/actions.js";

const made: string[] = [];
afterEach(async () => {
  await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

export async function tempDir(prefix = "kvmstrap-apply-"): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Writes files (relative path -> content) under root. */
export async function populate(root: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const at = path.join(root, rel);
    await mkdir(path.dirname(at), { recursive: true });
    await writeFile(at, content, { mode: 0o644 });
  }
}

/** Every entry under dir: "d <mode>" for directories, "f <mode> <content>" for files, "l -> target". */
export async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string) => {
    for (const name of (await readdir(path.join(dir, rel))).sort()) {
      const r = path.join(rel, name);
      const st = await lstat(path.join(dir, r));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        out[`${r}/`] = `d ${mode}`;
        await walk(r);
      } else if (st.isSymbolicLink()) out[r] = `l -> ${await readlink(path.join(dir, r))}`;
      else out[r] = `f ${mode} ${await readFile(path.join(dir, r), "utf8")}`;
    }
  };
  await walk("");
  return out;
}

export const writeFileAction = (
  id: string,
  p: string,
  content: string,
  extra: Partial<Action> = {},
): Action =>
  ({
    kind: "write-file",
    id,
    summary: `write ${p}`,
    effect: "none",
    path: p,
    content,
    mode: 0o644,
    previous: null,
    ...extra,
  }) as Action;

export const planOf = (actions: Action[]): Plan => ({
  schema: "kvmstrap.plan/1",
  answerDigest: "test",
  actions,
  refusals: [],
  needsReboot: actions.some((a) => a.effect === "reboot"),
});
