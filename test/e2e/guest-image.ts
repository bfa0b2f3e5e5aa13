// The e2e tier's guest: a small Debian 12 system built from Debian packages (no cloud image can be
// downloaded here), with cloud-init (NoCloud), qemu-guest-agent and openssh-server, as an ext4 qcow2
// plus the kernel and initrd for direct kernel boot (append GUEST_APPEND).
//
// Cached outside the repository in CACHE/<hash of the recipe>/. A build happens in CACHE/<hash>.tmp-PID
// and is renamed into place only when complete, so an interrupted build never looks cached.
import { createHash } from "node:crypto";
import {
  copyFile,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  truncate,
  unlink,
  writeFile,
} from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";

export const GUEST_APPEND = "root=LABEL=root console=ttyS0 ro";
export type GuestImage = { qcow2: string; kernel: string; initrd: string; user: string; append: string };

const CACHE = process.env.KVMSTRAP_GUEST_CACHE ?? "/var/cache/kvmstrap-test/guest";
const RECIPE = {
  revision: 2, // bump when the customisation below changes
  suite: "bookworm",
  packages: [
    "linux-image-cloud-amd64",
    "cloud-init",
    "qemu-guest-agent",
    "openssh-server",
    "sudo",
    "systemd-sysv",
    "udev",
    "ifupdown",
    "isc-dhcp-client",
    "netbase",
    "e2fsprogs",
  ],
  excludes: ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*"],
  size: "2G",
  user: "debian", // cloud-init's default user on Debian
};

const FILES: Record<string, string> = {
  "etc/fstab": "LABEL=root / ext4 defaults,errors=remount-ro 0 1\n",
  "etc/hostname": "debian\n",
  "etc/hosts": "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
  "etc/resolv.conf": "",
  // No locales package in this image: cc_locale would fail to generate en_US.UTF-8.
  "etc/cloud/cloud.cfg.d/90-kvmstrap-test.cfg": "datasource_list: [ NoCloud, None ]\nlocale: false\n",
};

function progress(message: string, started?: number): void {
  const took = started === undefined ? "" : ` (${((Date.now() - started) / 1000).toFixed(1)} s)`;
  console.log(`[guest-image] ${message}${took}`);
}

/** The Debian mirror apt on this host uses for the suite, from sources.list or deb822 .sources. */
export async function hostMirror(suite = RECIPE.suite): Promise<string> {
  const texts: string[] = [await readFile("/etc/apt/sources.list", "utf8").catch(() => "")];
  for (const f of await readdir("/etc/apt/sources.list.d").catch(() => [] as string[])) {
    if (f.endsWith(".sources")) texts.push(await readFile(`/etc/apt/sources.list.d/${f}`, "utf8"));
  }
  for (const text of texts) {
    const line = new RegExp(`^deb\\s+(?:\\[[^\\]]*\\]\\s+)?(\\S+)\\s+${suite}\\s`, "m").exec(text);
    if (line?.[1]) return line[1];
    for (const stanza of text.split(/\n\s*\n/)) {
      const field = (k: string) => new RegExp(`^${k}:\\s*(.+)$`, "mi").exec(stanza)?.[1]?.trim().split(/\s+/);
      if (field("Types")?.includes("deb") && field("Suites")?.includes(suite)) {
        const uri = field("URIs")?.[0];
        if (uri) return uri;
      }
    }
  }
  return "http://deb.debian.org/debian";
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

async function build(tmp: string): Promise<void> {
  const rootfs = path.join(tmp, "rootfs");
  const mirror = await hostMirror();
  let t = Date.now();
  progress(`mmdebstrap ${RECIPE.suite} from ${mirror} (about a minute)`);
  await execa("mmdebstrap", [
    "--variant=apt",
    "--quiet",
    `--include=${RECIPE.packages.join(",")}`,
    ...RECIPE.excludes.map((p) => `--dpkgopt=path-exclude=${p}`),
    RECIPE.suite,
    rootfs,
    mirror,
  ]);
  progress("mmdebstrap done", t);

  for (const [file, text] of Object.entries(FILES)) {
    await mkdir(path.dirname(path.join(rootfs, file)), { recursive: true });
    await rm(path.join(rootfs, file), { force: true }); // resolv.conf may be a symlink
    await writeFile(path.join(rootfs, file), text);
  }
  const wants = (target: string) => path.join(rootfs, "etc/systemd/system", `${target}.wants`);
  await mkdir(wants("getty.target"), { recursive: true });
  await execa("ln", [
    "-sf",
    "/lib/systemd/system/serial-getty@.service",
    `${wants("getty.target")}/serial-getty@ttyS0.service`,
  ]);
  for (const timer of ["apt-daily.timer", "apt-daily-upgrade.timer"]) {
    await rm(path.join(wants("timers.target"), timer), { force: true });
  }
  for (const f of await readdir(path.join(rootfs, "etc/ssh"))) {
    if (f.startsWith("ssh_host_")) await unlink(path.join(rootfs, "etc/ssh", f)); // cloud-init makes new ones
  }
  // qemu-guest-agent needs no enabling: udev starts it when its virtio-serial port appears.

  const boot = await readdir(path.join(rootfs, "boot"));
  const kernel = boot.find((f) => f.startsWith("vmlinuz-"));
  const initrd = boot.find((f) => f.startsWith("initrd.img-"));
  if (!kernel || !initrd) throw new Error(`no kernel or initrd in ${rootfs}/boot: ${boot.join(" ")}`);
  const listing = (await execa("chroot", [rootfs, "lsinitramfs", `/boot/${initrd}`])).stdout;
  const config = await readFile(path.join(rootfs, "boot", kernel.replace("vmlinuz-", "config-")), "utf8");
  if (
    !listing.includes("virtio_blk.ko") ||
    !(/CONFIG_EXT4_FS=y/.test(config) || listing.includes("/ext4.ko"))
  ) {
    throw new Error(`${initrd} lacks virtio_blk or ext4: the guest could not mount its root`);
  }
  await copyFile(path.join(rootfs, "boot", kernel), path.join(tmp, "vmlinuz"));
  await copyFile(path.join(rootfs, "boot", initrd), path.join(tmp, "initrd.img"));

  t = Date.now();
  const raw = path.join(tmp, "root.raw");
  await writeFile(raw, "");
  await truncate(raw, 2 * 1024 ** 3);
  await execa("mke2fs", ["-q", "-F", "-t", "ext4", "-d", rootfs, "-L", "root", raw, RECIPE.size]);
  await rm(rootfs, { recursive: true, force: true });
  await execa("qemu-img", ["convert", "-O", "qcow2", raw, path.join(tmp, "root.qcow2")]);
  await rm(raw);
  progress("ext4 image converted to qcow2", t);
  await writeFile(path.join(tmp, "recipe.json"), `${JSON.stringify(RECIPE, null, 2)}\n`);
}

export async function ensureGuestImage(): Promise<GuestImage> {
  const key = createHash("sha256").update(JSON.stringify(RECIPE)).digest("hex").slice(0, 16);
  const dir = path.join(CACHE, key);
  const image: GuestImage = {
    qcow2: path.join(dir, "root.qcow2"),
    kernel: path.join(dir, "vmlinuz"),
    initrd: path.join(dir, "initrd.img"),
    user: RECIPE.user,
    append: GUEST_APPEND,
  };
  if (await exists(path.join(dir, "recipe.json"))) return image;

  const started = Date.now();
  progress(`building ${dir}`);
  await mkdir(CACHE, { recursive: true });
  await rm(dir, { recursive: true, force: true }); // an incomplete directory (no recipe.json)
  for (const f of await readdir(CACHE)) {
    const owner = /\.tmp-(\d+)$/.exec(f)?.[1];
    if (owner && !(await exists(`/proc/${owner}`)))
      await rm(path.join(CACHE, f), { recursive: true, force: true });
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp);
  try {
    await build(tmp);
    await rename(tmp, dir).catch(async (e: NodeJS.ErrnoException) => {
      if (!(await exists(path.join(dir, "recipe.json")))) throw e; // else a concurrent build won
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  for (const f of await readdir(CACHE)) {
    if (/^[0-9a-f]{16}$/.test(f) && f !== key)
      await rm(path.join(CACHE, f), { recursive: true, force: true }); // older recipes
  }
  progress("guest image ready", started);
  return image;
}
