// The answer file's vms: section as deployable VmSpecs. Match rules resolve against the host report:
// an sriov NIC takes a VF from the hostdev network the planner defines for its PF, a macvtap NIC sits
// on the matched interface, passthrough rules become PCI addresses. The checks are validateVms' (the
// same ones `kvmstrap answer validate` runs); an entry with an error yields no spec.
import { existsSync } from "node:fs";
import { matchNics, matchPci } from "../answer/match.js";
import { deploysHere } from "../answer/rules/cluster.js";
import { consoleRules, reportManagementAddresses } from "../answer/rules/consoles.js";
import { gatherFacts } from "../answer/rules/facts.js";
import type { Finding } from "../answer/rules/index.js";
import { type Answer, answerSchema, type VmEntry, type VmNicEntry } from "../answer/schema.js";
import {
  type Issue,
  sriovEntryFor,
  type ValidationResult,
  validateVms,
  vmTemplateDir,
} from "../answer/validate.js";
import type { HostReport } from "../detect/types.js";
import { rbdDisk } from "../plan/rbd-plan.js";
import { nfsMode } from "../plan/shared-storage-plan.js";
import { loadSeedTemplates } from "./cloud-init.js";
import { consoleGraphicsFor } from "./console-xml.js";
import type { VmNic } from "./domain-xml.js";
import { readIndexSync } from "./image-index.js";
import type { SharedDisk } from "./network-disk.js";
import type { VmSpec } from "./vm-spec.js";

/** OVMF as Debian's ovmf package installs it; libvirt creates the per-VM NVRAM from its VARS template. */
export const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
export const nvramPath = (name: string) => `/var/lib/libvirt/qemu/nvram/${name}_VARS.fd`;

export interface FromAnswerOptions {
  /** The image cache: when given, a VM's image must be in it (by name) or exist (by path). */
  cacheDir?: string;
  /** Where a relative template path starts: the answer file's directory (default: cwd). */
  baseDir?: string;
  /** The validation's findings (rules and template checks) when the caller has them: not run again. */
  findings?: readonly Finding[];
}

export interface FromAnswerResult {
  specs: VmSpec[];
  errors: Issue[];
}

const vmIndex = (p: string) => Number(/^vms\[(\d+)\]/.exec(p)?.[1] ?? -1);

export function vmSpecsFromAnswer(
  answer: Answer,
  report: HostReport,
  options: FromAnswerOptions = {},
): FromAnswerResult {
  const out: ValidationResult = { errors: [], warnings: [] };
  validateVms(answer, report, out, options);
  if (options.cacheDir !== undefined) checkImages(answer, options.cacheDir, out);
  const specs: VmSpec[] = [];
  const graphics = consoleGraphicsFor(answer, report);
  answer.vms.forEach((vm, i) => {
    // In a cluster answer, a VM another member runs (its member:) is that member's to deploy.
    if (!deploysHere(answer, report, vm)) return;
    if (out.errors.some((e) => vmIndex(e.path) === i)) return;
    const dir = vmTemplateDir(vm, options.baseDir);
    try {
      loadSeedTemplates(dir);
    } catch (e) {
      out.errors.push({ path: `vms[${i}].template`, message: `${dir}: ${(e as Error).message}` });
      return;
    }
    const spec = toSpec(vm, answer, report, vm.template === undefined ? undefined : dir);
    if (vm.store) spec.sharedDisk = sharedDiskFor(vm.store, answer, report);
    specs.push(graphics ? { ...spec, graphics } : spec);
  });
  out.errors.sort((a, b) => vmIndex(a.path) - vmIndex(b.path));
  return { specs, errors: out.errors };
}

function checkImages(answer: Answer, cacheDir: string, out: ValidationResult): void {
  const names = new Set(Object.keys(readIndexSync(cacheDir)));
  answer.vms.forEach((vm, i) => {
    const ok = vm.image.startsWith("/") ? existsSync(vm.image) : names.has(vm.image);
    if (!ok)
      out.errors.push({
        path: `vms[${i}].image`,
        message: vm.image.startsWith("/")
          ? `unknown image: ${vm.image} does not exist`
          : `unknown image "${vm.image}": not in the image cache ${cacheDir} (kvmstrap image list; image pull|import adds it)`,
      });
  });
}

/**
 * The disk of a VM on a cluster store, the same on every member: a volume of the store's pool
 * (iSCSI in either mode, NFS mounted by the kernel), or a network disk where no pool exists (NFS
 * through qemu's libnfs) or libvirt takes none in a domain (RBD, with its cephx secret by uuid).
 */
function sharedDiskFor(ref: NonNullable<VmEntry["store"]>, answer: Answer, report: HostReport): SharedDisk {
  const cluster = answer.cluster;
  const store = cluster?.storage.find((s) => s.name === ref.name);
  if (!cluster || !store) throw new Error("vmSpecsFromAnswer: an unvalidated store");
  if (store.type === "rbd") {
    const { target: _, ...network } = rbdDisk(cluster.name, store, ref.volume, "vda");
    return { network };
  }
  if (store.type === "nfs" && nfsMode(store, report) === "libnfs")
    return {
      network: {
        protocol: "nfs",
        name: `${store.export.replace(/\/+$/, "")}/${ref.volume}`,
        hosts: [{ name: store.server }],
      },
    };
  return { volume: { pool: store.name, volume: ref.volume } };
}

/** One entry, already validated: every match resolves to exactly one device. */
function toSpec(vm: VmEntry, answer: Answer, report: HostReport, template: string | undefined): VmSpec {
  const nics = vm.nics.map((n) => toNic(n, answer, report));
  const hostdevs = (vm.passthrough ?? []).flatMap((rule) =>
    matchPci(rule, report).chosen.map((d) => d.address),
  );
  return {
    name: vm.name,
    image: vm.image,
    vcpus: vm.vcpus,
    memoryMiB: vm.memoryMiB,
    diskGiB: vm.diskGiB,
    user: {
      name: vm.user.name,
      sshKeys: vm.user.sshKeys,
      ...(vm.user.passwordHash !== undefined ? { passwordHash: vm.user.passwordHash } : {}),
      sudo: vm.user.sudo,
    },
    ...(template !== undefined ? { template } : {}),
    ...(vm.hostname !== undefined ? { hostname: vm.hostname } : {}),
    nics,
    ...(hostdevs.length ? { hostdevs } : {}),
    ...(vm.uefi ? { uefi: { loader: OVMF_CODE, nvram: nvramPath(vm.name) } } : {}),
    ...(vm.hugepages !== undefined ? { hugepages: vm.hugepages } : {}),
    ...(vm.pin !== undefined ? { pin: vm.pin } : {}),
    ...(vm.packages !== undefined ? { packages: vm.packages } : {}),
    ...(vm.runcmd !== undefined ? { runcmd: vm.runcmd } : {}),
  };
}

function toNic(n: VmNicEntry, answer: Answer, report: HostReport): VmNic {
  const mac = n.mac !== undefined ? { mac: n.mac } : {};
  if ("network" in n) return { kind: "network", network: n.network, ...mac };
  if ("bridge" in n)
    return { kind: "bridge", bridge: n.bridge, ...(n.vlan !== undefined ? { vlan: n.vlan } : {}), ...mac };
  if ("ovs" in n) {
    const tags = n.vlan !== undefined ? { vlan: n.vlan } : n.trunk ? { trunk: n.trunk } : {};
    return { kind: "ovs", bridge: n.ovs, ...tags, ...mac };
  }
  if ("sriov" in n) {
    const pf = matchNics(n.sriov, report).chosen[0];
    const entry = pf ? sriovEntryFor(answer, report, pf) : null;
    if (!entry) throw new Error("vmSpecsFromAnswer: an unvalidated sriov NIC");
    return { kind: "hostdev-network", network: entry.network, ...mac };
  }
  const dev = matchNics(n.macvtap, report).chosen[0]?.name;
  if (!dev) throw new Error("vmSpecsFromAnswer: an unvalidated macvtap NIC");
  return { kind: "macvtap", dev, mode: n.mode, ...mac };
}

/** `vm deploy --console vnc|spice [--console-listen ADDR]`: the answer's consoles: for this VM. */
export type ConsoleFlags = { kinds: ("vnc" | "spice")[]; listen?: string; tickets?: boolean };

/**
 * The consoles: section the flags stand for: TLS with client certificates (the section's defaults),
 * on the given address or else the host report's management address.
 */
function consolesOf(flags: ConsoleFlags | undefined, report: HostReport): Record<string, unknown> | Issue {
  if (!flags?.kinds.length) return {};
  const listen = flags.listen ?? reportManagementAddresses(report)?.[0]?.address;
  if (!listen)
    return {
      path: "consoles.listen",
      message: "the host report has no management address to listen on: give one",
    };
  const { kinds, tickets } = flags;
  return {
    consoles: {
      vnc: kinds.includes("vnc"),
      spice: kinds.includes("spice"),
      listen,
      ...(tickets ? { tickets } : {}),
    },
  };
}

/**
 * One VM given outside an answer file (the `vm deploy` flags) as the answer schema's vms: entry:
 * parsed by the same schema and resolved by the same rules, so a flag value is accepted exactly when
 * the same value in an answer file is. Errors carry the entry's own paths ("user.sshKeys[0]").
 */
export function vmSpecFromEntry(
  entry: Record<string, unknown>,
  report: HostReport,
  options: FromAnswerOptions = {},
  consoleFlags?: ConsoleFlags,
): { spec: VmSpec; errors: [] } | { spec: null; errors: Issue[] } {
  const consoles = consolesOf(consoleFlags, report);
  if ("path" in consoles) return { spec: null, errors: [consoles as Issue] };
  const parsed = answerSchema.safeParse({ version: 1, vms: [entry], ...consoles });
  if (!parsed.success) {
    return {
      spec: null,
      errors: parsed.error.issues.map((i) => ({
        path: (i.path[0] === "consoles" ? i.path : i.path.slice(2))
          .map((p, n) => (typeof p === "number" ? `[${p}]` : `${n ? "." : ""}${String(p)}`))
          .join(""),
        message: i.message,
      })),
    };
  }
  // The console rules an answer file is held to (management address only, TLS): refused here
  // rather than deployed without the console asked for.
  if (parsed.data.consoles) {
    const input = { answer: parsed.data, report, facts: gatherFacts(parsed.data, report) };
    const refused = consoleRules.flatMap((r) => r.check(input)).filter((f) => f.level === "error");
    if (refused.length)
      return {
        spec: null,
        errors: refused.map((f) => ({
          path: f.path,
          message: f.remediation ? `${f.message} (${f.remediation})` : f.message,
        })),
      };
  }
  const { specs, errors } = vmSpecsFromAnswer(parsed.data, report, options);
  const spec = specs[0];
  if (!spec || errors.length) {
    return { spec: null, errors: errors.map((e) => ({ ...e, path: e.path.replace(/^vms\[0\]\.?/, "") })) };
  }
  return { spec, errors: [] };
}
