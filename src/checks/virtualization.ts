// Checks for the CPU's virtualization extensions, the KVM modules and device nodes, and whether a
// guest really runs. Order of reasoning: the CPU flag, then firmware, then the kernel, then the probe.
import type { HostReport } from "../detect/types.js";
import { platformOf, vendorModule, virtName } from "./platform.js";
import { type Check, check } from "./types.js";

const BIOS_NAMES = {
  vmx: '"Intel Virtualization Technology" (also "Intel VT-x", "Virtualization Technology" or "VMX")',
  svm: '"SVM Mode" (also "AMD-V", "Secure Virtual Machine" or "Virtualization")',
};

export function cpuVirtCheck(r: HostReport): Check {
  const { cpu } = r;
  const p = platformOf(r);
  const facts = [cpu.sources.flags, cpu.sources.firmwareVirt].filter((f): f is string => Boolean(f));
  const base = {
    id: "cpu.virt",
    title: `Hardware virtualization (${p.arch === "x86" ? "VT-x/AMD-V" : virtName(p)})`,
    facts,
  };
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
  if (p.arch === "arm64") return arm64VirtCheck(r, base);
  if (p.arch === "s390x") return s390VirtCheck(r, base);
  if (p.arch === "other") {
    return check({
      ...base,
      level: "note",
      state: "unknown",
      reason: `no virtualization check for the ${p.name} architecture; the KVM checks below still apply`,
    });
  }
  // A guest's MSR reads "locked off" whenever its hypervisor hides VT-x: the fix is on the outer host.
  if (cpu.firmwareVirt === "locked-off" && !cpu.hypervisor) {
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

type Base = { id: string; title: string; facts: string[] };

/** arm64 shows no virtualization flag: KVM works when the kernel booted at EL2, which /dev/kvm tells. */
function arm64VirtCheck(r: HostReport, base: Base): Check {
  const dev = r.kvm.devKvm.present;
  if (dev === true)
    return check({
      ...base,
      level: "pass",
      state: "ok",
      reason: "the kernel booted at EL2: /dev/kvm exists",
    });
  if (r.cpu.hypervisor) {
    return check({
      ...base,
      level: dev === false ? "fail" : "warn",
      state: dev === false ? "unsupported" : "unknown",
      reason: `this machine is itself a guest${dev === false ? " and has no /dev/kvm" : ""}: it runs at EL1 unless its hypervisor offers nested virtualization (EL2)`,
      remediation:
        "On the outer host, enable nested virtualization for this VM (Arm FEAT_NV: QEMU -machine virt,virtualization=on with a host kernel that supports it).",
    });
  }
  if (dev === false) {
    return check({
      ...base,
      level: "fail",
      state: "disabled-in-firmware",
      reason: "no /dev/kvm: on arm64 KVM needs the kernel to boot at EL2, and this one did not",
      remediation:
        'Boot the kernel at EL2 (a firmware or boot-loader setting; dmesg shows "kvm [1]: Hyp mode initialized" when it works).',
      reboot: true,
    });
  }
  return check({
    ...base,
    level: "note",
    state: "unknown",
    reason:
      "on arm64 /proc/cpuinfo does not show whether the kernel booted at EL2 (which KVM needs), and /dev was not captured",
  });
}

/** s390x: the "sie" feature is what KVM runs guests with. */
function s390VirtCheck(r: HostReport, base: Base): Check {
  if (r.cpu.flags.includes("sie"))
    return check({
      ...base,
      level: "pass",
      state: "ok",
      reason: "SIE (Start Interpretive Execution) is available",
    });
  return check({
    ...base,
    level: "fail",
    state: "unsupported",
    reason: r.cpu.hypervisor
      ? "no sie feature: this machine is a guest whose hypervisor does not offer nested SIE"
      : "no sie feature: this LPAR cannot run KVM guests",
    remediation: r.cpu.hypervisor
      ? "On the outer KVM host, load kvm with nested=1 (options kvm nested=1); under z/VM, run on an LPAR instead."
      : "Run KVM in an LPAR whose machine offers SIE.",
  });
}

export function slatCheck(r: HostReport): Check {
  const { cpu } = r;
  const p = platformOf(r);
  if (p.arch === "arm64" || p.arch === "s390x") {
    return check({
      id: "cpu.slat",
      title: "Second-level address translation",
      facts: [],
      level: "note",
      state: "info",
      reason:
        p.arch === "arm64"
          ? "stage-2 translation is part of the arm64 architecture"
          : "SIE translates guest memory itself",
    });
  }
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
  const wanted = vendorModule(platformOf(r));
  const loaded = Object.entries(r.kvm.modules)
    .filter(([, m]) => m.loaded)
    .map(([n]) => n);
  const base = { id: "kvm.module", title: "KVM kernel modules", facts: Object.values(r.kvm.sources) };
  const flavour = loaded.filter((n) => n !== "kvm");
  // Off x86, kvm itself carries the architecture (built in on arm64): no vendor module to expect.
  if (loaded.includes("kvm") && (flavour.length > 0 || wanted === null)) {
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
    level: r.cpu.virt || wanted === null ? "fail" : "warn",
    state: "disabled-in-kernel",
    reason: loaded.length
      ? `only ${loaded.join(", ")} is loaded; ${wanted} is not`
      : "no kvm module is loaded",
    remediation:
      platformOf(r).arch === "arm64"
        ? "arm64 kernels build KVM in: it is missing when the kernel did not boot at EL2 (see cpu.virt), or was built without CONFIG_KVM."
        : `modprobe ${wanted ?? "kvm"} (persist it with "${wanted ?? "kvm"}" in /etc/modules-load.d/kvm.conf); if it refuses to load, check dmesg and any blacklist in /etc/modprobe.d.`,
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
        remediation: devKvmFix(r),
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

function devKvmFix(r: HostReport): string {
  const p = platformOf(r);
  if (p.arch === "x86")
    return r.cpu.virt
      ? `Load the KVM module: modprobe ${r.cpu.virt === "svm" ? "kvm_amd" : "kvm_intel"}.`
      : `Enable ${virtName(p)} first (see cpu.virt).`;
  if (p.arch === "arm64") return "Boot the kernel at EL2 so KVM initializes (see cpu.virt).";
  return "Load the KVM module: modprobe kvm (see cpu.virt).";
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
          ? `This host is itself a guest whose hypervisor does not run nested guests correctly. Enable proper nested ${virtName(platformOf(r))} on the outer host, or deploy VMs with domain type "qemu" (TCG, much slower).`
          : `Check dmesg for kvm errors, update the ${platformOf(r).arch === "x86" ? "BIOS/microcode" : "firmware"} and kernel; until then VMs need TCG (domain type qemu).`,
      });
    default:
      return check({ ...base, level: "note", state: "unknown", reason: p.detail });
  }
}

export function nestedCheck(r: HostReport): Check | null {
  // x86 keeps the nested switch in the vendor module; s390x in kvm itself.
  const module = vendorModule(platformOf(r)) ?? "kvm";
  const m = r.kvm.modules.kvm_intel?.loaded
    ? r.kvm.modules.kvm_intel
    : r.kvm.modules.kvm_amd?.loaded
      ? r.kvm.modules.kvm_amd
      : r.kvm.modules[module];
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
      : `To allow it: "options ${module} nested=1" in /etc/modprobe.d/kvm.conf, then reload the module.`,
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
