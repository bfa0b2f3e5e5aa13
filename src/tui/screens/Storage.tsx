// Storage: one VM storage pool. Disks show why they cannot be used (root, mounted, holders, boot
// medium); before any wipe the operator types the disk's serial. Disks are named by /dev/disk/by-id.
import { Box } from "ink";
import { type ReactNode, useMemo, useState } from "react";
import { type Draft, type PoolInput, poolDisks, poolOf, withPool } from "../draft.js";
import type { DiskRow } from "../model.js";
import type { ScreenProps } from "../types.js";
import { Line, ListView, move, Prompt, useHold, useKeys } from "../ui.js";

const TYPES = ["none", "dir", "lvm-thin", "zfs"] as const;
type Pending = { disks: DiskRow[]; commit: (d: Draft) => Draft };

export function Storage({ model, draft, setDraft, theme, width, height, setHold }: ScreenProps): ReactNode {
  const [pane, setPane] = useState(0);
  const [fsel, setFsel] = useState(0);
  const [dsel, setDsel] = useState(0);
  const [editing, setEditing] = useState<"name" | "path" | null>(null);
  const [pending, setPending] = useState<Pending | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const pool = poolOf(draft);
  const chosen = useMemo(() => poolDisks(pool, model.report), [pool, model]);
  useHold(setHold, editing || pending ? "all" : "none");
  const type = pool?.type ?? "none";
  const usesDisks = type === "lvm-thin" || type === "zfs";
  const set = (p: PoolInput | null) => setDraft((d) => withPool(d, p));
  const fields = [
    `pool type   ${type}  (Enter cycles${type === "zfs" && !model.report.system.zfs ? "; zfs module not loaded" : ""})`,
    ...(pool ? [`pool name   ${pool.name}`] : []),
    ...(type === "dir" ? [`directory   ${pool?.path ?? "/var/lib/libvirt/images"}`] : []),
    ...(usesDisks ? [`wipe disks  ${pool?.wipe ? "YES (serials typed)" : "no"}  (Enter toggles)`] : []),
  ];
  const cycle = () => {
    const t = TYPES[(TYPES.indexOf(type) + 1) % TYPES.length] ?? "none";
    if (t === "none") return set(null);
    const base = { name: pool?.name ?? "vmpool", type: t, autostart: true };
    set(
      t === "dir"
        ? { ...base, path: pool?.path ?? "/var/lib/libvirt/images" }
        : { ...base, disks: pool?.disks ?? [], wipe: pool?.wipe ?? false },
    );
  };
  const field = (i: number) => {
    if (i === 0) return cycle();
    if (i === 1) return setEditing("name");
    if (type === "dir") return setEditing("path");
    if (!pool) return;
    if (pool.wipe) return set({ ...pool, wipe: false });
    const rows = model.disks.filter((r) => chosen.has(r.disk.name));
    const refused = rows.find((r) => r.wipeExclusion);
    if (refused) return setMessage(`refused: ${refused.wipeExclusion}`);
    // Nothing picked yet: each disk added from now on is confirmed by its serial as it is added.
    if (!rows.length) return set({ ...pool, wipe: true });
    setPending({ disks: rows, commit: (d) => withPool(d, { ...pool, wipe: true }) });
  };
  const toggleDisk = (r: DiskRow) => {
    if (!pool || !usesDisks) return setMessage("choose an lvm-thin or zfs pool to use whole disks");
    const why = pool.wipe ? r.wipeExclusion : r.exclusion;
    if (why || !r.rule) return setMessage(`refused: ${why ?? `${r.disk.name} cannot be named`}`);
    setMessage(null);
    const disks = (pool.disks ?? []).filter((x) => JSON.stringify(x) !== JSON.stringify(r.rule));
    if (chosen.has(r.disk.name)) return set({ ...pool, disks });
    const add = (d: Draft) => withPool(d, { ...pool, disks: [...disks, r.rule ?? {}] });
    if (pool.wipe) return setPending({ disks: [r], commit: add });
    setDraft(add);
  };
  useKeys((input, key) => {
    if (key.tab) return setPane((p) => 1 - p);
    const go = key.return || input === " ";
    if (pane === 0) return go ? field(fsel) : setFsel(move(fsel, fields.length, input, key));
    const r = model.disks[dsel];
    if (go && r) return toggleDisk(r);
    setDsel(move(dsel, model.disks.length, input, key));
  }, !editing && !pending);
  const confirmNext = (typed: string) => {
    const [first, ...rest] = pending?.disks ?? [];
    if (!pending || !first) return setPending(null);
    if (typed.trim() !== first.confirm) {
      setPending(null);
      return setMessage(`${first.disk.name}: that is not its serial; nothing will be wiped`);
    }
    if (rest.length) return setPending({ ...pending, disks: rest });
    setPending(null);
    setMessage("confirmed: these disks will be wiped when the plan is applied");
    setDraft(pending.commit);
  };
  const rows = model.disks.map((r) => ({
    text: `${chosen.has(r.disk.name) ? theme.sym.on : theme.sym.off} ${r.label}: ${(pool?.wipe ? r.wipeExclusion : r.exclusion) ?? `${pool?.wipe ? "usable, wiped" : "free"} (${r.rule?.byId ?? r.rule?.serial})`}`,
    color: (pool?.wipe ? r.wipeExclusion : r.exclusion) ? "yellow" : undefined,
  }));
  const wiping = pending?.disks[0];
  return (
    <Box flexDirection="column">
      <ListView
        rows={fields.map((text) => ({ text }))}
        selected={fsel}
        height={fields.length}
        width={width}
        theme={theme}
        focused={pane === 0}
      />
      <Line text="Disks (Tab here, Enter adds to the pool):" width={width} theme={theme} bold={pane === 1} />
      <ListView
        rows={rows}
        selected={dsel}
        height={Math.max(2, height - fields.length - 4)}
        width={width}
        theme={theme}
        focused={pane === 1}
      />
      {editing && pool ? (
        <Prompt
          label={editing === "name" ? "pool name" : "directory"}
          initial={editing === "name" ? pool.name : (pool.path ?? "")}
          width={width}
          theme={theme}
          onSubmit={(v) => {
            setEditing(null);
            if (v.trim()) set({ ...pool, [editing]: v.trim() });
          }}
          onCancel={() => setEditing(null)}
        />
      ) : wiping ? (
        <Prompt
          label={`WIPE ${wiping.disk.name}? type its ${wiping.disk.serial ? "serial" : "by-id name"}`}
          initial=""
          width={width}
          theme={theme}
          onSubmit={confirmNext}
          onCancel={() => {
            setPending(null);
            setMessage("cancelled: nothing will be wiped");
          }}
        />
      ) : (
        <Line
          text={message ?? "Tab switches between the pool and the disks"}
          width={width}
          theme={theme}
          color={message?.startsWith("refused") ? "red" : undefined}
        />
      )}
    </Box>
  );
}
