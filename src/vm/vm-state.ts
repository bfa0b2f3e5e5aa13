// What kvmstrap knows about the VMs it deployed: one directory per VM under the VM dir
// (default /var/lib/kvmstrap/vms/NAME) holding the overlay, the seed, the serial console log and
// vm.json, the record that says "kvmstrap defined this domain from this spec". The record is what
// lets a second deploy of the same spec converge and what lets delete know which files are its own.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../core/atomic-write.js";

export const DEFAULT_VM_DIR = "/var/lib/kvmstrap/vms";

export type DeployErrorCode =
  | "invalid" // the spec itself is wrong (bad name, sizes)
  | "name-taken"
  | "unknown-image"
  | "corrupt-image"
  | "no-bridge"
  | "no-network"
  | "no-space"
  | "host-lacks" // the host cannot give what the VM asks for (free hugepages)
  | "libvirt-unreachable"
  | "not-managed"
  | "not-found"
  | "failed";

/** Codes that mean "the operator's input is wrong" (CLI exit 2) rather than "it failed" (exit 1). */
export const INPUT_CODES: ReadonlySet<DeployErrorCode> = new Set([
  "invalid",
  "name-taken",
  "unknown-image",
  "corrupt-image",
  "no-bridge",
  "no-network",
  "not-managed",
  "not-found",
]);

export class DeployError extends Error {
  override readonly name = "DeployError";
  constructor(
    readonly code: DeployErrorCode,
    message: string,
    readonly remediation?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A VM name: also a directory name and (by default) the guest's host name (one grammar, core's). */
export { VM_NAME } from "../core/grammar.js";

export type VmPaths = { dir: string; overlay: string; seed: string; serialLog: string; record: string };

export function vmPaths(vmDir: string, name: string): VmPaths {
  const dir = path.join(vmDir, name);
  return {
    dir,
    overlay: path.join(dir, "disk.qcow2"),
    seed: path.join(dir, "seed.iso"),
    serialLog: path.join(dir, "serial.log"),
    record: path.join(dir, "vm.json"),
  };
}

export type VmRecord = {
  version: 1;
  name: string;
  /** sha256 of the normalised spec: equal hashes mean "the same deployment". */
  specHash: string;
  /** The base image as the spec names it (a cached image's name or a path). */
  base: string;
  baseFormat?: "qcow2" | "raw";
  overlay: string;
  seed: string;
  serialLog: string;
  instanceId: string;
  domainType: "kvm" | "qemu";
  created?: string;
};

export async function readRecord(vmDir: string, name: string): Promise<VmRecord | null> {
  try {
    const v = JSON.parse(await readFile(vmPaths(vmDir, name).record, "utf8")) as VmRecord;
    return v.version === 1 && v.name === name ? v : null;
  } catch {
    return null;
  }
}

export async function writeRecord(vmDir: string, record: VmRecord): Promise<void> {
  await writeFileAtomic(vmPaths(vmDir, record.name).record, `${JSON.stringify(record, null, 2)}\n`);
}
