// RecordingHostFs: a HostFs that remembers every path detection touched, so exactly those facts can be
// captured into a snapshot (`kvmstrap snapshot`). collectRecorded turns the record into tar entries by
// walking each path on the real filesystem component by component: symlinks keep their original
// (relative) targets, directories become directory entries, files carry the bytes detection saw.
// Device nodes are never opened here: an existence check becomes an empty file, and bytes read at an
// offset (an MSR) become a sparse file holding just those bytes.
import { lstat, readdir, readlink } from "node:fs/promises";
import path from "node:path";
import type { HostFs, ReadProblem } from "./fs.js";

export type SnapshotEntry =
  | { type: "dir"; path: string }
  | { type: "symlink"; path: string; target: string }
  | { type: "file"; path: string; content: Buffer }
  /** A file of `size` bytes that is zero except for the chunks (a sparse file). */
  | { type: "sparse"; path: string; size: number; chunks: { offset: number; data: Buffer }[] };

type Rec =
  | { kind: "text"; text: string }
  | { kind: "bytes"; chunks: { offset: number; data: Buffer }[] }
  | { kind: "dir" }
  | { kind: "link" }
  | { kind: "exists" }
  /** A read that failed: the symlinks on its way are still worth keeping (a dangling link is a fact). */
  | { kind: "attempt" };

export class RecordingHostFs implements HostFs {
  readonly records = new Map<string, Rec[]>();

  constructor(readonly inner: HostFs) {}

  get root(): string {
    return this.inner.root;
  }

  get problems(): ReadProblem[] {
    return this.inner.problems;
  }

  private add(hostPath: string, r: Rec): void {
    const p = path.posix.resolve("/", hostPath);
    const list = this.records.get(p) ?? [];
    if (r.kind === "bytes") {
      const prev = list.find((x) => x.kind === "bytes");
      if (prev && prev.kind === "bytes") {
        prev.chunks.push(...r.chunks);
        return;
      }
    }
    if (!list.some((x) => x.kind === r.kind && r.kind !== "bytes")) list.push(r);
    this.records.set(p, list);
  }

  async readText(hostPath: string): Promise<string | null> {
    const text = await this.inner.readText(hostPath);
    this.add(hostPath, text === null ? { kind: "attempt" } : { kind: "text", text });
    return text;
  }

  async readBytes(hostPath: string, offset: number, length: number): Promise<Buffer | null> {
    const data = await this.inner.readBytes(hostPath, offset, length);
    this.add(
      hostPath,
      data === null ? { kind: "attempt" } : { kind: "bytes", chunks: [{ offset, data: Buffer.from(data) }] },
    );
    return data;
  }

  async readDir(hostPath: string): Promise<string[] | null> {
    const entries = await this.inner.readDir(hostPath);
    this.add(hostPath, entries === null ? { kind: "attempt" } : { kind: "dir" });
    return entries;
  }

  async readLink(hostPath: string): Promise<string | null> {
    const target = await this.inner.readLink(hostPath);
    this.add(hostPath, target === null ? { kind: "attempt" } : { kind: "link" });
    return target;
  }

  async exists(hostPath: string): Promise<boolean> {
    const yes = await this.inner.exists(hostPath);
    this.add(hostPath, yes ? { kind: "exists" } : { kind: "attempt" });
    return yes;
  }
}

type Stat = Awaited<ReturnType<typeof lstat>>;

/** Turns what a RecordingHostFs saw into snapshot entries (host paths, sorted, parents first). */
export async function collectRecorded(rec: RecordingHostFs): Promise<SnapshotEntry[]> {
  const root = path.resolve(rec.root);
  const real = (hostPath: string) => (root === "/" ? hostPath : path.join(root, hostPath));
  const out = new Map<string, SnapshotEntry>();
  const stats = new Map<string, Stat | null>();
  const statOf = async (hostPath: string): Promise<Stat | null> => {
    if (stats.has(hostPath)) return stats.get(hostPath) ?? null;
    let st: Stat | null = null;
    try {
      st = await lstat(real(hostPath));
    } catch {
      st = null;
    }
    stats.set(hostPath, st);
    return st;
  };
  const placeholders = new Set<string>();
  /** The first real entry of a path wins; a placeholder only fills a path nothing else claimed. */
  const put = (e: SnapshotEntry, placeholder = false) => {
    if (out.has(e.path) && (placeholder || !placeholders.has(e.path))) return;
    out.set(e.path, e);
    if (placeholder) placeholders.add(e.path);
    else placeholders.delete(e.path);
  };

  /**
   * Resolves a host path like the kernel does, emitting every directory and symlink met on the way.
   * Returns the resolved path and its lstat, or null when it does not exist.
   */
  const walk = async (hostPath: string, followLast: boolean): Promise<{ path: string; st: Stat } | null> => {
    const pending = hostPath.split("/").filter(Boolean);
    let cur = "/";
    let hops = 0;
    while (pending.length) {
      const comp = pending.shift() as string;
      if (comp === ".") continue;
      if (comp === "..") {
        cur = path.posix.dirname(cur);
        continue;
      }
      const next = path.posix.join(cur, comp);
      const st = await statOf(next);
      if (!st) return null;
      if (st.isSymbolicLink()) {
        let target: string;
        try {
          target = await readlink(real(next));
        } catch {
          return null;
        }
        put({ type: "symlink", path: next, target });
        if (pending.length === 0 && !followLast) return { path: next, st };
        if (++hops > 40) return null;
        pending.unshift(...target.split("/").filter(Boolean));
        if (target.startsWith("/")) cur = "/";
        continue;
      }
      if (st.isDirectory()) put({ type: "dir", path: next });
      else if (pending.length) return null;
      cur = next;
      if (pending.length === 0) return { path: next, st };
    }
    return { path: cur, st: (await statOf(cur)) ?? (await lstat(real(cur))) };
  };

  const placeholderFor = (p: string, st: Stat): SnapshotEntry | null => {
    if (st.isDirectory()) return { type: "dir", path: p };
    if (st.isSymbolicLink()) return null; // handled by the caller
    return { type: "file", path: p, content: Buffer.alloc(0) };
  };

  for (const [hostPath, records] of [...rec.records].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    for (const r of records) {
      if (r.kind === "link" || r.kind === "attempt") {
        await walk(hostPath, false);
        continue;
      }
      const found = await walk(hostPath, true);
      if (!found) continue;
      const { path: p, st } = found;
      if (r.kind === "text") {
        if (!st.isDirectory()) put({ type: "file", path: p, content: Buffer.from(r.text, "utf8") });
      } else if (r.kind === "bytes") {
        if (st.isDirectory()) continue;
        const size = Math.max(...r.chunks.map((c) => c.offset + c.data.length));
        const prev = out.get(p);
        if (prev?.type === "sparse") prev.chunks.push(...r.chunks);
        else if (!prev || placeholders.has(p)) {
          out.set(p, { type: "sparse", path: p, size, chunks: [...r.chunks] });
          placeholders.delete(p);
        }
      } else if (r.kind === "exists") {
        const e = placeholderFor(p, st);
        if (e) put(e, true);
      } else if (r.kind === "dir") {
        if (!st.isDirectory()) continue;
        // A listing must be complete: every entry exists in the snapshot (content only if it was read).
        let names: string[] = [];
        try {
          names = await readdir(real(p));
        } catch {
          names = [];
        }
        for (const name of names) {
          const child = path.posix.join(p, name);
          const cst = await statOf(child);
          if (!cst) continue;
          if (cst.isSymbolicLink()) await walk(child, false);
          else {
            const e = placeholderFor(child, cst);
            if (e) put(e, true);
          }
        }
      }
    }
  }
  // Sparse entries merge chunks from several reads; keep them ordered and sized.
  for (const e of out.values()) {
    if (e.type !== "sparse") continue;
    e.chunks.sort((a, b) => a.offset - b.offset);
    e.size = Math.max(e.size, ...e.chunks.map((c) => c.offset + c.data.length));
  }
  return [...out.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
