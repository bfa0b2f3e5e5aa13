// KVM modules and their options, hugepages, KSM, and the kernel command line (IOMMU, 1G pages),
// written for the bootloader the host actually uses. Command-line changes need a reboot; the
// parameters are listed so the resumed run can verify /proc/cmdline against them.

import { currentOf, isRefused, type PlanContext, planCommand, planFile, planSysfs } from "./context.js";
import {
  editGrubFiles,
  editKernelCmdline,
  renderHugepagesSysctl,
  renderModprobeConf,
  renderModulesLoad,
} from "./render/kernel.js";

export const PATHS = {
  modprobe: "/etc/modprobe.d/kvmstrap.conf",
  modulesLoad: "/etc/modules-load.d/kvmstrap.conf",
  grub: "/etc/default/grub",
  kernelCmdline: "/etc/kernel/cmdline",
  grubDropIns: "/etc/default/grub.d",
  hugepages: "/etc/sysctl.d/60-kvmstrap-hugepages.conf",
  ksm: "/etc/tmpfiles.d/kvmstrap-ksm.conf",
} as const;

export function vendorModule(ctx: PlanContext): "kvm_intel" | "kvm_amd" {
  return ctx.report.cpu.vendor === "AuthenticAMD" || ctx.report.cpu.vendor === "HygonGenuine"
    ? "kvm_amd"
    : "kvm_intel";
}

/**
 * Kernel parameters the answer asks for; also what the post-reboot check expects in /proc/cmdline.
 * AMD has no `amd_iommu=on` (the AMD IOMMU is on by default; `amd_iommu=off` is what turns it off),
 * so on AMD only conflicting parameters are removed and `iommu=pt` added when asked.
 */
export function wantedCmdline(ctx: PlanContext): string[] {
  const params: string[] = [];
  const { iommu, kvm } = ctx.answer;
  if (iommu?.enabled) {
    if (vendorModule(ctx) === "kvm_intel") params.push("intel_iommu=on");
    if (iommu.passthroughMode) params.push("iommu=pt");
  }
  if (kvm?.hugepages?.pages1G) {
    params.push("hugepagesz=1G", `hugepages=${kvm.hugepages.pages1G}`);
  }
  return params;
}

/** Parameters (a key, or an exact key=value) to take out wherever they are: they contradict the answer. */
export function conflictingCmdline(ctx: PlanContext): string[] {
  const { iommu } = ctx.answer;
  if (iommu?.enabled === false) return ["intel_iommu", "amd_iommu", "iommu"];
  if (iommu?.enabled) return ["intel_iommu=off", "amd_iommu=off", "iommu=off"];
  return [];
}

/** The parameter names a plan edits: their values in BLS entries follow /etc/default/grub. */
function managedKeys(ctx: PlanContext): string[] {
  const keys = [...wantedCmdline(ctx), ...conflictingCmdline(ctx)].map((p) => p.split("=", 1)[0] ?? p);
  return [...new Set(keys)];
}

/**
 * grub.cfg and the BLS entries from /etc/default/grub (and grub.d), as they are now: the same
 * command applies a change and, after the files are restored, undoes it. grub2 with
 * --update-bls-cmdline (RHEL 9.3+) rewrites the entries itself; older grub2 regenerates grub.cfg
 * (and RHEL 8's $kernelopts), then grubby sets the managed keys ($2...) to the files' values.
 * $0: grub2-mkconfig or grub-mkconfig, $1: the grub.cfg it writes.
 */
const BLS_REGENERATE = [
  "set -e",
  "mk=$0; cfg=$1; shift",
  'if "$mk" --help 2>&1 | grep -q -- --update-bls-cmdline; then exec "$mk" -o "$cfg" --update-bls-cmdline; fi',
  '"$mk" -o "$cfg"',
  "command -v grubby >/dev/null || exit 0",
  ". /etc/default/grub",
  'for f in /etc/default/grub.d/*.cfg; do if [ -e "$f" ]; then . "$f"; fi; done',
  'line="$GRUB_CMDLINE_LINUX $GRUB_CMDLINE_LINUX_DEFAULT"; add=""',
  'for k in "$@"; do for w in $line; do case "$w" in "$k"|"$k"=*) add="$add $w";; esac; done; done',
  'grubby --update-kernel=ALL --remove-args="$*"',
  'if [ -n "$add" ]; then grubby --update-kernel=ALL --args="$add"; fi',
].join("\n");

const PROXMOX_REFRESH = ["proxmox-boot-tool", "refresh"];

/** What rewrites the boot files from their sources on this host; Debian's tools when undetected. */
export function bootRegenerators(ctx: PlanContext): {
  grub: string[];
  initramfs: string[];
  entries: string[];
} {
  const t = ctx.report.system.bootTools;
  const cfg = t?.grubCfg ?? "/boot/grub2/grub.cfg";
  let grub = ["update-grub"];
  if (t?.grubMkconfig === "grub2-mkconfig" || t?.grubMkconfig === "grub-mkconfig") {
    grub = [t.grubMkconfig, "-o", cfg];
    // BLS entries (RHEL 9, Fedora) hold their own options line, which grub.cfg does not feed.
    if (t.bls) grub = ["sh", "-c", BLS_REGENERATE, t.grubMkconfig, cfg, ...managedKeys(ctx)];
  }
  const initramfs =
    t?.initramfs === "dracut"
      ? ["dracut", "--regenerate-all", "--force"]
      : ["update-initramfs", "-u", "-k", "all"];
  // kernel-install wants a version and an image: every installed kernel gets its entry rewritten.
  const entries = [
    "sh",
    "-c",
    'set -e; for m in /lib/modules/*; do v=$(basename "$m"); for img in "/boot/vmlinuz-$v" "$m/vmlinuz"; do if [ -e "$img" ]; then kernel-install add "$v" "$img"; break; fi; done; done',
  ];
  // Proxmox VE: the ESPs proxmox-boot-tool keeps (GRUB or systemd-boot) are refreshed by it alone.
  if (t?.proxmoxBootTool) return { grub: PROXMOX_REFRESH, initramfs, entries: PROXMOX_REFRESH };
  return { grub, initramfs, entries };
}

/**
 * The inverse of regenerating boot files is regenerating them again once their sources are back.
 * Undo runs newest first, so this check (that the tool exists, before anything is touched) is
 * planned ahead of the files it covers and its undo runs after they are restored.
 */
function planRegenerateOnUndo(ctx: PlanContext, id: string, argv: string[], what: string): void {
  const tool = argv[0] === "sh" ? (argv[3] ?? "kernel-install") : (argv[0] ?? "");
  planCommand(ctx, {
    id,
    argv: ["sh", "-c", 'command -v "$0" >/dev/null', tool],
    undo: argv,
    effect: "none",
    summary: `${tool} is present: undo regenerates ${what} after restoring its sources`,
  });
}

export function planKernel(ctx: PlanContext, vfioSoftdeps: string[], extraModules: string[]): void {
  const { kvm } = ctx.answer;
  const vendor = vendorModule(ctx);
  const wantsModules = kvm !== undefined || extraModules.length > 0 || vfioSoftdeps.length > 0;
  if (wantsModules) {
    const modprobe = renderModprobeConf({ vendorModule: vendor, nested: kvm?.nested, vfioSoftdeps });
    // Drivers in the initramfs would claim a passthrough device before vfio-pci: the softdeps must
    // be in the initramfs too.
    const rebuild = vfioSoftdeps.length > 0 && currentOf(ctx, PATHS.modprobe) !== modprobe;
    const initramfs = bootRegenerators(ctx).initramfs;
    if (rebuild) planRegenerateOnUndo(ctx, "kvm.initramfs-on-undo", initramfs, "the initramfs");
    planFile(ctx, {
      id: "kvm.modprobe-conf",
      path: PATHS.modprobe,
      content: modprobe,
      effect: "module-reload",
      summary: `module options for ${vendor}${kvm?.nested !== undefined ? ` (nested=${kvm.nested ? 1 : 0})` : ""}`,
    });
    if (rebuild) {
      planCommand(ctx, {
        id: "kvm.update-initramfs",
        argv: initramfs,
        effect: "reboot",
        summary: `rebuild the initramfs so vfio-pci loads before ${vfioSoftdeps.join(", ")}`,
      });
    }
    const modules = [...new Set([...(kvm?.modules ?? ["kvm", vendor, "vhost_net"]), ...extraModules])];
    planFile(ctx, {
      id: "kvm.modules-load",
      path: PATHS.modulesLoad,
      content: renderModulesLoad(modules),
      effect: "none",
      summary: `load ${modules.join(", ")} at boot`,
    });
  }

  const pages2M = kvm?.hugepages?.pages2M;
  // A reservation the rule set refused (more than memory allows) is not planned.
  if (pages2M !== undefined && !isRefused(ctx, "kvm.hugepages")) {
    const changed = planFile(ctx, {
      id: "kvm.hugepages-2m",
      path: PATHS.hugepages,
      content: renderHugepagesSysctl(pages2M),
      effect: "none",
      summary: `reserve ${pages2M} x 2 MiB hugepages at boot`,
    });
    const now = ctx.report.memory.hugepages["2048kB"]?.total;
    if (changed || now !== pages2M) {
      planSysfs(ctx, {
        id: "kvm.hugepages-2m-live",
        path: "/proc/sys/vm/nr_hugepages",
        value: String(pages2M),
        previous: now === undefined ? null : String(now),
        effect: "none",
        summary: `reserve ${pages2M} x 2 MiB hugepages now`,
      });
    }
  }
  // 1 GiB pages without pdpe1gb, and hugepages beyond memory, are refused by the rule set (rules/memory.ts).
  if (kvm?.ksm !== undefined) {
    const run = kvm.ksm ? "1" : "0";
    planFile(ctx, {
      id: "kvm.ksm",
      path: PATHS.ksm,
      content: `# kvmstrap: kernel samepage merging\nw /sys/kernel/mm/ksm/run - - - - ${run}\n`,
      effect: "none",
      summary: `KSM ${kvm.ksm ? "on" : "off"} at boot`,
    });
    const ksmNow = ctx.report.memory.ksm.run;
    planSysfs(ctx, {
      id: "kvm.ksm-live",
      path: "/sys/kernel/mm/ksm/run",
      value: run,
      previous: ksmNow === "unknown" ? null : ksmNow === "yes" ? "1" : "0",
      effect: "none",
      summary: `KSM ${kvm.ksm ? "on" : "off"} now`,
    });
  }
  planCmdline(ctx);
}

function planCmdline(ctx: PlanContext): void {
  const add = wantedCmdline(ctx);
  const remove = conflictingCmdline(ctx);
  if (add.length === 0 && remove.length === 0) return;
  const bootloader = ctx.report.system.bootloader;
  const regen = bootRegenerators(ctx);
  const summary = `kernel command line: ${add.join(" ") || "nothing added"}; contradicting parameters removed where present (${remove.join(", ")})`;
  const edits: { id: string; path: string; content: string }[] = [];
  // /etc/kernel/cmdline also feeds kernel-install's entries on GRUB hosts with BLS: kept consistent.
  const kernelCmdline = currentOf(ctx, PATHS.kernelCmdline);
  if (bootloader === "grub") {
    const dropIns = (ctx.report.system.configFiles ?? []).filter((p) =>
      p.startsWith(`${PATHS.grubDropIns}/`),
    );
    const sources = [PATHS.grub, ...dropIns].map((p) => ({ path: p, content: currentOf(ctx, p) ?? "" }));
    editGrubFiles(sources, add, remove).forEach((f, i) => {
      edits.push({ id: i === 0 ? "boot.cmdline" : `boot.cmdline.${f.path}`, ...f });
    });
    if (kernelCmdline !== null)
      edits.push({
        id: "boot.kernel-cmdline",
        path: PATHS.kernelCmdline,
        content: editKernelCmdline(kernelCmdline, add, remove),
      });
  } else if (bootloader === "systemd-boot") {
    edits.push({
      id: "boot.cmdline",
      path: PATHS.kernelCmdline,
      content: editKernelCmdline(kernelCmdline ?? "", add, remove),
    });
  } else {
    // Refused by the rule set (kernel.bootloader-unknown, src/answer/rules/kernel.ts).
    return;
  }
  const changes = edits.filter((e) => e.content !== currentOf(ctx, e.path));
  if (changes.length === 0) return;
  const argv = bootloader === "grub" ? regen.grub : regen.entries;
  const what = bootloader === "grub" ? "grub.cfg" : "the boot entries";
  planRegenerateOnUndo(ctx, "boot.regenerate-on-undo", argv, what);
  for (const e of changes) {
    planFile(ctx, { ...e, effect: "reboot", summary: `${summary} (${bootloader}: ${e.path})` });
  }
  planCommand(ctx, {
    id: bootloader === "grub" ? "boot.update-grub" : "boot.refresh-entries",
    argv,
    effect: "reboot",
    summary:
      bootloader === "grub"
        ? `regenerate grub.cfg (${argv[0]})`
        : "rewrite the boot entries with the new command line",
  });
}
