// Semantic validation: a schema-valid answer file checked against one machine's host report. Pure and
// fast (one pass of matching, checks run once): errors block an install, warnings are shown.
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { runChecks } from "../checks/index.js";
import { diskExclusion } from "../checks/resources.js";
import type { DiskReport, HostReport, NicReport, PciDevice } from "../detect/types.js";
import { hostdevNetworkName } from "../plan/sriov-plan.js";
import { DEFAULT_TEMPLATE_DIR } from "../vm/cloud-init.js";
import { matchDisks, matchNics, matchPci, nicCandidates, nicLabel, pciLabel } from "./match.js";
import { formatPath } from "./positions.js";
import type { Answer, VmEntry } from "./schema.js";
import { validateNetwork } from "./validate-network.js";

export interface Issue {
  /** Key path in the answer file, e.g. network.bridges[0].uplink. */
  path: string;
  message: string;
}

export interface ValidateOptions {
  /** An unattended run: wipe only disks that the file names by byId or serial. */
  unattended?: boolean;
  /** Where relative paths in the file (a VM's template) start: the answer file's directory (default: cwd). */
  baseDir?: string;
}

export interface ValidationResult {
  errors: Issue[];
  warnings: Issue[];
}

export function validateAnswer(
  answer: Answer,
  report: HostReport,
  options: ValidateOptions = {},
): ValidationResult {
  const out: ValidationResult = { errors: [], warnings: [] };
  validateNetwork(answer, report, out);
  validateSriov(answer, report, out);
  validatePassthrough(answer, report, out);
  validateStorage(answer, report, out, options.unattended === true);
  validateRequires(answer, report, out);
  validateVms(answer, report, out, options);
  return out;
}

const mgmtNics = (r: HostReport) => nicCandidates(r).filter((n) => n.management);

function validateSriov(answer: Answer, report: HostReport, out: ValidationResult): void {
  const pci = new Map(report.pci.map((p) => [p.address, p]));
  answer.sriov.forEach((s, i) => {
    const path = `sriov[${i}]`;
    const m = matchNics(s.pf, report);
    const nic = m.chosen[0];
    if (m.error || !nic) {
      out.errors.push({ path: `${path}.pf`, message: m.error ?? "no NIC" });
      return;
    }
    const name = nicLabel(nic);
    if (nic.management) {
      out.errors.push({
        path: `${path}.pf`,
        message: `${name} is the management NIC (it carries the default route): changing its VF count resets its link and would cut this host off`,
      });
    }
    const sriov = nic.sriov ?? (nic.pciAddress ? pci.get(nic.pciAddress)?.sriov : null) ?? null;
    if (!sriov) {
      out.errors.push({
        path: `${path}.pf`,
        message: `${name} has no SR-IOV capability (no sriov_totalvfs)`,
      });
    } else if (s.numVfs > sriov.totalVfs) {
      out.errors.push({
        path: `${path}.numVfs`,
        message: `${s.numVfs} VFs requested but ${name} supports at most ${sriov.totalVfs} (sriov_totalvfs)`,
      });
    }
    s.vfs.forEach((vf, j) => {
      if (vf.index >= s.numVfs)
        out.errors.push({
          path: `${path}.vfs[${j}].index`,
          message: `VF ${vf.index} does not exist with numVfs ${s.numVfs}`,
        });
    });
  });
}

const isBridge = (p: PciDevice | undefined) => (p?.classId ?? "").startsWith("0604");

function validatePassthrough(answer: Answer, report: HostReport, out: ValidationResult): void {
  if (!answer.passthrough.length) return;
  const byAddress = new Map(report.pci.map((p) => [p.address, p]));
  const mgmt = new Map(
    mgmtNics(report).flatMap((n): [string, NicReport][] => (n.pciAddress ? [[n.pciAddress, n]] : [])),
  );
  const bootControllers = new Map<string, DiskReport>();
  for (const d of report.disks) {
    if (d.pciAddress && d.roles.some((r) => r === "root" || r === "boot"))
      bootControllers.set(d.pciAddress, d);
  }
  const gpus = report.pci.filter((p) => (p.classId ?? "").startsWith("03"));
  if (!report.iommu.groupsPopulated) {
    if (answer.iommu?.enabled !== true) {
      out.errors.push({
        path: "passthrough",
        message:
          "passthrough needs the IOMMU, which is off on this host (no IOMMU groups): set iommu.enabled: true (and enable VT-d/AMD-Vi in the firmware)",
      });
    } else {
      out.warnings.push({
        path: "iommu.enabled",
        message:
          "the IOMMU is off now: the host must reboot with it enabled before passthrough devices can be bound",
      });
    }
  }
  const hazard = (address: string): string | null => {
    const nic = mgmt.get(address);
    if (nic) return `the management NIC ${nicLabel(nic)} (${address})`;
    const disk = bootControllers.get(address);
    if (disk) return `the controller of ${disk.name}, which holds ${disk.roles.join(", ")} (${address})`;
    return null;
  };
  answer.passthrough.forEach((p, i) => {
    const path = `passthrough[${i}].device`;
    const m = matchPci(p.device, report);
    const dev = m.chosen[0];
    if (m.error || !dev) {
      out.errors.push({ path, message: m.error ?? "no device" });
      return;
    }
    const label = pciLabel(dev);
    const self = hazard(dev.address);
    if (self) {
      out.errors.push({
        path,
        message: `${dev.address} is ${self}: passing it through would cut this host off`,
      });
      return;
    }
    if (dev.bootVga === true && gpus.length === 1) {
      out.errors.push({
        path,
        message: `${label} is the boot VGA and the only GPU: the host console would go dark`,
      });
    }
    if (!report.iommu.groupsPopulated || dev.iommuGroup === null) return;
    const group = report.iommu.groups.find((g) => g.id === dev.iommuGroup);
    for (const other of group?.devices ?? []) {
      if (other === dev.address || isBridge(byAddress.get(other))) continue;
      const h = hazard(other);
      if (h) {
        out.errors.push({
          path,
          message: `${dev.address} shares IOMMU group ${dev.iommuGroup} with ${h}: the whole group goes to the guest together`,
        });
      }
    }
  });
}

function validateStorage(
  answer: Answer,
  report: HostReport,
  out: ValidationResult,
  unattended: boolean,
): void {
  const claimed = new Map<string, string>();
  const names = new Map<string, number>();
  answer.storage?.pools.forEach((pool, i) => {
    const path = `storage.pools[${i}]`;
    if (names.has(pool.name))
      out.errors.push({
        path: `${path}.name`,
        message: `duplicate pool name "${pool.name}" (also storage.pools[${names.get(pool.name)}])`,
      });
    else names.set(pool.name, i);
    if (pool.type === "dir" && !pool.path) out.errors.push({ path, message: "a dir pool needs a path" });
    if (pool.type !== "dir" && !pool.disks?.length)
      out.errors.push({ path, message: `a ${pool.type} pool needs disks` });
    pool.disks?.forEach((rule, j) => {
      const dpath = `${path}.disks[${j}]`;
      const m = matchDisks(rule, report);
      const disk = m.chosen[0];
      if (m.error || !disk) {
        out.errors.push({ path: dpath, message: m.error ?? "no disk" });
        return;
      }
      const prior = claimed.get(disk.name);
      if (prior) out.errors.push({ path: dpath, message: `${disk.name} is already used by ${prior}` });
      claimed.set(disk.name, dpath);
      const excluded = diskExclusion(disk);
      if (pool.wipe && excluded) {
        out.errors.push({ path: dpath, message: `refusing to wipe ${disk.name}: ${excluded}` });
      } else if (excluded) {
        out.warnings.push({
          path: dpath,
          message: `${disk.name} is not free (${excluded}): the pool cannot take it over`,
        });
      }
      if (pool.wipe && unattended && rule.byId === undefined && rule.serial === undefined) {
        out.errors.push({
          path: dpath,
          message: `unattended runs wipe only disks named by byId or serial (this rule picked ${disk.name} by other criteria)`,
        });
      }
    });
  });
}

function validateRequires(answer: Answer, report: HostReport, out: ValidationResult): void {
  const req = answer.requires;
  if (!req) return;
  const push = (level: "fail" | "warn", path: string, message: string) =>
    (level === "fail" ? out.errors : out.warnings).push({ path, message });
  const entries = Object.entries(req.checks);
  if (entries.length) {
    const checks = new Map(runChecks(report).map((c) => [c.id, c]));
    for (const [id, level] of entries) {
      const path = formatPath(["requires", "checks", id]);
      const c = checks.get(id);
      if (!c) {
        out.warnings.push({ path, message: `check ${id} does not apply to this host (not run)` });
      } else if (c.level === "fail" || c.level === "warn") {
        push(level, path, `check ${id} is ${c.level}: ${c.reason}`);
      }
    }
  }
  if (req.minNics) {
    const { count, minSpeedMbps, level } = req.minNics;
    const nics = nicCandidates(report).filter(
      (n) => minSpeedMbps === undefined || (n.speedMbps ?? -1) >= minSpeedMbps,
    );
    if (nics.length < count) {
      const speed = minSpeedMbps !== undefined ? ` at ${minSpeedMbps} Mb/s or more` : "";
      push(level, "requires.minNics", `${count} NICs${speed} required, this host has ${nics.length}`);
    }
  }
  if (req.minMemoryGiB) {
    const { value, level } = req.minMemoryGiB;
    const kib = report.memory.totalKiB;
    if (kib === null) out.warnings.push({ path: "requires.minMemoryGiB", message: "memory size unknown" });
    else if (kib / 1024 ** 2 < value)
      push(
        level,
        "requires.minMemoryGiB",
        `${value} GiB of memory required, this host has ${(kib / 1024 ** 2).toFixed(1)} GiB`,
      );
  }
  if (req.minVfs) {
    const { count, level } = req.minVfs;
    const total = report.pci.reduce((sum, p) => sum + (p.sriov?.totalVfs ?? 0), 0);
    if (total < count)
      push(level, "requires.minVfs", `${count} SR-IOV VFs required, this host supports ${total}`);
  }
}

// ---- VMs ----------------------------------------------------------------------------------------

const TEMPLATE_FILES = ["user-data.yaml", "meta-data.yaml", "network-config.yaml"] as const;

/** The cloud-init template directory of a VM entry: its template (relative to baseDir), or the default. */
export function vmTemplateDir(vm: VmEntry, baseDir: string = process.cwd()): string {
  return vm.template === undefined ? DEFAULT_TEMPLATE_DIR : path.resolve(baseDir, vm.template);
}

function templateProblem(dir: string): string | null {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    return `unknown template: ${dir} does not exist`;
  }
  if (!isDir) return `unknown template: ${dir} is not a directory`;
  const missing = TEMPLATE_FILES.filter((f) => !existsSync(path.join(dir, f)));
  if (missing.length) return `${dir} is not a cloud-init template directory: it has no ${missing.join(", ")}`;
  return null;
}

const sameNic = (a: NicReport, b: NicReport) =>
  a.name !== null ? a.name === b.name : a.pciAddress !== null && a.pciAddress === b.pciAddress;

/** The sriov entry whose PF is `pf`, with its index and the hostdev network the planner defines for it. */
export function sriovEntryFor(
  answer: Answer,
  report: HostReport,
  pf: NicReport,
): { index: number; network: string } | null {
  for (const [index, entry] of answer.sriov.entries()) {
    const nic = matchNics(entry.pf, report).chosen[0];
    if (nic && sameNic(nic, pf)) return { index, network: hostdevNetworkName(entry, nicLabel(pf)) };
  }
  return null;
}

/**
 * The vms section: unique names, template directories that exist, NICs that resolve (bridges defined
 * here or present on the host, SR-IOV PFs with an sriov entry), and each passthrough device in one VM.
 */
export function validateVms(
  answer: Answer,
  report: HostReport,
  out: ValidationResult,
  options: ValidateOptions = {},
): void {
  if (!answer.vms.length) return;
  const names = new Map<string, number>();
  const hostBridges = report.nics.flatMap((n) => (n.kind === "bridge" && n.name ? [n.name] : []));
  const bridges = new Set([...(answer.network?.bridges ?? []).map((b) => b.name), ...hostBridges]);
  const hostPassthrough = new Set(
    answer.passthrough.flatMap((p) => matchPci(p.device, report).chosen.map((d) => d.address)),
  );
  const claimed = new Map<string, { vm: number; path: string }>();
  answer.vms.forEach((vm, i) => {
    const path = `vms[${i}]`;
    const prior = names.get(vm.name);
    if (prior !== undefined)
      out.errors.push({
        path: `${path}.name`,
        message: `duplicate VM name "${vm.name}" (also vms[${prior}])`,
      });
    else names.set(vm.name, i);
    const problem = templateProblem(vmTemplateDir(vm, options.baseDir));
    if (problem) out.errors.push({ path: `${path}.template`, message: problem });
    vm.nics.forEach((nic, j) => {
      const npath = `${path}.nics[${j}]`;
      if ("bridge" in nic) {
        if (!bridges.has(nic.bridge))
          out.errors.push({
            path: `${npath}.bridge`,
            message: `bridge ${nic.bridge} is neither defined in network.bridges nor present on this host (${hostBridges.length ? `it has ${hostBridges.join(", ")}` : "it has no bridges"})`,
          });
      } else if ("sriov" in nic) {
        const m = matchNics(nic.sriov, report);
        const pf = m.chosen[0];
        if (m.error || !pf) out.errors.push({ path: `${npath}.sriov`, message: m.error ?? "no NIC" });
        else if (!sriovEntryFor(answer, report, pf))
          out.errors.push({
            path: `${npath}.sriov`,
            message: `${nicLabel(pf)} has no entry in sriov: (add one with a pf rule matching it and numVfs), so it has no VFs and no hostdev network to take one from`,
          });
      } else if ("macvtap" in nic) {
        const m = matchNics(nic.macvtap, report);
        const dev = m.chosen[0];
        if (m.error || !dev) out.errors.push({ path: `${npath}.macvtap`, message: m.error ?? "no NIC" });
        else if (!dev.name)
          out.errors.push({ path: `${npath}.macvtap`, message: `${nicLabel(dev)} has no network interface` });
      }
    });
    vm.passthrough?.forEach((rule, j) => {
      const ppath = `${path}.passthrough[${j}]`;
      const m = matchPci(rule, report);
      const dev = m.chosen[0];
      if (m.error || !dev) {
        out.errors.push({ path: ppath, message: m.error ?? "no device" });
        return;
      }
      const first = claimed.get(dev.address);
      if (first) {
        const other = first.vm === i ? "this VM" : `VM ${answer.vms[first.vm]?.name} (${first.path})`;
        out.errors.push({
          path: ppath,
          message: `${dev.address} is also passed through to ${other}: a device goes to one VM only`,
        });
        return;
      }
      claimed.set(dev.address, { vm: i, path: ppath });
      if (!hostPassthrough.has(dev.address))
        out.warnings.push({
          path: ppath,
          message: `${pciLabel(dev)} is not in passthrough: (which binds it to vfio-pci at boot); libvirt detaches it from its host driver when the VM starts`,
        });
    });
  });
}
