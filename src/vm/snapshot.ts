// External, disk-only snapshots of a VM through the libvirt port. Creating one puts a new qcow2
// overlay on top of each writable file disk (libvirt's snapshot-create --disk-only --atomic), with
// the guest agent's filesystem freeze when the agent answers. Deleting one is libvirt's own (since
// 9.0 it merges an external snapshot's overlay with blockcommit). Reverting is not: libvirt 9.0
// refuses to revert to an external snapshot (that came in 9.9), so kvmstrap does what 9.9 does for
// the newest snapshot: power the VM off, replace the snapshot's overlay with an empty one on the same
// base (the disk as it was when the snapshot was taken), start the VM again if it was running. The
// domain and libvirt's metadata stay as they were, so list and delete go on working after a revert.
// A snapshot also records the guest's addresses when it was taken (the agent's view, else libvirt's
// DHCP leases, else the host's ARP table), kept in its libvirt description so list shows them: a VM
// reverted to it comes back with the configuration that had those addresses.
import { rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { InputError } from "../core/errors.js";
import { attribute, child, children, parseXmlTree, textOf } from "../core/xml-tree.js";
import { type CommandRunner, ExecaRunner } from "../host/commands.js";
import {
  type AddressSource,
  type DomainDisk,
  type DomainInterface,
  type Libvirt,
  LibvirtError,
} from "./libvirt.js";
import { backingFile } from "./manage.js";

export const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export type SnapshotDeps = { libvirt: Libvirt; runner?: CommandRunner };
export type SnapshotDisk = { target: string; file: string };
export type SnapshotInfo = {
  name: string;
  /** ISO time the snapshot was taken. */
  createdAt: string;
  /** The domain's state when it was taken ("running", "shutoff"). */
  domainState: string;
  parent: string | null;
  /** The overlays the snapshot created: writes since the snapshot go there. */
  disks: SnapshotDisk[];
  /** The guest's addresses when it was taken (null: not running, none known, or taken before kvmstrap kept them). */
  addresses: SnapshotAddresses | null;
};
export type SnapshotAddresses = { source: AddressSource; interfaces: DomainInterface[] };
export type CreateResult = {
  vm: string;
  snapshot: string;
  disks: SnapshotDisk[];
  quiesced: boolean;
  /** Why the filesystems were not frozen, when they were not. */
  quiesceNote?: string;
  addresses: SnapshotAddresses | null;
  durationMs: number;
};
export type RevertResult = { vm: string; snapshot: string; restarted: boolean; disks: SnapshotDisk[] };

const esc = (s: string) =>
  s.replace(
    /[<>&'"]/g,
    (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&apos;", '"': "&quot;" })[c] ?? c,
  );

export function checkSnapshotName(name: string | undefined): string {
  if (!name) throw new InputError("a snapshot NAME is needed");
  if (!SNAPSHOT_NAME.test(name))
    throw new InputError(
      `snapshot name "${name}": use letters, digits, '.', '_' or '-' (at most 64, no leading dot)`,
    );
  return name;
}

/** A disk as snapshots and backups see it: domblklist's row and whether the domain marks it read-only. */
export type VmDisk = DomainDisk & { readonly: boolean };

/** The targets of the disks a domain XML marks <readonly/> (a cloud-init seed, an ISO). */
export function readonlyTargets(domainXml: string): Set<string> {
  const devices = child(child(parseXmlTree(domainXml), "domain"), "devices");
  const out = new Set<string>();
  for (const disk of children(devices, "disk")) {
    const dev = attribute(child(disk, "target"), "dev");
    if (dev && children(disk, "readonly").length) out.add(dev);
  }
  return out;
}

export async function vmDisks(lv: Libvirt, vm: string): Promise<VmDisk[]> {
  const ro = readonlyTargets(await lv.domainXml(vm));
  return (await lv.domainDisks(vm)).map((d) => ({ ...d, readonly: ro.has(d.target) }));
}

/** The disks a disk-only snapshot or a backup covers: writable file disks; seeds, CD-ROMs and others are left out. */
export const snapshotable = (d: VmDisk): d is VmDisk & { source: string } =>
  d.device === "disk" && d.type === "file" && d.source !== null && !d.readonly;

/** Where a disk's overlay for SNAP goes: beside the disk, "web.qcow2" → "web.SNAP.qcow2". */
export function overlayPath(source: string, snapshot: string): string {
  const ext = path.extname(source);
  return path.join(path.dirname(source), `${path.basename(source, ext)}.${snapshot}${ext || ".qcow2"}`);
}

const DESCRIPTION = "kvmstrap vm snapshot";
const ADDRESSES_LINE = /^addresses: (\{.*\})$/m;

/** The snapshot's description: who made it and, on a line of its own, the addresses as JSON. */
export function snapshotDescription(addresses: SnapshotAddresses | null): string {
  return addresses ? `${DESCRIPTION}\naddresses: ${JSON.stringify(addresses)}` : DESCRIPTION;
}

/** The addresses a description records, or null (another tool's snapshot, or an older kvmstrap's). */
export function addressesOf(description: string): SnapshotAddresses | null {
  const json = ADDRESSES_LINE.exec(description)?.[1];
  if (!json) return null;
  try {
    const a = JSON.parse(json) as SnapshotAddresses;
    const ok =
      ["agent", "lease", "arp"].includes(a.source) &&
      Array.isArray(a.interfaces) &&
      a.interfaces.every((i) => typeof i.iface === "string" && Array.isArray(i.addrs));
    return ok ? a : null;
  } catch {
    return null;
  }
}

const LOOPBACK = /^(127\.|::1$)/;

/**
 * The guest's interface addresses now, loopback left out: the guest agent's view when it answers
 * (every interface, static addresses too), else libvirt's DHCP leases, else the host's ARP table
 * (`virsh domifaddr --source agent|lease|arp`). Null when none has an address.
 */
export async function guestAddresses(
  lv: Libvirt,
  vm: string,
  agent: boolean,
): Promise<SnapshotAddresses | null> {
  const sources: AddressSource[] = agent ? ["agent", "lease", "arp"] : ["lease", "arp"];
  for (const source of sources) {
    let found: DomainInterface[];
    try {
      found = await lv.ifAddresses(vm, source);
    } catch (e) {
      if (e instanceof LibvirtError) continue; // this source cannot say; the next may
      throw e;
    }
    const interfaces = found
      .map((i) => ({ ...i, addrs: i.addrs.filter((a) => !LOOPBACK.test(a.address)) }))
      .filter((i) => i.addrs.length > 0);
    if (interfaces.length) return { source, interfaces };
  }
  return null;
}

export function snapshotXmlFor(
  snapshot: string,
  disks: VmDisk[],
  addresses: SnapshotAddresses | null = null,
): string {
  const lines = disks.map((d) =>
    snapshotable(d)
      ? `    <disk name='${esc(d.target)}' snapshot='external'><driver type='qcow2'/><source file='${esc(overlayPath(d.source, snapshot))}'/></disk>`
      : `    <disk name='${esc(d.target)}' snapshot='no'/>`,
  );
  return `<domainsnapshot>\n  <name>${esc(snapshot)}</name>\n  <description>${esc(snapshotDescription(addresses))}</description>\n  <disks>\n${lines.join("\n")}\n  </disks>\n</domainsnapshot>\n`;
}

/** The parts of `snapshot-dumpxml` kvmstrap uses. */
export function parseSnapshotXml(text: string): SnapshotInfo {
  const s = child(parseXmlTree(text), "domainsnapshot");
  // Text as written: a snapshot named "1.0" or "0" is that name, not a number.
  const name = textOf(child(s, "name"));
  if (!name) throw new Error("not a domainsnapshot document");
  const created = Number(textOf(child(s, "creationTime")) ?? Number.NaN);
  const disks: SnapshotDisk[] = [];
  for (const d of children(child(s, "disks"), "disk")) {
    const file = attribute(child(d, "source"), "file");
    if (attribute(d, "snapshot") === "external" && file !== null)
      disks.push({ target: attribute(d, "name") ?? "", file });
  }
  const parent = child(s, "parent");
  const description = textOf(child(s, "description"));
  return {
    name,
    createdAt: Number.isFinite(created) ? new Date(created * 1000).toISOString() : "",
    domainState: textOf(child(s, "state")) ?? "",
    parent: parent === undefined ? null : (textOf(child(parent, "name")) ?? null),
    disks,
    addresses: description !== null ? addressesOf(description) : null,
  };
}

async function requireVm(lv: Libvirt, vm: string): Promise<void> {
  if (!(await lv.domainExists(vm))) throw new InputError(`no such VM "${vm}" on ${lv.uri}`);
}

async function snapshotInfo(lv: Libvirt, vm: string, snapshot: string): Promise<SnapshotInfo> {
  try {
    return parseSnapshotXml(await lv.snapshotXml(vm, snapshot));
  } catch (e) {
    if (e instanceof LibvirtError && e.code === "no-snapshot")
      throw new InputError(`VM "${vm}" has no snapshot "${snapshot}" (kvmstrap vm snapshot list ${vm})`);
    throw e;
  }
}

export async function listSnapshots(vm: string, deps: SnapshotDeps): Promise<SnapshotInfo[]> {
  await requireVm(deps.libvirt, vm);
  const out: SnapshotInfo[] = [];
  for (const name of await deps.libvirt.snapshotNames(vm))
    out.push(await snapshotInfo(deps.libvirt, vm, name));
  return out;
}

export async function createSnapshot(
  vm: string,
  snapshot: string,
  deps: SnapshotDeps,
): Promise<CreateResult> {
  const lv = deps.libvirt;
  checkSnapshotName(snapshot);
  await requireVm(lv, vm);
  if ((await lv.snapshotNames(vm)).includes(snapshot))
    throw new InputError(`VM "${vm}" already has a snapshot "${snapshot}"`);
  const disks = await vmDisks(lv, vm);
  const covered = disks.filter(snapshotable);
  if (covered.length === 0) throw new InputError(`VM "${vm}" has no writable file disk to snapshot`);
  for (const d of covered) {
    const file = overlayPath(d.source, snapshot);
    if (await stat(file).catch(() => null))
      throw new InputError(`${file} already exists: it would be the new overlay of ${d.target}`);
  }
  const running = (await lv.domainState(vm)) === "running";
  let quiesceNote: string | undefined = running ? undefined : "the VM is not running";
  const agent = running && (await lv.agentPing(vm));
  if (running && !agent) quiesceNote = "the guest agent did not answer";
  const started = Date.now();
  // Read before the freeze: the agent answers nothing while the filesystems are frozen.
  const addresses = running ? await guestAddresses(lv, vm, agent) : null;
  const body = snapshotXmlFor(snapshot, disks, addresses);
  let quiesced = quiesceNote === undefined;
  try {
    await lv.snapshotCreate(vm, body, { quiesce: quiesced });
  } catch (e) {
    // A guest whose agent answers but cannot freeze (no fsfreeze hook, an unfreezable filesystem):
    // take the snapshot without the freeze and say so.
    if (!quiesced || !(e instanceof LibvirtError) || e.code !== "agent") throw e;
    quiesced = false;
    quiesceNote = `the guest agent could not freeze the filesystems (${e.message})`;
    await lv.snapshotCreate(vm, body, { quiesce: false });
  }
  return {
    vm,
    snapshot,
    disks: covered.map((d) => ({ target: d.target, file: overlayPath(d.source, snapshot) })),
    quiesced,
    ...(quiesceNote ? { quiesceNote } : {}),
    addresses,
    durationMs: Date.now() - started,
  };
}

export async function deleteSnapshot(
  vm: string,
  snapshot: string,
  deps: SnapshotDeps,
): Promise<SnapshotInfo> {
  await requireVm(deps.libvirt, vm);
  const info = await snapshotInfo(deps.libvirt, vm, snapshot);
  await deps.libvirt.snapshotDelete(vm, snapshot);
  return info;
}

export async function revertSnapshot(
  vm: string,
  snapshot: string,
  deps: SnapshotDeps,
): Promise<RevertResult> {
  const lv = deps.libvirt;
  const runner = deps.runner ?? new ExecaRunner();
  await requireVm(lv, vm);
  const info = await snapshotInfo(lv, vm, snapshot);
  const all = await listSnapshots(vm, deps);
  const newer = all.filter((s) => s.parent === snapshot).map((s) => s.name);
  if (newer.length)
    throw new InputError(
      `snapshot "${snapshot}" of "${vm}" has newer snapshots (${newer.join(", ")}): delete them first, newest first`,
    );
  const current = new Map((await lv.domainDisks(vm)).map((d) => [d.target, d.source]));
  const bases: { disk: SnapshotDisk; base: string }[] = [];
  for (const disk of info.disks) {
    if (current.get(disk.target) !== disk.file)
      throw new InputError(
        `disk ${disk.target} of "${vm}" is ${current.get(disk.target) ?? "gone"}, not the snapshot's overlay ${disk.file}: cannot revert`,
      );
    const base = await backingFile(runner, disk.file);
    if (!base) throw new InputError(`${disk.file} has no backing file: not an external snapshot's overlay`);
    bases.push({ disk, base });
  }
  const running = (await lv.domainState(vm)) === "running";
  if (running) await lv.destroy(vm); // the disk state is thrown away, so there is nothing to shut down cleanly
  for (const { disk, base } of bases) {
    // The empty overlay is made beside the old one and renamed over it: a crash leaves one or the other.
    const tmp = `${disk.file}.kvmstrap-revert-${process.pid}`;
    const r = await runner.run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, tmp], {
      timeoutMs: 60_000,
    });
    if (r.exitCode !== 0) {
      await rm(tmp, { force: true });
      throw new Error(`qemu-img create over ${base} failed: ${r.stderr.trim()}`);
    }
    await rename(tmp, disk.file);
  }
  if (running) await lv.start(vm);
  return { vm, snapshot, restarted: running, disks: info.disks };
}
