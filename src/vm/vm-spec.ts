// One VM as kvmstrap deploys it: the answer file's vms: entry with its match rules resolved on this
// host (from-answer.ts builds it, for the answer file and for `vm deploy` flags alike), plus the few
// things only tests and benches set (direct kernel boot). Its hash says "the same deployment".
import { createHash } from "node:crypto";
import type { ConsoleGraphics } from "./console-xml.js";
import type { VmNic } from "./domain-xml.js";
import type { SharedDisk } from "./network-disk.js";

export type VmUser = { name: string; sshKeys: string[]; passwordHash?: string; sudo: boolean };

export type VmSpec = {
  name: string;
  /** A base image path (qcow2, or raw when it ends in .raw/.img), or the name of a cached image. */
  image: string;
  vcpus: number;
  memoryMiB: number;
  diskGiB: number;
  user: VmUser;
  /** A directory of cloud-init templates (user-data.yaml, meta-data.yaml, network-config.yaml). */
  template?: string;
  hostname?: string;
  nics: VmNic[];
  hostdevs?: string[];
  uefi?: { loader: string; nvram: string };
  hugepages?: boolean;
  /** Pin vCPUs and memory to the NUMA node nearest the hostdevs (node 0 when nothing ties it). */
  pin?: boolean;
  /** Direct kernel boot (tests, images without a bootloader). */
  kernel?: { path: string; initrd?: string; cmdline: string };
  packages?: string[];
  runcmd?: (string | string[])[];
  /** VNC and/or SPICE (the answer's consoles:). */
  graphics?: ConsoleGraphics;
  /** The disk is this volume or network disk of a cluster store instead of an overlay on `image`. */
  sharedDisk?: SharedDisk;
};

/** A stable MAC for NIC i of a VM (locally administered, QEMU's 52:54:00 prefix). */
export function vmMac(name: string, index: number): string {
  const h = createHash("sha256").update(`${name}\0${index}`).digest();
  return `52:54:00:${[h[0], h[1], h[2]].map((b) => (b as number).toString(16).padStart(2, "0")).join(":")}`;
}

/** The spec as it is hashed: defaults filled in, so equal deployments hash equally. */
export function specHash(spec: VmSpec): string {
  const norm = {
    ...spec,
    hostname: spec.hostname ?? spec.name,
    nics: spec.nics.map((n, i) => ({ ...n, mac: (n.mac ?? vmMac(spec.name, i)).toLowerCase() })),
    hostdevs: spec.hostdevs ?? [],
    packages: spec.packages ?? [],
    runcmd: spec.runcmd ?? [],
    pin: spec.pin ?? false,
    hugepages: spec.hugepages ?? false,
  };
  const sorted = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sorted)
      : v && typeof v === "object"
        ? Object.fromEntries(
            Object.entries(v as Record<string, unknown>)
              .filter(([, x]) => x !== undefined)
              .sort(([a], [b]) => a.localeCompare(b))
              .map(([k, x]) => [k, sorted(x)]),
          )
        : v;
  return createHash("sha256")
    .update(JSON.stringify(sorted(norm)))
    .digest("hex");
}
