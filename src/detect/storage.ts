// Disks: every block device in /sys/block with its size, identity (model, serial, WWN, /dev/disk/by-id
// links), transport and controller, partitions, the devices stacked on it (dm, md), the signatures the
// udev database saw, where it is mounted and the roles that make it untouchable (root, /boot, ESP, swap,
// the boot medium). Stacking is followed both ways: <dev>/holders and dm-N/slaves. A mount is tied to a
// disk only through facts (kernel names, dm names, links); when the tie is missing the disk's role stays
// unknown and a warning says so, because guessing here could let a wipe hit the running system.
import type { HostFs } from "../host/fs.js";
import { basename, compareText, type DetectContext, intOrWarn, parseMounts } from "./sysfs.js";
import type { DiskReport, Partition, RootDiskReport, Sources } from "./types.js";

type Role = DiskReport["roles"][number];

/** One block node: a whole device from /sys/block or one of its partitions. */
interface BlockNode {
  name: string;
  disk: DiskReport;
  partition: Partition | null;
  base: string | null; // resolved sysfs directory
  majMin: string | null;
  udev: Record<string, string>;
  udevPath: string | null;
}

interface MountUse {
  mountpoint: string;
  fstype: string;
}

const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i;
const BOOT_MEDIUM_MOUNTS = new Set(["/run/live/medium", "/lib/live/mount/medium", "/cdrom"]);
const MOUNT_FILES = ["/proc/self/mounts", "/proc/mounts", "/etc/mtab"];

/** The disks alone (tests and tools that need no rootDisk fact). */
export const detectDisks = async (ctx: DetectContext): Promise<DiskReport[]> =>
  (await detectStorage(ctx)).disks;

/** The disks and the fact of which ones hold the running system. */
export async function detectStorage(
  ctx: DetectContext,
): Promise<{ disks: DiskReport[]; rootDisk: RootDiskReport }> {
  const names = (await ctx.fs.readDir("/sys/block")) ?? [];
  const inspected = await Promise.all(names.map((n) => inspectBlock(ctx, n)));
  const nodes = new Map<string, BlockNode>();
  const disks: DiskReport[] = [];
  for (const found of inspected) {
    const first = found?.[0];
    if (!found || !first) continue;
    disks.push(first.disk);
    for (const n of found) nodes.set(n.name, n);
  }

  // Stacking: holders/ of each node plus the reverse of slaves/ (dm, md).
  const holders = new Map<string, Set<string>>();
  const addHolder = (lower: string, upper: string) => {
    const s = holders.get(lower) ?? new Set<string>();
    s.add(upper);
    holders.set(lower, s);
  };
  await Promise.all(
    [...nodes.values()].map(async (n) => {
      if (!n.base) return;
      const [up, down] = await Promise.all([
        ctx.fs.readDir(`${n.base}/holders`),
        ctx.fs.readDir(`${n.base}/slaves`),
      ]);
      for (const h of up ?? []) addHolder(n.name, h);
      for (const s of down ?? []) addHolder(s, n.name);
    }),
  );

  const [byId, dmNames] = await Promise.all([readById(ctx.fs, nodes), readDmNames(ctx, nodes)]);
  for (const [name, links] of byId) {
    const n = nodes.get(name);
    if (!n) continue;
    const target = byIdList(n);
    for (const l of links) if (!target.includes(l)) target.push(l);
  }
  // udev's own list of symlinks (S:disk/by-id/...) covers hosts whose /dev was not captured.
  for (const n of nodes.values()) {
    for (const l of n.udev["S:"]?.split("\n") ?? []) {
      if (!l.startsWith("disk/by-id/")) continue;
      const target = byIdList(n);
      if (!target.includes(`/dev/${l}`)) target.push(`/dev/${l}`);
    }
    if (n.partition) n.partition.byId?.sort();
    else {
      n.disk.byId.sort();
      if (n.disk.byId.length) n.disk.sources.byId = "/dev/disk/by-id";
    }
  }

  // Mounts and swaps, tied to block nodes.
  const direct = new Map<string, MountUse[]>();
  const swaps = new Set<string>();
  const mountsFile = await readMounts(ctx.fs);
  // The first mount the running system needs that no disk could be tied to (or no mount table):
  // said as a warning for people and as the report's rootDisk fact for the rules.
  let unknown: { path: string; message: string } | null = null;
  const cannotTell = (w: { path: string; message: string }) => {
    unknown ??= w;
    ctx.warnings.push(w);
  };
  if (!mountsFile && disks.length) {
    cannotTell({
      path: MOUNT_FILES[0] as string,
      message: `no mount table (${MOUNT_FILES.join(", ")}): which disks hold /, /boot or the boot medium is unknown`,
    });
  }
  const resolve = (dev: string) => resolveDevice(ctx.fs, dev, nodes, dmNames);
  if (mountsFile) {
    const mounts = parseMounts(mountsFile.text);
    const names = await Promise.all(mounts.map((m) => resolve(m.device)));
    for (const [i, m] of mounts.entries()) {
      const name = names[i];
      if (name) {
        const list = direct.get(name) ?? [];
        list.push({ mountpoint: m.mountpoint, fstype: m.fstype });
        direct.set(name, list);
      } else if (m.device.startsWith("/dev/") && criticalMount(m.mountpoint, m.fstype)) {
        cannotTell({
          path: mountsFile.path,
          message: `cannot tell which disk holds ${m.mountpoint} (${m.device}): no block device or dm name ties it to /sys/block; its disk is not marked`,
        });
      }
    }
  }
  const swapsText = await ctx.fs.readText("/proc/swaps");
  const swapFiles = (swapsText?.split("\n").slice(1) ?? [])
    .map((line) => line.trim().split(/\s+/))
    .filter(([file, type]) => file && type === "partition")
    .map(([file]) => (file as string).replace(/\\040/g, " "));
  for (const name of await Promise.all(swapFiles.map(resolve))) if (name) swaps.add(name);

  // Filesystem type from the mount when udev did not say.
  for (const [name, uses] of direct) {
    const n = nodes.get(name);
    const fstype = uses[0]?.fstype;
    if (!n || !fstype) continue;
    if (n.partition && n.partition.fstype === null) {
      n.partition.fstype = fstype;
      n.disk.sources[`${n.name}.fstype`] = mountsFile?.path ?? "";
    }
    if (!n.disk.signatures.includes(fstype) && isBlockFs(fstype)) n.disk.signatures.push(fstype);
  }
  for (const name of swaps) {
    const n = nodes.get(name);
    if (n?.partition && n.partition.fstype === null) n.partition.fstype = "swap";
    if (n && !n.disk.signatures.includes("swap")) n.disk.signatures.push("swap");
  }

  // Everything stacked on a node (transitively), the node included.
  const closure = (start: string): string[] => {
    const seen = new Set<string>([start]);
    const queue = [start];
    while (queue.length) {
      const cur = queue.shift() as string;
      for (const h of holders.get(cur) ?? []) {
        if (!seen.has(h)) {
          seen.add(h);
          queue.push(h);
        }
      }
    }
    return [...seen];
  };
  const usesOf = (names: string[]) => {
    const all = new Set<string>();
    for (const n of names) for (const c of closure(n)) all.add(c);
    return [...all];
  };

  for (const n of nodes.values()) {
    if (!n.partition) continue;
    const reach = closure(n.name);
    n.partition.holders = [...(holders.get(n.name) ?? [])].sort();
    n.partition.mountpoints = unique(reach.flatMap((r) => (direct.get(r) ?? []).map((u) => u.mountpoint)));
  }
  for (const disk of disks) {
    const own = [disk.name, ...disk.partitions.map((p) => p.name)];
    const reach = usesOf(own);
    const uses = reach.flatMap((r) => direct.get(r) ?? []);
    disk.holders = unique(own.flatMap((o) => [...(holders.get(o) ?? [])])).filter((h) => !own.includes(h));
    if (disk.holders.length) disk.sources.holders = `/sys/block/${disk.name}/holders`;
    disk.mountpoints = unique(uses.map((u) => u.mountpoint));
    const roles = new Set<Role>();
    for (const u of uses) {
      if (u.mountpoint === "/") roles.add("root");
      if (u.mountpoint === "/boot") roles.add("boot");
      if (u.mountpoint === "/boot/efi" || u.mountpoint === "/efi") roles.add("efi");
      if (BOOT_MEDIUM_MOUNTS.has(u.mountpoint) || u.fstype === "iso9660") roles.add("boot-medium");
    }
    if (reach.some((r) => swaps.has(r))) roles.add("swap");
    disk.roles = (["root", "boot", "efi", "boot-medium", "swap"] as const).filter((r) => roles.has(r));
    if (mountsFile && (disk.mountpoints.length || roles.size)) {
      disk.sources.mountpoints = mountsFile.path;
      disk.sources.roles = roles.has("swap") && roles.size === 1 ? "/proc/swaps" : mountsFile.path;
    }
  }
  const said = unknown as { path: string; message: string } | null;
  const rootDisk: RootDiskReport = said
    ? { known: false, disks: [], reason: `${said.path}: ${said.message}` }
    : { known: true, disks: disks.filter((d) => d.roles.includes("root")).map((d) => d.name), reason: null };
  return { disks, rootDisk };
}

/** Reads one /sys/block entry and its partitions; null for loop devices of size 0. */
async function inspectBlock(ctx: DetectContext, name: string): Promise<BlockNode[] | null> {
  const { fs } = ctx;
  const entry = `/sys/block/${name}`;
  const sources: Sources = {};
  const disk: DiskReport = {
    name,
    path: `/dev/${name}`,
    sizeBytes: null,
    model: null,
    serial: null,
    wwn: null,
    byId: [],
    rotational: null,
    removable: null,
    readOnly: null,
    transport: null,
    pciAddress: null,
    virtual: /^(dm-|loop|zram|md|ram|nbd)/.test(name),
    partitions: [],
    holders: [],
    mountpoints: [],
    signatures: [],
    roles: [],
    sources,
  };
  const link = await fs.readLink(entry);
  const base = link ?? entry;
  const read = (p: string) => fs.readText(p);
  const [sizeText, rotText, remText, roText, devText] = await Promise.all([
    read(`${base}/size`),
    read(`${base}/queue/rotational`),
    read(`${base}/removable`),
    read(`${base}/ro`),
    read(`${base}/dev`),
  ]);
  // Nothing readable: only then pay for the check that tells a dangling link from an empty device.
  if ([sizeText, rotText, remText, roText, devText].every((t) => t === null) && !(await fs.exists(base))) {
    ctx.warnings.push({
      path: entry,
      message: link ? `link to ${link} leads nowhere: the disk's facts are unknown` : "is not readable",
    });
    return [{ name, disk, partition: null, base: null, majMin: null, udev: {}, udevPath: null }];
  }
  if (link) disk.virtual = link.startsWith("/sys/devices/virtual/");
  const sectors = intOrWarn(ctx, `${base}/size`, sizeText);
  if (name.startsWith("loop") && sectors === 0) return null;
  disk.sizeBytes = sectors === null ? null : sectors * 512;
  if (disk.sizeBytes !== null) sources.sizeBytes = `${base}/size`;
  disk.rotational = flag(ctx, sources, "rotational", `${base}/queue/rotational`, rotText);
  disk.removable = flag(ctx, sources, "removable", `${base}/removable`, remText);
  disk.readOnly = flag(ctx, sources, "readOnly", `${base}/ro`, roText);

  const majMin = parseDev(ctx, `${base}/dev`, devText);
  // NVMe namespaces live under their controller (.../nvme/nvme0/nvme0n1); model and serial are there.
  const parent = base.slice(0, base.lastIndexOf("/"));
  const ctrl = /^nvme\d+$/.test(basename(parent)) ? parent : null;
  const [{ udev, udevPath }, model, serial, wwn, children] = await Promise.all([
    readUdev(fs, majMin),
    firstAttr(ctx, sources, "model", [`${base}/device/model`, ctrl && `${ctrl}/model`]),
    firstAttr(ctx, sources, "serial", [`${base}/device/serial`, `${base}/serial`, ctrl && `${ctrl}/serial`]),
    firstAttr(ctx, sources, "wwn", [`${base}/wwid`, `${base}/device/wwid`]),
    fs.readDir(base),
  ]);
  disk.model = model;
  disk.serial = serial;
  disk.wwn = wwn;
  if (udevPath) {
    const model = udev.ID_MODEL_ENC ? decodeUdev(udev.ID_MODEL_ENC).trim() : udev.ID_MODEL?.trim();
    const fill = (field: "model" | "serial" | "wwn", value: string | undefined) => {
      if (disk[field] === null && value) {
        disk[field] = value;
        sources[field] = udevPath;
      }
    };
    fill("model", model);
    fill("serial", udev.ID_SERIAL_SHORT?.trim());
    fill("wwn", udev.ID_WWN?.trim());
    for (const sig of [udev.ID_PART_TABLE_TYPE, udev.ID_FS_TYPE]) {
      if (sig && !disk.signatures.includes(sig)) disk.signatures.push(sig);
    }
    if (disk.signatures.length) sources.signatures = udevPath;
  }

  if (!disk.virtual) {
    disk.transport = transportOf(name, base);
    if (disk.transport) sources.transport = base;
    disk.pciAddress = base.split("/").findLast((c) => PCI_ADDRESS.test(c)) ?? null;
    if (disk.pciAddress) sources.pciAddress = base;
  }

  const nodes: BlockNode[] = [{ name, disk, partition: null, base, majMin, udev, udevPath }];
  const parts = await Promise.all(
    // Partitions are the children named after the disk (sda1, nvme0n1p2) that carry a `partition` file.
    (children ?? [])
      .filter((child) => child.startsWith(name) && child !== name)
      .map(async (child) => {
        const pbase = `${base}/${child}`;
        const [numText, psize, pdev] = await Promise.all([
          fs.readText(`${pbase}/partition`),
          read(`${pbase}/size`),
          read(`${pbase}/dev`),
        ]);
        if (numText === null) return null;
        const psectors = intOrWarn(ctx, `${pbase}/size`, psize);
        const pmajMin = parseDev(ctx, `${pbase}/dev`, pdev);
        const pu = await readUdev(fs, pmajMin);
        const fstype = pu.udev.ID_FS_TYPE?.trim() || null;
        const partition: Partition = {
          name: child,
          sizeBytes: psectors === null ? null : psectors * 512,
          mountpoints: [],
          holders: [],
          fstype,
          byId: [],
        };
        const node: BlockNode = { name: child, disk, partition, base: pbase, ...pu, majMin: pmajMin };
        return { node, num: parseIntOr(numText) };
      }),
  );
  const found = parts
    .filter((p) => p !== null)
    .sort((a, b) => a.num - b.num || compareText(a.node.name, b.node.name));
  for (const { node } of found) {
    disk.partitions.push(node.partition as Partition);
    nodes.push(node);
    const fstype = node.partition?.fstype;
    if (fstype && !disk.signatures.includes(fstype)) {
      disk.signatures.push(fstype);
      sources.signatures ??= node.udevPath ?? "";
    }
  }
  return nodes;
}

function byIdList(n: BlockNode): string[] {
  if (!n.partition) return n.disk.byId;
  n.partition.byId = n.partition.byId ?? [];
  return n.partition.byId;
}

function flag(
  ctx: DetectContext,
  sources: Sources,
  field: string,
  path: string,
  text: string | null,
): boolean | null {
  const n = intOrWarn(ctx, path, text);
  if (n === null) return null;
  sources[field] = path;
  return n !== 0;
}

function parseIntOr(text: string): number {
  const n = Number.parseInt(text.trim(), 10);
  return Number.isFinite(n) ? n : Number.MAX_SAFE_INTEGER;
}

function parseDev(ctx: DetectContext, path: string, text: string | null): string | null {
  if (text === null) return null;
  const t = text.trim();
  if (/^\d+:\d+$/.test(t)) return t;
  ctx.warnings.push({ path, message: `expected MAJOR:MINOR, found ${JSON.stringify(t.slice(0, 40))}` });
  return null;
}

/** The first non-empty attribute among paths; the one used is recorded in sources. */
async function firstAttr(
  ctx: DetectContext,
  sources: Sources,
  field: string,
  paths: (string | null)[],
): Promise<string | null> {
  // Read every candidate at once: sequential awaits cost a thread-pool round trip each.
  const present = paths.filter((p): p is string => Boolean(p));
  const values = await Promise.all(present.map((p) => ctx.fs.readText(p)));
  for (const [i, p] of present.entries()) {
    const v = values[i]?.trim();
    if (v) {
      sources[field] = p;
      return v;
    }
  }
  return null;
}

function transportOf(name: string, base: string): string | null {
  if (/^nvme/.test(name) || base.includes("/nvme/")) return "nvme";
  if (/\/usb\d+\//.test(base)) return "usb";
  if (/\/virtio\d+\//.test(base)) return "virtio";
  if (/\/ata\d+\//.test(base)) return "sata";
  if (/^mmcblk/.test(name) || base.includes("/mmc_host/")) return "mmc";
  if (/\/host\d+\/(target|rport|port)/.test(base)) return "scsi";
  return null;
}

/** The udev database entry of b<MAJOR>:<MINOR>: E: properties, and S: symlinks joined under "S:". */
async function readUdev(
  fs: HostFs,
  majMin: string | null,
): Promise<{ udev: Record<string, string>; udevPath: string | null }> {
  if (!majMin) return { udev: {}, udevPath: null };
  const path = `/run/udev/data/b${majMin}`;
  const text = await fs.readText(path);
  if (text === null) return { udev: {}, udevPath: null };
  const udev: Record<string, string> = {};
  const links: string[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("E:")) {
      const i = line.indexOf("=");
      if (i > 2) udev[line.slice(2, i)] = line.slice(i + 1);
    } else if (line.startsWith("S:")) links.push(line.slice(2));
  }
  if (links.length) udev["S:"] = links.join("\n");
  return { udev, udevPath: path };
}

/** udev's *_ENC values escape bytes as \xNN. */
function decodeUdev(s: string): string {
  return s.replace(/\\x([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
}

/** /dev/disk/by-id/* grouped by the kernel name they point at. */
async function readById(fs: HostFs, nodes: Map<string, BlockNode>): Promise<Map<string, string[]>> {
  const dir = "/dev/disk/by-id";
  const out = new Map<string, string[]>();
  const entries = (await fs.readDir(dir)) ?? [];
  await Promise.all(
    entries.map(async (e) => {
      const target = await fs.readLink(`${dir}/${e}`);
      if (!target?.startsWith("/dev/")) return;
      const name = basename(target);
      if (!nodes.has(name)) return;
      const list = out.get(name) ?? [];
      list.push(`${dir}/${e}`);
      out.set(name, list);
    }),
  );
  return out;
}

/** dm names (the NAME of /dev/mapper/NAME) to kernel names, from dm/name, by-id dm-name-* links or udev. */
async function readDmNames(ctx: DetectContext, nodes: Map<string, BlockNode>): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  await Promise.all(
    [...nodes.values()].map(async (n) => {
      if (!n.name.startsWith("dm-") || !n.base) return;
      const fromSys = (await ctx.fs.readText(`${n.base}/dm/name`))?.trim();
      const name = fromSys || n.udev.DM_NAME?.trim();
      if (name) {
        out.set(name, n.name);
        n.disk.sources.dmName = fromSys ? `${n.base}/dm/name` : (n.udevPath ?? "");
      }
    }),
  );
  const byId = (await ctx.fs.readDir("/dev/disk/by-id")) ?? [];
  const dmLinks = byId.filter((e) => e.startsWith("dm-name-"));
  const targets = await Promise.all(dmLinks.map((e) => ctx.fs.readLink(`/dev/disk/by-id/${e}`)));
  for (const [i, e] of dmLinks.entries()) {
    const target = targets[i];
    const kname = target ? basename(target) : null;
    if (kname && nodes.has(kname) && !out.has(e.slice(8))) out.set(e.slice(8), kname);
  }
  return out;
}

/** Maps a mount source (/dev/sda1, /dev/mapper/NAME, /dev/dm-0, /dev/disk/by-uuid/...) to a kernel name. */
async function resolveDevice(
  fs: HostFs,
  device: string,
  nodes: Map<string, BlockNode>,
  dmNames: Map<string, string>,
): Promise<string | null> {
  let dev = device;
  for (let hop = 0; hop < 8; hop++) {
    if (!dev.startsWith("/dev/")) return null;
    const rest = dev.slice(5);
    if (!rest.includes("/") && nodes.has(rest)) return rest;
    if (rest.startsWith("mapper/")) {
      const k = dmNames.get(rest.slice(7));
      if (k) return k;
    }
    // A symlink in /dev (mapper, by-uuid, vg/lv) names its device: follow it when it was captured.
    const next = await fs.readLink(dev);
    if (!next || next === dev) return null;
    dev = next;
  }
  return null;
}

/**
 * The first mount table found. A link (/etc/mtab -> /proc/self/mounts) is followed as a host path
 * explicitly, so an absolute link inside a snapshot never reads the mounts of the machine running us.
 */
const mountTables = new WeakMap<HostFs, Promise<{ path: string; text: string } | null>>();

/** The mount table, read once per HostFs (storage and firmware detection both need it). */
export function readMounts(fs: HostFs): Promise<{ path: string; text: string } | null> {
  let table = mountTables.get(fs);
  if (!table) {
    table = readMountTable(fs);
    mountTables.set(fs, table);
  }
  return table;
}

async function readMountTable(fs: HostFs): Promise<{ path: string; text: string } | null> {
  for (const path of MOUNT_FILES) {
    const target = await fs.readLink(path);
    const text = await fs.readText(target ?? path);
    if (text !== null) return { path: target ?? path, text };
  }
  return null;
}

function criticalMount(mountpoint: string, fstype: string): boolean {
  return (
    ["/", "/boot", "/boot/efi", "/efi"].includes(mountpoint) ||
    BOOT_MEDIUM_MOUNTS.has(mountpoint) ||
    fstype === "iso9660"
  );
}

function isBlockFs(fstype: string): boolean {
  return !/^(tmpfs|devtmpfs|proc|sysfs|overlay|nfs4?|cifs|fuse.*|autofs|cgroup2?)$/.test(fstype);
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)].sort();
}
