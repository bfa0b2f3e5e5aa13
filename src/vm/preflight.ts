// What a VM deployment checks on the host before it creates anything, so that a deploy that cannot
// work fails at once with a clear reason instead of exiting 0 and failing later in the guest:
// - space: the VM directory's filesystem must hold the seed and a first boot's growth of the overlay
//   (see SPACE_MARGIN); an overlay that may outgrow the free space later is a warning;
// - devices: vhost-net is asked for only when the host has /dev/vhost-net (the host report); without
//   it the NICs use qemu's own virtio backend (one queue) instead of a domain that will not start;
// - hugepages: a hugepage-backed VM needs that many free pages of the default size (on its NUMA node
//   when pinned), else it is refused;
// - pinning: CPUs are allocated across VMs (placement.ts) from the pins other domains already hold.
import { statfs } from "node:fs/promises";
import path from "node:path";
import type { HostReport } from "../detect/types.js";
import type { Libvirt } from "./libvirt.js";
import { type CpuLoad, type Placement, pinnedLoad, placeVm } from "./placement.js";
import { DeployError } from "./vm-state.js";

const GiB = 2 ** 30;
const MiB = 2 ** 20;

/**
 * Free space a deploy needs beyond what exists: a qcow2 overlay starts at a few hundred KiB and grows
 * with every block the guest writes, up to the disk's virtual size. Requiring the whole virtual size
 * would forbid the thin provisioning overlays exist for (ten 20 GiB VMs on a 100 GiB disk); requiring
 * nothing lets a deploy "succeed" and the guest pause on its first boot when qemu hits ENOSPC. A
 * cloud image's first boot (cloud-init, logs, SSH keys, a few packages) writes a few hundred MB and
 * package installs more, so the margin is 2 GiB, or 10 % of the disk when that is larger, never more
 * than the disk can grow to (its virtual size) plus the seed and qcow2 metadata.
 */
export function spaceNeeded(diskBytes: number): number {
  const firstBoot = Math.max(2 * GiB, 0.1 * diskBytes);
  return Math.ceil(Math.min(firstBoot, diskBytes) + 16 * MiB); // + seed, record, qcow2 tables
}

export type PreflightSpec = {
  name: string;
  vcpus: number;
  memoryMiB: number;
  diskGiB: number;
  hugepages?: boolean;
  pin?: boolean;
  hostdevs?: string[];
};

export type PreflightDeps = {
  report: HostReport;
  libvirt: Libvirt;
  /** The VM directory (its filesystem is checked; the nearest existing parent when it is new). */
  vmDir: string;
  /** Free bytes available to this process at a path (default: statfs). */
  freeBytes?: (dir: string) => Promise<number>;
};

export type Preflight = {
  /** false: the host has no vhost-net (or it is unknown), so the domain must not ask for it. */
  vhostNet: boolean;
  placement: Placement | null;
  warnings: string[];
  /** One line for the deploy's step event. */
  summary: string;
};

async function statfsFree(dir: string): Promise<number> {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      const s = await statfs(d);
      return s.bavail * s.bsize;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT" || d === path.dirname(d)) throw e;
    }
  }
}

/**
 * Throws "no-space" unless the directory's filesystem has what a VM's overlay needs to start
 * (spaceNeeded); returns the free bytes. Called by the deploy preflight and again by the apply step
 * that creates the overlay, so an answer file's VMs are held to the same margin.
 */
export async function assertSpace(
  name: string,
  dir: string,
  diskBytes: number,
  freeBytes: (dir: string) => Promise<number> = statfsFree,
): Promise<number> {
  const free = await freeBytes(dir);
  const need = spaceNeeded(diskBytes);
  if (free < need) {
    throw new DeployError(
      "no-space",
      `no space left on the device holding ${dir}: ${size(free)} free, VM ${name} needs ` +
        `${size(need)} before it starts (its overlay's first boot; the ${(diskBytes / GiB).toFixed(0)} GiB disk can grow to its full size)`,
      "free space there, give the VM a smaller --disk (diskGiB in an answer file), or use another VM directory",
    );
  }
  return free;
}

const size = (n: number) => (n >= GiB ? `${(n / GiB).toFixed(2)} GiB` : `${(n / MiB).toFixed(1)} MiB`);

// Pins handed out by this process and not yet visible in a definition (concurrent deploys of one
// deployMany), per libvirt URI and VM name. A deploy defines its domain seconds after preflight, so a
// claim lapses after CLAIM_MS: one whose deploy failed does not hold its CPUs for the process's life.
const CLAIM_MS = 120_000;
const claims = new Map<string, Map<string, { cpus: number[]; at: number }>>();

async function place(spec: PreflightSpec, deps: PreflightDeps): Promise<Placement> {
  const mine = claims.get(deps.libvirt.uri) ?? new Map<string, { cpus: number[]; at: number }>();
  claims.set(deps.libvirt.uri, mine);
  const domains = await deps.libvirt.listDomains();
  const xmls: string[] = [];
  for (const d of domains) {
    if (d.name !== spec.name) xmls.push(await deps.libvirt.domainXml(d.name).catch(() => ""));
  }
  const defined = new Set(domains.map((d) => d.name));
  const now = Date.now();
  for (const [n, c] of mine) if (defined.has(n) || now - c.at > CLAIM_MS) mine.delete(n);
  const pending = [...mine].filter(([n]) => n !== spec.name).map(([, c]) => c.cpus);
  const placement = placeVm(deps.report, spec.hostdevs ?? [], {
    vcpus: spec.vcpus,
    load: pinnedLoad(xmls, pending),
  });
  mine.set(spec.name, { cpus: placement.cpus, at: now });
  return placement;
}

export type HugepageVerdict =
  | { ok: true; need: number; summary: string }
  | { ok: false; message: string; remediation: string };

/**
 * Whether a hugepage-backed VM's memory fits the free pages of the host's default hugepage size (the
 * size libvirt's <hugepages/> takes), on its NUMA node when it is pinned. The one implementation of
 * this check: the deploy's preflight and the answer file's rule (vms.host-resources) both call it.
 * `taken`: pages other VMs of the same deploy or answer take from that pool first; `free`: the
 * pool's free pages when the caller knows them better than the report (pages an answer reserves).
 */
export function hugepageVerdict(
  spec: { name: string; memoryMiB: number },
  report: HostReport,
  node: number | null,
  o: { taken?: number; free?: number } = {},
): HugepageVerdict {
  const sizeKiB = report.memory.hugepageSizeKiB;
  if (!sizeKiB) {
    return {
      ok: false,
      message: `VM ${spec.name}: hugepages asked for, but this host reports no hugepage size`,
      remediation:
        "reserve hugepages (vm.nr_hugepages or the kernel's hugepages= parameter) or drop hugepages",
    };
  }
  const need = Math.ceil((spec.memoryMiB * 1024) / sizeKiB);
  const key = `${sizeKiB}kB`;
  const pool =
    node === null
      ? report.memory.hugepages[key]
      : report.memory.numa.find((n) => n.id === node)?.hugepages[key];
  const free = Math.max(0, (o.free ?? pool?.free ?? 0) - (o.taken ?? 0));
  const where = `${node === null ? "on this host" : `on NUMA node ${node}`}${o.taken ? ` after the ${o.taken} other VMs take` : ""}`;
  if (free < need) {
    return {
      ok: false,
      message: `VM ${spec.name}: needs ${need} free ${sizeKiB} KiB hugepages for ${spec.memoryMiB} MiB, ${free} free ${where}`,
      remediation:
        "reserve more (kvm.hugepages in the answer, or echo N > /sys/kernel/mm/hugepages/hugepages-*/nr_hugepages), give the VM less memory, or drop hugepages",
    };
  }
  return { ok: true, need, summary: `${need} of ${free} free ${sizeKiB} KiB hugepages ${where}` };
}

function checkHugepages(spec: PreflightSpec, report: HostReport, node: number | null): string {
  const v = hugepageVerdict(spec, report, node);
  if (!v.ok) throw new DeployError("host-lacks", v.message, v.remediation);
  return v.summary;
}

/** What a VM without vhost-net on this host gets instead, or null when nothing is lost. */
export function vhostNetWarning(vcpus: number, report: HostReport): string | null {
  if (report.kvm.vhostNet === true || vcpus <= 1) return null;
  return `${report.kvm.vhostNet === false ? "no /dev/vhost-net on this host" : "vhost-net unknown"}: the NICs use qemu's virtio backend with one queue (modprobe vhost_net for multi-queue)`;
}

/**
 * CPUs for several pinned VMs deployed together, allocated across them (placement.ts): each VM is
 * placed against the load of the ones before it and of `load` (other domains). null for a VM that
 * is not pinned. The plan of an answer's vms: and its rule use it, so both see the same pins.
 */
export function placeTogether(
  report: HostReport,
  vms: readonly { vcpus: number; pin?: boolean | undefined; hostdevs?: string[] | undefined }[],
  load: CpuLoad = new Map(),
): (Placement | null)[] {
  const now = new Map(load);
  return vms.map((vm) => {
    if (!vm.pin) return null;
    const p = placeVm(report, vm.hostdevs ?? [], { vcpus: vm.vcpus, load: now });
    for (const c of p.cpus) now.set(c, (now.get(c) ?? 0) + 1);
    return p;
  });
}

/**
 * Checks a VM can be deployed here and decides what the domain may ask of the host. Throws a
 * DeployError ("no-space", "host-lacks") when it cannot; nothing has been created by then.
 */
export async function preflightVm(spec: PreflightSpec, deps: PreflightDeps): Promise<Preflight> {
  const warnings: string[] = [];
  const said: string[] = [];
  const diskBytes = Math.round(spec.diskGiB * GiB);
  const free = await assertSpace(spec.name, deps.vmDir, diskBytes, deps.freeBytes);
  said.push(`${size(free)} free`);
  if (free < diskBytes) {
    warnings.push(
      `${deps.vmDir} has ${size(free)} free, less than the ${spec.diskGiB} GiB the disk can grow to: the VM pauses if it fills`,
    );
  }
  const vhostNet = deps.report.kvm.vhostNet === true;
  const noVhost = vhostNetWarning(spec.vcpus, deps.report);
  if (noVhost) warnings.push(noVhost);
  const placement = spec.pin ? await place(spec, deps) : null;
  if (placement) said.push(`placement: ${placement.reason}`);
  if (spec.hugepages) said.push(checkHugepages(spec, deps.report, placement?.node ?? null));
  return { vhostNet, placement, warnings, summary: said.join("; ") };
}
