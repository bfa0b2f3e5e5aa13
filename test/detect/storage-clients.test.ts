// detectStorageClients on trees built for each case, and on this machine's own root (a kernel with
// no loadable modules and no NFS client: a cluster store's mode auto must pick iscsi-direct and libnfs).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { detectStorageClients } from "../../src/detect/storage-clients.js";
import { RootedHostFs } from "../../src/host/fs.js";

const REL = "6.1.0-28-amd64";
let roots: string[] = [];
afterEach(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
  roots = [];
});

function tree(files: Record<string, string>) {
  const root = mkdtempSync(path.join(tmpdir(), `kvmstrap-stclients-${process.pid}-`));
  roots.push(root);
  for (const [p, content] of Object.entries({ "/proc/sys/kernel/osrelease": `${REL}\n`, ...files })) {
    const full = path.join(root, p);
    if (p.endsWith("/")) mkdirSync(full, { recursive: true });
    else {
      mkdirSync(path.dirname(full), { recursive: true });
      writeFileSync(full, content);
    }
  }
  return detectStorageClients({ fs: new RootedHostFs(root), warnings: [] });
}

const NO_NFS = "nodev\tsysfs\nnodev\tproc\n\text4\n\txfs\nnodev\tfuse\n";

describe("detectStorageClients", () => {
  it("Debian's kernel with open-iscsi and nfs-common: both through the kernel", async () => {
    const r = await tree({
      "/proc/filesystems": NO_NFS,
      [`/lib/modules/${REL}/modules.dep`]:
        "kernel/drivers/scsi/iscsi_tcp.ko: kernel/drivers/scsi/libiscsi_tcp.ko\nkernel/fs/nfs/nfs.ko: kernel/fs/lockd/lockd.ko\n",
      "/usr/sbin/iscsiadm": "",
      "/sbin/mount.nfs": "",
    });
    expect(r).toMatchObject({ iscsiTcp: true, iscsiadm: true, nfsClient: true, mountNfs: true });
    expect(r.sources).toMatchObject({ iscsiTcp: `/lib/modules/${REL}`, iscsiadm: "/usr/sbin/iscsiadm" });
  });

  it("loaded modules and nfs registered in /proc/filesystems count without a module tree", async () => {
    const r = await tree({
      "/proc/filesystems": `${NO_NFS}nodev\tnfs\nnodev\tnfs4\n`,
      "/sys/module/iscsi_tcp/": "",
    });
    expect(r).toMatchObject({ iscsiTcp: true, nfsClient: true });
    expect(r.sources).toMatchObject({ iscsiTcp: "/sys/module/iscsi_tcp", nfsClient: "/proc/filesystems" });
  });

  it("a kernel without loadable modules and without the clients: no, not unknown", async () => {
    const r = await tree({
      "/proc/filesystems": NO_NFS,
      "/sys/module/kvm/": "",
      "/usr/sbin/ip": "",
    });
    expect(r).toMatchObject({ iscsiTcp: false, iscsiadm: false, nfsClient: false, mountNfs: false });
  });

  it("a tree that says nothing (no /proc/filesystems, /sys/module or /usr/sbin): unknown", async () => {
    const r = await tree({});
    expect(r).toMatchObject({ iscsiTcp: null, iscsiadm: null, nfsClient: null, mountNfs: null });
  });

  it("this machine: no iscsi_tcp and no NFS client in the kernel (the brief's facts)", async () => {
    const fs = readFileSync("/proc/filesystems", "utf8");
    const r = await detectStorageClients({ fs: new RootedHostFs("/"), warnings: [] });
    expect(r.nfsClient).toBe(/\snfs4?$/m.test(fs));
    if (!/\snfs4?$/m.test(fs)) expect(r.nfsClient).toBe(false);
    expect(typeof r.iscsiTcp).toBe("boolean");
  });
});
