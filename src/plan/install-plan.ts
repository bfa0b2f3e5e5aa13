// The install plan: the hypervisor onto one disk, as ordinary plan actions (commands and files), so
// `kvmstrap install --dry-run` shows every step, the engine journals each one, and a killed run can
// be read back. Pure: the caller hands in the host report, the answer, the identifiers the new
// filesystems get (chosen before the run so fstab can name them) and where things are. The first
// command re-checks the disk's identity just before anything is erased; every later step names the
// disk by its /dev/disk/by-id path, never by kernel name.
import { matchDisks } from "../answer/match.js";
import { errorsOf, runRules } from "../answer/rules/index.js";
import type { Answer } from "../answer/schema.js";
import { VERSION } from "../core/version.js";
import type { DiskReport, HostReport } from "../detect/types.js";
import type { Action, Plan } from "./actions.js";
import { answerDigest } from "./index.js";

/** Where the install works on the live system: the target's mount point, the source's, the answer. */
export const INSTALL_WORK = "/run/kvmstrap/install";
export const INSTALL_TARGET = `${INSTALL_WORK}/target`;
export const INSTALL_SOURCE_MOUNT = `${INSTALL_WORK}/source`;
/** The answer as the installed host keeps it (its install section dropped: the install is done). */
export const INSTALLED_ANSWER = "/etc/kvmstrap/answer.yaml";
/** Where the installed host keeps the install's logs (its journal, events and the agent's log). */
export const INSTALLED_LOGS = "/var/log/kvmstrap";
/** What the install leaves on the target so a later boot of the appliance knows the disk holds the
 *  install of an answer (src/app/install-marker.ts reads it back without mounting). */
export const INSTALL_MARKER = "/etc/kvmstrap/installed.json";
/** The GPT name of the root partition: how the marker's reader finds the root filesystem. */
export const ROOT_PARTITION_NAME = "kvmstrap root";
/** The marker's content (src/app/install-marker.ts holds it to a schema when it reads it back). */
export interface InstallMarker {
  schema: "kvmstrap.installed/1";
  /** answerDigest of the answer installed (the plan's answerDigest). */
  answerSha256: string;
  version: string;
  installedAt: string;
  disk: { device: string; serial: string | null; wwn: string | null; sizeBytes: number | null };
}
/** live-boot mounts the image's root here on the appliance: the default source of the copy. */
export const LIVE_ROOT = "/run/live/rootfs/filesystem.squashfs";

/** Files the live image adds that have no place on an installed host (console autologin, the TUI). */
const LIVE_ONLY = [
  "etc/systemd/system/getty@.service.d/10-autologin.conf",
  "etc/systemd/system/getty@tty1.service.d/20-kvmstrap.conf",
  "etc/systemd/system/serial-getty@.service.d/20-kvmstrap.conf",
  "usr/local/lib/kvmstrap/live-console",
  // The appliance's boot agent (boot server reports, unattended install): the installed host has its
  // first-boot units instead.
  "etc/systemd/system/multi-user.target.wants/kvmstrap-agent.service",
  "etc/systemd/system/kvmstrap-agent.service",
  "usr/local/lib/kvmstrap/agent-network",
  // DHCP on every wired NIC is the appliance's, for an answer URL; the host's network is the answer's.
  "etc/systemd/network/50-kvmstrap-live-wired.network",
];
/** networkd enabled and a bounded wait for one address: removed when the answer has a network. */
const LIVE_NETWORKD = [
  "etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
  "etc/systemd/system/sockets.target.wants/systemd-networkd.socket",
  "etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service",
  "etc/systemd/system/systemd-networkd-wait-online.service.d/kvmstrap.conf",
];
/** The installed host's network when the answer names none (see the install.dhcp step). */
export const DEFAULT_HOST_NETWORK = "/etc/systemd/network/50-kvmstrap-dhcp.network";
const LIVE_PACKAGES = [
  "live-boot",
  "live-boot-initramfs-tools",
  "live-tools",
  "live-config",
  "live-config-systemd",
];

export interface FirstBootUnits {
  copy: string[];
  enable: string[];
  /** The wrapper's file name under units/, installed as /usr/local/lib/kvmstrap/firstboot. */
  wrapper: string | null;
}
export const NO_UNITS: FirstBootUnits = { copy: [], enable: [], wrapper: null };
export const FIRSTBOOT_WRAPPER = "/usr/local/lib/kvmstrap/firstboot";

/** The disk as the write steps address it, and the identity the guard re-checks. */
export interface InstallDisk {
  /** The stable path of the whole disk: /dev/disk/by-id/... on a real machine. */
  device: string;
  /** The path of partition n (by-id: DEVICE-partN). */
  partition: (n: number) => string;
  /** The partitions it holds now (paths), wiped before the new table is written. */
  existing: string[];
  /** Devices (the disk or its partitions) that are ZFS members, with their size: wipefs leaves some
   *  of ZFS's four labels behind (util-linux#1177), so the 512 KiB at each end are zeroed too. */
  zfs?: { path: string; sizeBytes: number }[];
  identity: { serial: string | null; wwn: string | null; sizeBytes: number | null };
  /** The disk was blank when planned: the guard refuses it if it holds anything now. */
  blank: boolean;
  label: string;
}

export interface InstallInput {
  /** UUID of the new root filesystem and the ESP's volume id (8 hex digits): fstab names them. */
  ids: { rootUuid: string; espVolumeId: string };
  /** The answer file to install, already without its install section (written 0600 by the caller). */
  answerFile: string;
  /** The first-boot units shipped under /opt/kvmstrap/units (units/README.md): the unit files to copy
   *  into /etc/systemd/system, the ones to enable, and the wrapper script they run, if any. */
  units: FirstBootUnits;
  /** The program that re-checks the disk and applies the host configuration offline. */
  kvmstrap?: string;
  /** Overrides the disk the answer picks (the real-parts test on a loop device). */
  disk?: InstallDisk;
  /** The source is an image file to loop-mount (a .squashfs), not a directory. Default: by its name,
   *  except live-boot's mounted root, which is a directory despite its name. */
  sourceIsImage?: boolean;
  /** The live system's kernel consoles (console=... of /proc/cmdline): the installed host keeps them,
   *  so a machine installed over a serial line stays reachable on it. */
  consoles?: string[];
  /** The install's state directory on the live system (journal, event log): copied to the target's
   *  INSTALLED_LOGS before it is unmounted. */
  logs?: string;
  /** When the install runs (ISO 8601), for the marker: an input, so the plan stays pure. */
  installedAt: string;
  /** kvmstrap's version in the marker (default: this kvmstrap's). */
  version?: string;
}

const ESP_MOUNT = `${INSTALL_TARGET}/boot/efi`;
const inTarget = (p: string) => `${INSTALL_TARGET}${p}`;
const chroot = (...argv: string[]) => ["chroot", INSTALL_TARGET, ...argv];

/** The answer's disk as the write steps address it: by its first by-id link. */
export function installDiskOf(d: DiskReport, wipe: boolean): InstallDisk | null {
  const device = d.byId[0];
  if (!device) return null;
  const partNo = (name: string) => /(\d+)$/.exec(name)?.[1];
  return {
    device,
    partition: (n) => `${device}-part${n}`,
    existing: d.partitions.flatMap((p) => {
      const n = partNo(p.name);
      return p.byId?.[0] ? [p.byId[0]] : n ? [`${device}-part${n}`] : [];
    }),
    zfs: [
      ...(d.signatures.includes("zfs_member") && !d.partitions.length && d.sizeBytes
        ? [{ path: device, sizeBytes: d.sizeBytes }]
        : []),
      ...d.partitions.flatMap((p) => {
        const n = partNo(p.name);
        const path = p.byId?.[0] ?? (n ? `${device}-part${n}` : null);
        return p.fstype === "zfs_member" && path && p.sizeBytes ? [{ path, sizeBytes: p.sizeBytes }] : [];
      }),
    ],
    identity: { serial: d.serial, wwn: d.wwn, sizeBytes: d.sizeBytes },
    blank: !wipe,
    label: `${d.name} (${[d.model, d.serial && `serial ${d.serial}`].filter(Boolean).join(", ") || "disk"})`,
  };
}

/**
 * The install plan. Error findings of the rule set become refusals (as in buildPlan); when any of
 * them concerns the install section, or the disk has no by-id link to address it by, nothing is
 * planned.
 */
export function buildInstallPlan(report: HostReport, answer: Answer, input: InstallInput): Plan {
  const refusals = errorsOf(runRules(answer, report)).map((f) => ({
    path: f.path,
    reason: f.message,
    ruleId: f.ruleId,
  }));
  const plan: Plan = {
    schema: "kvmstrap.plan/1",
    answerDigest: answerDigest(answer),
    actions: [],
    refusals,
    needsReboot: false,
  };
  const spec = answer.install;
  if (!spec) {
    refusals.push({
      path: "install",
      reason: "the answer has no install section",
      ruleId: "install.section",
    });
    return plan;
  }
  if (!input.disk && refusals.some((r) => r.path.startsWith("install"))) return plan;
  let disk = input.disk ?? null;
  if (!disk) {
    // The same pure matcher the rule set asked (facts.disk): one decision, made twice identically.
    const d = matchDisks(spec.disk, report).chosen[0];
    disk = d ? installDiskOf(d, spec.wipe) : null;
    if (!disk) {
      refusals.push({
        path: "install.disk",
        reason: `${d?.name ?? "the disk"} has no /dev/disk/by-id link: it cannot be addressed by identity`,
        ruleId: "install.disk-named",
      });
      return plan;
    }
  }
  plan.actions = installActions(spec, disk, input, plan.answerDigest, answer.network !== undefined);
  return plan;
}

function installActions(
  spec: NonNullable<Answer["install"]>,
  disk: InstallDisk,
  input: InstallInput,
  answerSha256: string,
  /** The answer says what the host's network is. */
  hasNetwork: boolean,
): Action[] {
  const out: Action[] = [];
  const cmd = (id: string, argv: string[], summary: string, undo: string[] | null = null) =>
    out.push({ kind: "run-command", id: `install.${id}`, argv, undo, check: null, effect: "none", summary });
  const file = (id: string, path: string, content: string, summary: string) =>
    out.push({
      kind: "write-file",
      id: `install.${id}`,
      path,
      content,
      mode: 0o644,
      previous: null,
      effect: "none",
      summary,
    });
  const kvmstrap = input.kvmstrap ?? "kvmstrap";
  const { serial, wwn, sizeBytes } = disk.identity;
  const bios = spec.firmware !== "uefi";
  const uefi = spec.firmware !== "bios";
  const [esp, root] = [disk.partition(2), disk.partition(3)];

  cmd(
    "guard",
    [
      kvmstrap,
      "install",
      "--check-disk",
      disk.device,
      ...(serial ? ["--serial", serial] : []),
      ...(wwn ? ["--wwn", wwn] : []),
      ...(sizeBytes !== null ? ["--size", String(sizeBytes)] : []),
      ...(disk.blank ? ["--blank"] : []),
    ],
    `re-check ${disk.label} just before erasing it: same identity, not in use, not the boot medium`,
  );
  // ZFS keeps two 256 KiB labels at the start of a vdev and two at its end (its size rounded down
  // to 256 KiB): zero both pairs.
  const LABEL = 256 * 1024;
  for (const [i, z] of (disk.zfs ?? []).entries()) {
    const last = Math.floor(z.sizeBytes / LABEL) - 2;
    for (const [end, seek] of [
      ["head", 0],
      ["tail", last],
    ] as const)
      cmd(
        `zfs-labels.${i + 1}.${end}`,
        [
          "dd",
          "if=/dev/zero",
          `of=${z.path}`,
          `bs=${LABEL}`,
          "count=2",
          `seek=${seek}`,
          "conv=fsync",
          "status=none",
        ],
        `ERASE the ZFS labels at the ${end} of ${z.path} (wipefs leaves some behind)`,
      );
  }
  for (const [i, p] of disk.existing.entries())
    cmd(`wipe.part${i + 1}`, ["wipefs", "--all", "--force", p], `ERASE the signatures on ${p}`);
  cmd("wipe", ["wipefs", "--all", "--force", disk.device], `ERASE the signatures on ${disk.label}`);
  cmd("zap", ["sgdisk", "--zap-all", disk.device], "destroy the old partition tables (GPT and MBR)");
  cmd(
    "partition",
    [
      "sgdisk",
      "--new=1:0:+1M",
      "--typecode=1:EF02",
      "--change-name=1:BIOS boot",
      `--new=2:0:+${spec.espMiB}M`,
      "--typecode=2:EF00",
      "--change-name=2:EFI system",
      "--new=3:0:0",
      "--typecode=3:8304",
      `--change-name=3:${ROOT_PARTITION_NAME}`,
      disk.device,
    ],
    `GPT: BIOS boot (1 MiB), ESP (${spec.espMiB} MiB), root (the rest): boots with BIOS and UEFI`,
  );
  // sgdisk asks the kernel to re-read the table, which fails quietly on some devices (a loop device,
  // a disk something has open): partx adds the partitions one by one instead.
  cmd("partx", ["partx", "--update", disk.device], "tell the kernel about the new partitions");
  cmd("settle", ["udevadm", "settle", "--timeout=60"], "wait for the new partitions' device links");
  cmd(
    "mkfs.esp",
    ["mkfs.vfat", "-F", "32", "-n", "EFI", "-i", input.ids.espVolumeId, esp],
    `FAT32 on the ESP (volume id ${input.ids.espVolumeId})`,
  );
  cmd(
    "mkfs.root",
    ["mkfs.ext4", "-F", "-q", "-L", "hypervisor", "-U", input.ids.rootUuid, root],
    `ext4 on the root partition (UUID ${input.ids.rootUuid})`,
  );
  cmd("mkdir.target", ["mkdir", "-p", INSTALL_TARGET], `mount point ${INSTALL_TARGET}`);
  cmd("mount.root", ["mount", root, INSTALL_TARGET], "mount the new root", ["umount", INSTALL_TARGET]);
  const source = spec.source ?? LIVE_ROOT;
  let from = source;
  if (input.sourceIsImage ?? (source !== LIVE_ROOT && source.endsWith(".squashfs"))) {
    cmd("mkdir.source", ["mkdir", "-p", INSTALL_SOURCE_MOUNT], `mount point ${INSTALL_SOURCE_MOUNT}`);
    cmd(
      "mount.source",
      ["mount", "-t", "squashfs", "-o", "loop,ro", source, INSTALL_SOURCE_MOUNT],
      `mount the image ${source}`,
      ["umount", INSTALL_SOURCE_MOUNT],
    );
    from = INSTALL_SOURCE_MOUNT;
  }
  cmd(
    "copy",
    [
      "rsync",
      "-aHAX",
      "--numeric-ids",
      ...["/proc/*", "/sys/*", "/dev/*", "/run/*", "/tmp/*"].map((x) => `--exclude=${x}`),
      `${from.replace(/\/+$/, "")}/`,
      `${INSTALL_TARGET}/`,
    ],
    `copy the system (Debian, qemu, libvirt, kvmstrap and its node under /opt/kvmstrap) from ${from}`,
  );
  if (from === INSTALL_SOURCE_MOUNT)
    cmd("umount.source", ["umount", INSTALL_SOURCE_MOUNT], "unmount the image");
  cmd("mkdir.esp", ["mkdir", "-p", ESP_MOUNT], "mount point /boot/efi");
  cmd("mount.esp", ["mount", esp, ESP_MOUNT], "mount the ESP", ["umount", ESP_MOUNT]);
  // Plain binds, not --rbind --make-rslave: services with a private mount namespace (systemd-udevd's
  // PrivateMounts=, logind's PrivateTmp=) are slaves that receive a copy of every mount made under
  // /run. --make-rslave cuts the copies of the recursive binds' submounts (/dev/pts, /dev/shm...) off
  // from ours, so the final umount cannot propagate to them, the copies keep the new root mounted
  // in that namespace, and the installed system found its journal to recover at its first boot.
  // GRUB and the initramfs tools need the device nodes, /proc and /sys, not what is mounted below.
  for (const fs of ["dev", "proc", "sys"])
    cmd(
      `bind.${fs}`,
      ["mount", "--bind", `/${fs}`, inTarget(`/${fs}`)],
      `/${fs} inside the target, for the boot loader and initramfs tools`,
      ["umount", inTarget(`/${fs}`)],
    );
  file(
    "fstab",
    inTarget("/etc/fstab"),
    [
      "# Written by kvmstrap install: filesystems by UUID, so a renamed disk still boots.",
      `UUID=${input.ids.rootUuid} / ext4 errors=remount-ro 0 1`,
      `UUID=${input.ids.espVolumeId.replace(/^(.{4})(.{4})$/, "$1-$2").toUpperCase()} /boot/efi vfat umask=0077 0 1`,
      "",
    ].join("\n"),
    "fstab by UUID",
  );
  file(
    "machine-id",
    inTarget("/etc/machine-id"),
    "",
    "an empty machine-id: the installed host makes its own",
  );
  const consoles = input.consoles ?? [];
  const serialConsole = consoles.map((c) => /^ttyS(\d+)(?:,(\d+))?/.exec(c)).find(Boolean);
  file(
    "grub-console",
    inTarget("/etc/default/grub.d/10-kvmstrap-console.cfg"),
    [
      "# Written by kvmstrap install: the consoles the appliance ran on, kept for the installed host.",
      ...(consoles.length
        ? [`GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX ${consoles.map((c) => `console=${c}`).join(" ")}"`]
        : []),
      ...(serialConsole
        ? [
            'GRUB_TERMINAL="console serial"',
            `GRUB_SERIAL_COMMAND="serial --unit=${serialConsole[1]} --speed=${serialConsole[2] ?? "115200"}"`,
          ]
        : []),
      "GRUB_TIMEOUT=3",
      "",
    ].join("\n"),
    `GRUB and the kernel on the consoles the appliance used (${consoles.join(", ") || "none given"})`,
  );
  cmd(
    "live-off",
    // --no-triggers: the initramfs is rebuilt once, by the initramfs step below (each rebuild takes
    // minutes under emulation); the deferred trigger is settled by the next dpkg run on the host.
    chroot("dpkg", "--purge", "--no-triggers", ...LIVE_PACKAGES),
    "remove live-boot: the installed host boots from its own disk",
  );
  // An answer without a network section would leave the host with no address at all: locked out
  // of SSH, and its first boot unable to report to the boot server. It keeps DHCP on its wired
  // NICs instead (networkd, as the appliance had it); an answer's network replaces it.
  const keepDhcp = !hasNetwork;
  cmd(
    "live-files",
    ["rm", "-f", "--", ...[...LIVE_ONLY, ...(keepDhcp ? [] : LIVE_NETWORKD)].map((p) => inTarget(`/${p}`))],
    "remove the live console's autologin, TUI hooks and boot agent",
  );
  if (keepDhcp)
    file(
      "dhcp",
      inTarget(DEFAULT_HOST_NETWORK),
      [
        "# kvmstrap install: the answer has no network section, so the host keeps DHCP on its wired",
        "# NICs (reachable, and its first boot can report). Give the answer a network to replace this.",
        "[Match]",
        "Name=en* eth*",
        "",
        "[Network]",
        "DHCP=yes",
        "LinkLocalAddressing=no",
        "",
      ].join("\n"),
      "DHCP on the wired NICs: the answer has no network section",
    );
  cmd(
    "grub-defaults",
    [
      "sh",
      "-c",
      'test -e "$1" || test ! -e "$2" || cp "$2" "$1"',
      "sh",
      inTarget("/etc/default/grub"),
      inTarget("/usr/share/grub/default/grub"),
    ],
    "/etc/default/grub from GRUB's defaults when the image has none (the -bin packages do not write it)",
  );
  cmd(
    "answer",
    ["install", "-D", "-m", "0600", input.answerFile, inTarget(INSTALLED_ANSWER)],
    `the answer, for the first boot (${INSTALLED_ANSWER}, mode 0600)`,
  );
  const units = `/opt/kvmstrap/units`;
  for (const unit of input.units.copy)
    cmd(
      `unit.${unit}`,
      ["install", "-m", "0644", inTarget(`${units}/${unit}`), inTarget(`/etc/systemd/system/${unit}`)],
      `first-boot unit ${unit}`,
    );
  if (input.units.wrapper)
    cmd(
      "unit.wrapper",
      [
        "install",
        "-D",
        "-m",
        "0755",
        inTarget(`${units}/${input.units.wrapper}`),
        inTarget(FIRSTBOOT_WRAPPER),
      ],
      `the first-boot wrapper ${FIRSTBOOT_WRAPPER}`,
    );
  if (input.units.enable.length)
    cmd("units.enable", chroot("systemctl", "enable", ...input.units.enable), "enable the first-boot units");
  cmd(
    "configure",
    [kvmstrap, "apply", "--root", INSTALL_TARGET, "--offline", "--yes", inTarget(INSTALLED_ANSWER)],
    "configure the host offline from the answer; live-only steps wait for the first boot",
  );
  if (bios) {
    // GRUB finds the BIOS drive of a partition through the kernel; for devices it cannot map that way
    // (loop devices, some RAID HBAs) it needs the map. By-id, so a renamed disk keeps its entry.
    file(
      "grub-device-map",
      inTarget("/boot/grub/device.map"),
      `(hd0) ${disk.device}\n`,
      "GRUB's BIOS drive: this disk",
    );
    cmd(
      "grub.bios",
      chroot("grub-install", "--target=i386-pc", disk.device),
      "GRUB for BIOS in the disk's boot area and BIOS boot partition",
    );
  }
  if (uefi) {
    const sb = spec.secureBoot ? "--uefi-secure-boot" : "--no-uefi-secure-boot";
    const efi = ["--target=x86_64-efi", "--efi-directory=/boot/efi", "--no-nvram", sb];
    cmd(
      "grub.uefi",
      chroot("grub-install", ...efi, "--bootloader-id=debian"),
      `GRUB for UEFI in EFI/debian${spec.secureBoot ? " behind Debian's signed shim" : ""}`,
    );
    cmd(
      "grub.removable",
      chroot("grub-install", ...efi, "--removable"),
      "the removable-media path EFI/BOOT/BOOTX64.EFI: boots on firmware that forgets its boot entries",
    );
  }
  // The live root's conf asks for a gzip initramfs of most modules (iPXE cannot load zstd, and the
  // live system must boot anywhere). The installed host boots only from this disk on this machine:
  // MODULES=dep takes just what its root needs (as Debian's installer does for a "targeted"
  // initrd; in the chroot /proc/mounts shows the target as /), which cuts the rebuild from minutes
  // to seconds on slow hardware, and zstd is Debian's default again.
  file(
    "initramfs-conf",
    inTarget("/etc/initramfs-tools/conf.d/kvmstrap-compress.conf"),
    "MODULES=dep\nCOMPRESS=zstd\n",
    "an initramfs of the modules this disk's root needs, zstd as Debian's default",
  );
  cmd("initramfs", chroot("update-initramfs", "-u", "-k", "all"), "rebuild the initramfs without live-boot");
  cmd("update-grub", chroot("update-grub"), "write grub.cfg for the installed kernel");
  // The marker last of what the system needs, so a run that failed before it leaves none: the next
  // boot of the appliance then installs again instead of taking a half-written disk for done.
  const marker: InstallMarker = {
    schema: "kvmstrap.installed/1",
    answerSha256,
    version: input.version ?? VERSION,
    installedAt: input.installedAt,
    disk: { device: disk.device, ...disk.identity },
  };
  file(
    "marker",
    inTarget(INSTALL_MARKER),
    `${JSON.stringify(marker, null, 2)}\n`,
    `the install marker ${INSTALL_MARKER}: a later unattended boot with the same answer does not erase this disk`,
  );
  if (input.logs) {
    // The install's own journal and event log, and the boot agent's journal when it ran the install
    // (its lines are scrubbed of tokens by the agent): on the installed disk before it is unmounted.
    cmd(
      "logs",
      [
        "sh",
        "-c",
        'mkdir -p "$2" && cp -rT "$1" "$2/install" && chmod -R go-rwx "$2" && ' +
          "{ ! command -v journalctl >/dev/null || " +
          'journalctl -b -u kvmstrap-agent --no-pager -o short-iso >"$2/agent.log" 2>/dev/null || true; }',
        "sh",
        input.logs,
        inTarget(INSTALLED_LOGS),
      ],
      `the install's journal and events, and the boot agent's log, in ${INSTALLED_LOGS}`,
    );
  }
  cmd("sync", ["sync"], "flush everything to the disk");
  cmd("umount", ["umount", "-R", INSTALL_TARGET], "unmount the installed system");
  cmd(
    "closed",
    [
      "sh",
      "-c",
      // A filesystem still mounted somewhere (another mount namespace holding a copy) keeps ext4's
      // needs_recovery flag: the first boot would replay its journal. Said here, with the holders.
      'if dumpe2fs -h "$1" 2>/dev/null | grep -q "^Filesystem features:.*needs_recovery"; then ' +
        'echo "$1 is still mounted in another mount namespace (held by:' +
        ' $(grep -l " $2" /proc/[0-9]*/mountinfo 2>/dev/null | cut -d/ -f3 | tr "\\n" " "))" >&2; exit 1; fi',
      "sh",
      root,
      INSTALL_TARGET,
    ],
    "check the root filesystem is closed (no journal left to replay at the first boot)",
  );
  return out;
}
