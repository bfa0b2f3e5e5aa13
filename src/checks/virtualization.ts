// Checks for the CPU's virtualization extensions, the KVM modules and device nodes, and whether a
// guest really runs. Order of reasoning: the CPU flag, then firmware, then the kernel, then the probe.
import type { HostReport } from "../detect/types.js";
import { type Check, check } from "./types.js";

const BIOS_NAMES = {
  vmx: '"Intel Virtualization Technology" (also "Intel VT-x", "Virtualization Technology" or "VMX")',
  svm: '"SVM Mode" (also "AMD-V", "Secure Virtual Machine" or "Virtualization")',
};

export function cpuVirtCheck(r: HostReport): Check {
  const { cpu } = r;
  const facts = [cpu.sources.flags, cpu.sources.firmwareVirt].filter((f): f is string => Boolean(f));
  const base = { id: "cpu.virt", title: "Hardware virtualization (VT-x/AMD-V)", facts };
  const intel = cpu.vendor === "GenuineIntel";
  const bios = intel ? BIOS_NAMES.vmx : BIOS_NAMES.svm;
  if (cpu.flags.length === 0) {
    return check({
      ...base,
      level: "warn",
      state: "unknown",
      reason: "CPU flags could not be read (/proc/cpuinfo)",
    });
  }
  if (cpu.firmwareVirt === "locked-off") {
    return check({
      ...base,
      level: "fail",
      state: "disabled-in-firmware",
      reason: `${intel ? "VT-x" : "AMD-V"} is supported but disabled by the firmware (${cpu.firmwareVirtDetail})`,
      remediation: `Enter the BIOS/UEFI setup, enable ${bios}, save and power-cycle.`,
      reboot: true,
    });
  }
  if (cpu.virt) {
    return check({
      ...base,
      level: "pass",
      state: "ok",
      reason: `${cpu.virt === "vmx" ? "Intel VT-x" : "AMD-V"} is available (${cpu.virt} flag present)`,
    });
  }
  if (cpu.hypervisor) {
    return check({
      ...base,
      level: "fail",
      state: "unsupported",
      reason:
        "no vmx/svm flag: this machine is itself a guest and its hypervisor does not expose nested virtualization",
      remediation:
        "On the outer hypervisor, enable nested virtualization (kvm_intel nested=1 or kvm_amd nested=1) and give this VM a CPU model with vmx/svm (host-passthrough).",
    });
  }
  if (cpu.firmwareVirt === "unknown") {
    return check({
      ...base,
      level: "fail",
      state: "unknown",
      reason:
        "no vmx/svm flag: the CPU lacks VT-x/AMD-V or the firmware disabled it; the MSR that tells them apart could not be read",
      remediation: `Run "modprobe msr" and re-run as root to tell which. If disabled, enable ${bios} in the BIOS/UEFI setup.`,
      reboot: true,
    });
  }
  return check({
    ...base,
    level: "fail",
    state: "unsupported",
    reason: "the CPU does not offer VT-x/AMD-V (no vmx/svm flag, and firmware does not lock it off)",
    remediation: "KVM needs a CPU with VT-x or AMD-V; use another machine.",
  });
}

export function slatCheck(r: HostReport): Check {
  const { cpu } = r;
  const name = cpu.virt === "svm" ? "NPT (RVI)" : "EPT";
  const base = {
    id: "cpu.slat",
    title: "Second-level address translation (EPT/NPT)",
    facts: [cpu.sources.flags ?? ""],
  };
  if (cpu.secondLevelPaging === "yes")
    return check({ ...base, level: "pass", state: "ok", reason: `${name} is available` });
  if (cpu.secondLevelPaging === "no") {
    return check({
      ...base,
      level: "warn",
      state: "unsupported",
      reason: `${name} is missing: guests fall back to shadow paging and run markedly slower`,
      remediation: "Prefer a CPU with EPT/NPT for production VMs.",
    });
  }
  return check({ ...base, level: "note", state: "unknown", reason: "not applicable without VT-x/AMD-V" });
}

export function kvmModuleCheck(r: HostReport): Check {
  const vendorModule = r.cpu.vendor === "AuthenticAMD" ? "kvm_amd" : "kvm_intel";
  const loaded = Object.entries(r.kvm.modules)
    .filter(([, m]) => m.loaded)
    .map(([n]) => n);
  const base = { id: "kvm.module", title: "KVM kernel modules", facts: Object.values(r.kvm.sources) };
  const flavour = loaded.filter((n) => n !== "kvm");
  if (loaded.includes("kvm") && flavour.length > 0) {
    return check({ ...base, level: "pass", state: "ok", reason: `loaded: ${loaded.join(", ")}` });
  }
  if (!r.live && loaded.length === 0) {
    return check({
      ...base,
      level: "note",
      state: "unknown",
      reason: "the snapshot holds no /sys/module entries",
    });
  }
  return check({
    ...base,
    level: r.cpu.virt ? "fail" : "warn",
    state: "disabled-in-kernel",
    reason: loaded.length
      ? `only ${loaded.join(", ")} is loaded; ${vendorModule} is not`
      : "no kvm module is loaded",
    remediation: `modprobe ${vendorModule} (persist it with "${vendorModule}" in /etc/modules-load.d/kvm.conf); if it refuses to load, check dmesg and any blacklist in /etc/modprobe.d.`,
  });
}

export function devKvmCheck(r: HostReport): Check[] {
  const out: Check[] = [];
  const k = r.kvm;
  const facts = ["/dev/kvm"];
  if (k.devKvm.present === null) {
    return [
      check({
        id: "kvm.dev",
        title: "/dev/kvm",
        facts,
        level: "note",
        state: "unknown",
        reason: "the snapshot did not capture /dev",
      }),
    ];
  }
  if (!k.devKvm.present) {
    out.push(
      check({
        id: "kvm.dev",
        title: "/dev/kvm",
        facts,
        level: "fail",
        state: r.cpu.virt ? "disabled-in-kernel" : "unsupported",
        reason: "/dev/kvm does not exist",
        remediation: r.cpu.virt
          ? `Load the KVM module: modprobe ${r.cpu.virt === "svm" ? "kvm_amd" : "kvm_intel"}.`
          : "Enable VT-x/AMD-V first (see cpu.virt).",
      }),
    );
    return out;
  }
  out.push(
    check({ id: "kvm.dev", title: "/dev/kvm", facts, level: "pass", state: "ok", reason: "/dev/kvm exists" }),
  );
  if (k.devKvm.accessible === "no") {
    out.push(
      check({
        id: "kvm.access",
        title: "/dev/kvm access",
        facts,
        level: "warn",
        state: "ok",
        reason: "this user cannot open /dev/kvm read-write",
        remediation: "Run as root, or add the user to the kvm group: usermod -aG kvm USER (log in again).",
      }),
    );
  }
  return out;
}

export function kvmFunctionalCheck(r: HostReport): Check {
  const p = r.kvm.probe;
  const base = { id: "kvm.functional", title: "A guest actually runs under KVM", facts: ["/dev/kvm"] };
  switch (p.verdict) {
    case "usable":
      return check({
        ...base,
        level: p.stages.length > 1 ? "pass" : "warn",
        state: "ok",
        reason: p.detail,
        remediation:
          p.stages.length > 1 ? null : "Point KVMSTRAP_PROBE_KERNEL at a vmlinuz to test a full kernel boot.",
      });
    case "unusable":
      return check({
        ...base,
        level: "fail",
        state: "present-but-unusable",
        reason: `/dev/kvm is present but unusable: ${p.detail}`,
        remediation: r.cpu.hypervisor
          ? 'This host is itself a guest whose hypervisor does not run nested guests correctly. Enable proper nested VT-x/AMD-V on the outer host, or deploy VMs with domain type "qemu" (TCG, much slower).'
          : "Check dmesg for kvm errors, update the BIOS/microcode and kernel; until then VMs need TCG (domain type qemu).",
      });
    default:
      return check({ ...base, level: "note", state: "unknown", reason: p.detail });
  }
}

export function nestedCheck(r: HostReport): Check | null {
  const m = r.kvm.modules.kvm_intel?.loaded ? r.kvm.modules.kvm_intel : r.kvm.modules.kvm_amd;
  const nested = m?.parameters.nested;
  if (!m?.loaded || nested === undefined) return null;
  const on = nested === "Y" || nested === "1";
  return check({
    id: "kvm.nested",
    title: "Nested virtualization",
    facts: Object.values(r.kvm.sources),
    level: "note",
    state: "info",
    reason: on
      ? "nested virtualization is enabled"
      : "nested virtualization is off (guests cannot run their own VMs)",
    remediation: on
      ? null
      : 'To allow it: "options kvm_intel nested=1" (or kvm_amd) in /etc/modprobe.d/kvm.conf, then reload the module.',
  });
}

export function deviceNodeChecks(r: HostReport): Check[] {
  const vhost = r.kvm.vhostNet;
  const tun = r.kvm.tun;
  if (vhost === null || tun === null) return [];
  return [
    check({
      id: "kvm.vhost-net",
      title: "/dev/vhost-net (in-kernel virtio-net)",
      facts: ["/dev/vhost-net"],
      level: vhost ? "pass" : "warn",
      state: vhost ? "ok" : "disabled-in-kernel",
      reason: vhost
        ? "/dev/vhost-net exists"
        : "/dev/vhost-net is missing: virtio-net falls back to slower userspace",
      remediation: vhost
        ? null
        : 'modprobe vhost_net (persist with "vhost_net" in /etc/modules-load.d/kvm.conf)',
    }),
    check({
      id: "kvm.tun",
      title: "/dev/net/tun (tap devices for bridged NICs)",
      facts: ["/dev/net/tun"],
      level: tun ? "pass" : "fail",
      state: tun ? "ok" : "disabled-in-kernel",
      reason: tun ? "/dev/net/tun exists" : "/dev/net/tun is missing: bridged VM NICs cannot be created",
      remediation: tun ? null : "modprobe tun",
    }),
  ];
}
