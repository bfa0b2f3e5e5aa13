// Install cases in the Proxmox installer's style: each folder under cases/ holds an answer, and for
// each host it runs on, the expected outcome as an operator reads it: the install plan (every step
// and command) or the refusal (each reason with file:line and the fix). The hosts are synthetic live
// systems read by the real detection; the boot medium is the same USB stick whether it is mounted
// by name, mounted through a label link with the kernel names shuffled, or not mounted at all.
// The expected files were written once and reviewed; KVMSTRAP_WRITE_EXPECTED=1 writes missing ones.
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { installBlockers, prepareInstall } from "../../src/app/install.js";
import { renderPlanText } from "../../src/plan/diff.js";
import {
  BLANK_USB,
  CDROM,
  DATA,
  type DiskSpec,
  type LiveHostSpec,
  liveHost,
  STICK,
  TARGET,
} from "./live-host.js";

const CASES = "test/install/cases";
const IDS = { rootUuid: "6c1f3a52-8e0b-4d7a-9a43-0d1e2f3a4b5c", espVolumeId: "1a2b3c4d" };
const UNITS = {
  copy: ["kvmstrap-firstboot-failed.service", "kvmstrap-firstboot.service"],
  enable: ["kvmstrap-firstboot.service"],
  wrapper: "kvmstrap-firstboot",
};

const renamed = (d: DiskSpec, name: string, majMin: string, partMajMin?: string): DiskSpec => ({
  ...d,
  name,
  majMin,
  ...(d.partitions && partMajMin
    ? { partitions: d.partitions.map((p) => ({ ...p, majMin: partMajMin })) }
    : {}),
});

const HOSTS: Record<string, LiveHostSpec> = {
  // Booted from the CD: sr0 holds the live medium.
  "cd-boot": {
    disks: [TARGET, DATA, CDROM, BLANK_USB],
    mounts: [["/dev/sr0", "/run/live/medium", "iso9660"]],
  },
  // Booted from the stick, which the kernel named sdb.
  "usb-boot": {
    disks: [TARGET, DATA, STICK, BLANK_USB],
    mounts: [["/dev/sdb", "/run/live/medium", "iso9660"]],
  },
  // The same machine booted again: the stick is sda now, the data disk sdb, and live-boot mounted
  // the medium through its label link.
  "usb-boot-renamed": {
    disks: [TARGET, renamed(DATA, "sdb", "8:16", "8:17"), renamed(STICK, "sda", "8:0"), BLANK_USB],
    mounts: [["/dev/disk/by-label/KVMSTRAP", "/run/live/medium", "iso9660"]],
  },
  // A disk that was a ZFS pool's member (one partition), booted from the CD.
  "zfs-data": {
    disks: [
      TARGET,
      {
        ...DATA,
        partitions: [
          { n: 1, majMin: "8:1", sizeBytes: 499 * 1024 ** 3 + 768 * 1024, fs: { type: "zfs_member" } },
        ],
      },
      CDROM,
    ],
    mounts: [["/dev/sr0", "/run/live/medium", "iso9660"]],
  },
  // Booted with toram: the medium was copied to RAM and unmounted; only its label tells it.
  "usb-toram": { disks: [TARGET, DATA, STICK, BLANK_USB], mounts: [] },
};

const RUNS: [string, string][] = [
  ["blank-virtio-disk", "cd-boot"],
  ["answer-names-the-network", "cd-boot"],
  ["usb-stick-is-the-boot-medium", "usb-boot"],
  ["usb-stick-is-the-boot-medium", "usb-boot-renamed"],
  ["usb-stick-is-the-boot-medium", "usb-toram"],
  ["data-disk-without-wipe", "usb-boot"],
  ["data-disk-with-wipe", "usb-boot-renamed"],
  ["two-disks-match", "usb-boot"],
  ["data-disk-with-wipe", "zfs-data"],
  ["blank-usb-disk", "usb-boot"],
];

const roots = new Map<string, ReturnType<typeof liveHost>>();
function rootOf(host: string): string {
  let h = roots.get(host);
  if (!h) {
    const spec = HOSTS[host];
    if (!spec) throw new Error(`no host ${host}`);
    h = liveHost(spec);
    if (host === "usb-boot-renamed") {
      mkdirSync(path.join(h.root, "dev/disk/by-label"), { recursive: true });
      symlinkSync("../../sda", path.join(h.root, "dev/disk/by-label/KVMSTRAP"));
    }
    roots.set(host, h);
  }
  return h.root;
}
afterAll(() => {
  for (const h of roots.values()) h.cleanup();
});

async function outcome(name: string, host: string): Promise<string> {
  const p = await prepareInstall(
    `${CASES}/${name}/answer.yaml`,
    { root: rootOf(host) },
    { ids: IDS, units: UNITS, installedAt: "2026-12-06T03:00:00.000Z", version: "0.0.0-test" },
  );
  const warnings = p.issues
    .filter((i) => i.level === "warning")
    .map((i) => `warning: ${i.file}:${i.line}: ${i.path}: ${i.message} [${i.ruleId}]`);
  const blockers = installBlockers(p);
  const body = blockers.length ? `REFUSED\n${blockers.join("\n")}\n` : renderPlanText(p.plan);
  return `${[...warnings, ""].join("\n")}${body}`.replace(/^\n/, "");
}

describe("install cases: answer + host -> the expected plan or refusal", () => {
  for (const [name, host] of RUNS) {
    it(`${name} on ${host}`, async () => {
      const got = await outcome(name, host);
      const file = path.join(CASES, name, `expected.${host}.txt`);
      if (!existsSync(file) && process.env.KVMSTRAP_WRITE_EXPECTED === "1") writeFileSync(file, got);
      expect(got).toBe(readFileSync(file, "utf8"));
    });
  }
});
