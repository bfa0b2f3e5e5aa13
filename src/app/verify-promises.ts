// What a run promised, read from the plan it applied (the journal's, or the one an answer makes
// now) and, when given, the answer itself. Pure. The plan is the primary source because it is what
// was carried out: its modules-load file, its reboot expectations (kernel parameters, vfio-pci
// bindings, IOMMU groups), its sriov_numvfs writes and its libvirt pools. Bridges are named by the
// answer; without one they are read back from the network files the plan wrote.
import { parse as parseYaml } from "yaml";
import type { Answer } from "../answer/schema.js";
import type { Action, Plan, PlanExpect } from "../plan/actions.js";

export interface VfPromise {
  /** The PF's interface name, as the plan's action id has it. */
  pf: string;
  /** The PF's PCI address. */
  pci: string;
  count: number;
}

export interface Promises {
  /** KVM is part of the promise (the answer has a kvm section or the plan loads KVM modules). */
  kvm: boolean;
  /** The answer makes a usable KVM a precondition (requires.checks["kvm.functional"]: fail). */
  kvmRequired: boolean;
  /** Modules to load, as /sys/module names; the CPU vendor's KVM module is decided on the host. */
  modules: string[];
  expect: PlanExpect;
  vfs: VfPromise[];
  bridges: string[];
  pools: string[];
}

const VENDOR_MODULES = new Set(["kvm_intel", "kvm_amd"]);
const MODULES_LOAD = "/etc/modules-load.d/kvmstrap.conf";
const SRIOV_NUMVFS = /^\/sys\/bus\/pci\/devices\/([^/]+)\/sriov_numvfs$/;

/** /sys/module names use underscores where modprobe accepts either. */
export const moduleName = (m: string): string => m.trim().replace(/-/g, "_");

function modulesOf(actions: Action[]): string[] {
  const file = actions.find((a) => a.kind === "write-file" && a.path === MODULES_LOAD);
  if (file?.kind !== "write-file") return [];
  return file.content
    .split("\n")
    .map((l) => l.replace(/#.*/, "").trim())
    .filter(Boolean)
    .map(moduleName);
}

function vfsOf(actions: Action[]): VfPromise[] {
  const out: VfPromise[] = [];
  for (const a of actions) {
    if (a.kind !== "write-sysfs" || !a.id.startsWith("sriov.numvfs.")) continue;
    const pci = SRIOV_NUMVFS.exec(a.path)?.[1];
    const count = Number(a.value);
    if (pci && Number.isInteger(count)) out.push({ pf: a.id.slice("sriov.numvfs.".length), pci, count });
  }
  return out;
}

/** Pools the plan defines: its storage.<name>.xml files (one per pool). */
function poolsOf(actions: Action[]): string[] {
  return actions.flatMap((a) => {
    const m = /^storage\.(.+)\.xml$/.exec(a.id);
    return m?.[1] ? [m[1]] : [];
  });
}

/** Bridge names in the network files a plan writes, for each stack kvmstrap renders. */
export function bridgesInFiles(actions: Action[]): string[] {
  const names: string[] = [];
  for (const a of actions) {
    if (a.kind !== "write-file" || !a.id.startsWith("network.file.")) continue;
    const text = a.content;
    if (a.path.endsWith(".yaml")) {
      const doc = parseYaml(text) as { network?: { bridges?: Record<string, unknown> } } | null;
      names.push(...Object.keys(doc?.network?.bridges ?? {}));
    } else if (a.path.endsWith(".netdev")) {
      if (/^Kind=bridge$/m.test(text)) names.push(...(/^Name=(\S+)$/m.exec(text)?.slice(1, 2) ?? []));
    } else if (a.path.endsWith(".nmconnection")) {
      if (/^type=bridge$/m.test(text))
        names.push(...(/^interface-name=(\S+)$/m.exec(text)?.slice(1, 2) ?? []));
    } else {
      // ifupdown2: a stanza is a bridge when it has bridge-* lines (bridge-stp is always written).
      for (const m of text.matchAll(/^iface (\S+)[^\n]*\n((?:[ \t]+[^\n]*\n?)*)/gm)) {
        if (m[1] && /^\s+bridge-stp /m.test(m[2] ?? "")) names.push(m[1]);
      }
    }
  }
  return [...new Set(names)];
}

export function promisesOf(plan: Plan, answer: Answer | null): Promises {
  const expect = plan.expect ?? { cmdlineParams: [], vfio: [] };
  const modules = new Set(modulesOf(plan.actions));
  if (expect.vfio.length > 0) modules.add("vfio_pci");
  for (const m of answer?.kvm?.modules ?? []) modules.add(moduleName(m));
  const kvm = answer?.kvm !== undefined || [...modules].some((m) => m === "kvm" || VENDOR_MODULES.has(m));
  if (kvm) modules.add("kvm");
  return {
    kvm,
    kvmRequired: answer?.requires?.checks?.["kvm.functional"] === "fail",
    // The vendor module follows the CPU this host reports, whatever the plan was made on.
    modules: [...modules].filter((m) => !VENDOR_MODULES.has(m)),
    expect,
    vfs: vfsOf(plan.actions),
    bridges: answer ? (answer.network?.bridges ?? []).map((b) => b.name) : bridgesInFiles(plan.actions),
    pools: answer ? (answer.storage?.pools ?? []).map((p) => p.name) : poolsOf(plan.actions),
  };
}
