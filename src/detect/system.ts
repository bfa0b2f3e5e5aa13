// How the installed system is put together, where it matters to the plan: which bootloader holds
// the kernel command line, and which network stack owns the interfaces. Read from the target root,
// never assumed: writing GRUB settings on a systemd-boot host, or netplan on an ifupdown host,
// changes nothing at the next boot.
import type { DetectContext } from "./sysfs.js";
import type { Sources, SystemReport } from "./types.js";

export async function detectSystem(ctx: DetectContext): Promise<SystemReport> {
  const sources: Sources = {};
  const { fs } = ctx;
  const [
    grubDefault,
    kernelCmdline,
    loaderConf,
    netplanDir,
    interfaces,
    interfacesD,
    networkdDir,
    nmDir,
    ifupdown2,
    cmdline,
  ] = await Promise.all([
    fs.exists("/etc/default/grub"),
    fs.exists("/etc/kernel/cmdline"),
    fs
      .exists("/boot/efi/loader/loader.conf")
      .then(async (a) => a || (await fs.exists("/efi/loader/loader.conf"))),
    fs.readDir("/etc/netplan"),
    fs.readText("/etc/network/interfaces"),
    fs.readDir("/etc/network/interfaces.d"),
    fs.readDir("/etc/systemd/network"),
    fs.readDir("/etc/NetworkManager/system-connections"),
    fs.exists("/usr/share/ifupdown2"),
    fs.readText("/proc/cmdline"),
  ]);
  const zfs = await fs.exists("/sys/module/zfs");

  // systemd-boot keeps its command line in /etc/kernel/cmdline; a host with both prefers what boots.
  let bootloader: SystemReport["bootloader"] = "unknown";
  if (kernelCmdline && (loaderConf || !grubDefault)) {
    bootloader = "systemd-boot";
    sources.bootloader = "/etc/kernel/cmdline";
  } else if (grubDefault) {
    bootloader = "grub";
    sources.bootloader = "/etc/default/grub";
  }

  const yamls = (netplanDir ?? []).filter((f) => f.endsWith(".yaml"));
  const nmFiles = nmDir ?? [];
  const ifaceStanzas = /^\s*iface\s+(?!lo\b)/m.test(interfaces ?? "") || (interfacesD ?? []).length > 0;
  let networkStack: SystemReport["networkStack"] = "unknown";
  if (yamls.length) {
    networkStack = "netplan";
    sources.networkStack = "/etc/netplan";
  } else if (ifaceStanzas || interfaces !== null) {
    networkStack = ifupdown2 ? "ifupdown2" : "ifupdown";
    sources.networkStack = "/etc/network/interfaces";
  } else if (nmFiles.length) {
    networkStack = "networkmanager";
    sources.networkStack = "/etc/NetworkManager/system-connections";
  } else if (networkdDir !== null) {
    networkStack = "networkd";
    sources.networkStack = "/etc/systemd/network";
  }
  return {
    bootloader,
    networkStack,
    cmdline: cmdline?.trim() ?? null,
    zfs,
    sources,
  };
}
