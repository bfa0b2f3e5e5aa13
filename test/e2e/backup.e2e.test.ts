// Snapshots and backups through the built CLI (`node bin/kvmstrap.js vm snapshot|backup|restore`) on
// the test libvirtd, with one Debian guest booted once and shared: files are written and read through
// the guest agent. A snapshot revert boots back to the state at the snapshot (the file written before
// it is there, the one after is not); a full then an incremental backup, restored to a new VM that
// boots and holds what was written before the incremental and not what came after. The snapshot
// records the guest's addresses (from its agent), and list shows them. A checksum
// mismatch and a broken chain are refused naming the file.
import { mkdtemp, open, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { detectHost } from "../../src/detect/index.js";
import { RootedHostFs } from "../../src/host/fs.js";
import { deployVm } from "../../src/vm/deploy.js";
import type { Libvirt } from "../../src/vm/libvirt.js";
import { VirshLibvirt } from "../../src/vm/virsh-libvirt.js";
import { networkXml, sshPublicKey, TEST_NET } from "./guest-fixture.js";
import { ensureGuestImage, type GuestImage } from "./guest-image.js";
import { startTestLibvirtd, type TestLibvirtd } from "./libvirtd.js";

const tag = Date.now().toString(36).slice(-5);
const name = `kvst-bk-${tag}`;
const restored = `kvst-rs-${tag}`;
const CLI = path.resolve("bin/kvmstrap.js");

let daemon: TestLibvirtd | undefined;
let lv: Libvirt;
let image: GuestImage;
let vmDir = "";
let backupDir = "";
const t0 = Date.now();
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const log = (s: string) => console.log(`[e2e backup] ${s}`);

const cli = (...args: string[]) =>
  execa("node", [CLI, "vm", ...args, "--connect", daemon?.uri ?? ""], { reject: false, timeout: 300_000 });

/** Waits until the guest agent of `vm` answers; returns how long that took. */
async function agentUp(vm: string, timeoutMs = 240_000): Promise<number> {
  const start = Date.now();
  while (!(await lv.agentPing(vm))) {
    if (Date.now() - start > timeoutMs) throw new Error(`${vm}: no guest agent after ${secs(timeoutMs)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  return Date.now() - start;
}
const sh = async (vm: string, script: string) => {
  const r = await lv.agentExec(vm, "/bin/sh", ["-c", script], { timeoutMs: 60_000 });
  return { code: r.exitCode, out: r.stdout.trim() };
};
const write = (vm: string, file: string, text: string) => sh(vm, `echo ${text} > ${file} && sync`);
const read = (vm: string, file: string) => sh(vm, `cat ${file}`);

beforeAll(async () => {
  image = await ensureGuestImage();
  daemon = await startTestLibvirtd();
  lv = new VirshLibvirt(daemon.uri);
  await lv.netDefine(networkXml());
  await lv.netStart(TEST_NET.name);
  vmDir = await mkdtemp(path.join("/var/tmp", "kvmstrap-e2e-backup-"));
  backupDir = path.join(vmDir, "backups");
  const info = JSON.parse((await execa("qemu-img", ["info", "--output=json", image.qcow2])).stdout);
  const report = await detectHost({ fs: new RootedHostFs("/") }); // no runner: probe not run, so TCG
  const t = Date.now();
  await deployVm(
    {
      name,
      image: image.qcow2,
      vcpus: 2,
      memoryMiB: 1024,
      diskGiB: Math.ceil(info["virtual-size"] / 2 ** 30),
      user: { name: image.user, sshKeys: [sshPublicKey(`e2e@${name}`)], sudo: true },
      nics: [{ kind: "network", network: TEST_NET.name }],
      kernel: { path: image.kernel, initrd: image.initrd, cmdline: image.append },
    },
    { libvirt: lv, report, dir: vmDir },
  );
  log(
    `first boot: guest agent up ${secs(await agentUp(name))} after start (setup ${secs(Date.now() - t0)}, deploy ${secs(Date.now() - t)})`,
  );
});

afterAll(async () => {
  if (daemon) await daemon.stop();
  if (vmDir) await rm(vmDir, { recursive: true, force: true });
  log(`total ${secs(Date.now() - t0)}`);
});

describe("vm snapshot and vm backup/restore on a real guest", () => {
  it("a snapshot revert boots back to the disk at the snapshot: the file before it is there, the one after is not", async () => {
    expect((await write(name, "/var/tmp/before-snap", "one")).code).toBe(0);
    const created = await cli("snapshot", "create", name, "s1", "--json");
    expect(created.exitCode, created.stderr).toBe(0);
    const c = JSON.parse(created.stdout).result;
    log(`snapshot create: ${c.durationMs} ms, quiesced ${c.quiesced}`);
    expect(c.quiesced).toBe(true); // the guest agent answers, so its freeze was used
    expect(c.disks).toHaveLength(1);
    expect((await lv.domainDisks(name)).find((d) => d.device === "disk")?.source).toBe(c.disks[0].file);
    const listed = JSON.parse((await cli("snapshot", "list", name, "--json")).stdout);
    expect(listed.snapshots.map((s: { name: string }) => s.name)).toEqual(["s1"]);
    // The guest's addresses at snapshot time, from its agent: the NIC's DHCP address among them.
    const lease = (await lv.ifAddresses(name, "lease"))[0]?.addrs[0]?.address;
    expect(lease).toBeTruthy();
    expect(c.addresses.source).toBe("agent");
    expect(listed.snapshots[0].addresses).toEqual(c.addresses);
    const recorded = c.addresses.interfaces.flatMap((i: { addrs: { address: string }[] }) =>
      i.addrs.map((a) => a.address),
    );
    expect(recorded).toContain(lease);
    expect(recorded).not.toContain("127.0.0.1");

    expect((await write(name, "/var/tmp/after-snap", "two")).code).toBe(0);
    expect((await read(name, "/var/tmp/after-snap")).out).toBe("two");

    const missing = await cli("snapshot", "revert", name, "nosuch");
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain('no snapshot "nosuch"');
    const noVm = await cli("snapshot", "create", "no-such-vm", "s1");
    expect(noVm.exitCode).toBe(2);
    expect(noVm.stderr).toContain('no such VM "no-such-vm"');

    const reverted = await cli("snapshot", "revert", name, "s1");
    expect(reverted.exitCode, reverted.stderr).toBe(0);
    expect(reverted.stdout).toContain("started again");
    log(`after revert: guest agent up ${secs(await agentUp(name))} after start (second boot)`);
    expect(await read(name, "/var/tmp/before-snap")).toEqual({ code: 0, out: "one" });
    expect((await read(name, "/var/tmp/after-snap")).code).not.toBe(0);

    // Deleting merges the (reverted) overlay back: the disk is the deploy's overlay again.
    const deleted = await cli("snapshot", "delete", name, "s1");
    expect(deleted.exitCode, deleted.stderr).toBe(0);
    expect(JSON.parse((await cli("snapshot", "list", name, "--json")).stdout).snapshots).toEqual([]);
    expect((await lv.domainDisks(name)).find((d) => d.device === "disk")?.source).not.toContain(".s1.");
    expect(await read(name, "/var/tmp/before-snap")).toEqual({ code: 0, out: "one" });
  });

  it("a full and an incremental backup restore to a new VM that boots with the data written before the incremental", async () => {
    const noChain = await cli("backup", name, "--to", backupDir, "--incremental");
    expect(noChain.exitCode).toBe(2);
    expect(noChain.stderr).toContain("take a full backup first");

    expect((await write(name, "/var/tmp/in-full", "full-data")).code).toBe(0);
    const full = await cli("backup", name, "--to", backupDir, "--json");
    expect(full.exitCode, full.stderr).toBe(0);
    const f = JSON.parse(full.stdout);
    expect(f.entry.kind).toBe("full");

    // 8 MiB of random data and a marker, then the incremental.
    expect(
      (
        await sh(
          name,
          "head -c 8388608 /dev/urandom > /var/tmp/blob && sha256sum /var/tmp/blob > /var/tmp/blob.sum && echo inc-data > /var/tmp/in-inc && sync",
        )
      ).code,
    ).toBe(0);
    const blobSum = (await read(name, "/var/tmp/blob.sum")).out.split(" ")[0];
    const inc = await cli("backup", name, "--to", backupDir, "--incremental", "--json");
    expect(inc.exitCode, inc.stderr).toBe(0);
    const i = JSON.parse(inc.stdout);
    expect(i.entry).toMatchObject({ kind: "incremental", seq: 1, since: f.entry.checkpoint });
    expect(i.chainDir).toBe(f.chainDir);
    const size = (e: { files: { size: number }[] }) => e.files.reduce((n, x) => n + x.size, 0);
    log(
      `full ${(size(f.entry) / 2 ** 20).toFixed(1)} MiB in ${f.entry.durationMs} ms; incremental ${(size(i.entry) / 2 ** 20).toFixed(1)} MiB in ${i.entry.durationMs} ms`,
    );
    expect(size(i.entry)).toBeLessThan(size(f.entry) / 4);
    expect(size(i.entry)).toBeGreaterThan(8 * 2 ** 20);

    expect((await write(name, "/var/tmp/after-inc", "late")).code).toBe(0);

    // A flipped byte in the incremental is refused naming the file; a broken chain naming the manifest.
    const incFile = path.join(i.chainDir, i.entry.files[0].file);
    const flip = async () => {
      const h = await open(incFile, "r+");
      const at = (await h.stat()).size - 4096;
      const b = Buffer.alloc(1);
      await h.read(b, 0, 1, at);
      b[0] = (b[0] ?? 0) ^ 0xff;
      await h.write(b, 0, 1, at);
      await h.close();
    };
    await flip();
    const bad = await cli("restore", backupDir, "--name", restored, "--dir", vmDir);
    await flip();
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain(incFile);
    expect(bad.stderr).toContain("does not match");
    const manifest = path.join(i.chainDir, "manifest.json");
    const good = await readFile(manifest, "utf8");
    await writeFile(
      manifest,
      good.replace(`"since": "${f.entry.checkpoint}"`, '"since": "kvmstrap-elsewhere"'),
    );
    const broken = await cli("restore", backupDir, "--name", restored, "--dir", vmDir);
    await writeFile(manifest, good);
    expect(broken.exitCode).toBe(2);
    expect(broken.stderr).toContain(manifest);
    expect(broken.stderr).toContain("broken chain");
    expect(await lv.domainExists(restored)).toBe(false);

    const r = await cli("restore", backupDir, "--name", restored, "--dir", vmDir, "--start");
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain("checksums verified");
    const disk = path.join(vmDir, `${restored}.qcow2`);
    expect((await stat(disk)).isFile()).toBe(true);
    const info = JSON.parse((await execa("qemu-img", ["info", "-U", "--output=json", disk])).stdout);
    expect(info["backing-filename"]).toBeUndefined(); // flattened: the backups can go away
    log(`restored VM: guest agent up ${secs(await agentUp(restored))} after start (third boot)`);
    expect(await read(restored, "/var/tmp/in-full")).toEqual({ code: 0, out: "full-data" });
    expect(await read(restored, "/var/tmp/in-inc")).toEqual({ code: 0, out: "inc-data" });
    expect((await sh(restored, "sha256sum /var/tmp/blob")).out.split(" ")[0]).toBe(blobSum);
    expect((await read(restored, "/var/tmp/after-inc")).code).not.toBe(0);
    // The original goes on untouched.
    expect(await read(name, "/var/tmp/after-inc")).toEqual({ code: 0, out: "late" });

    // --replace: refused while the VM runs; stopped, the VM is redefined on a restored disk, its
    // checkpoints (bitmaps in the disk it no longer uses) dropped.
    const running = await cli("restore", backupDir, "--replace", "--dir", vmDir);
    expect(running.exitCode).toBe(2);
    expect(running.stderr).toContain(`VM "${name}" is running`);
    await lv.destroy(name);
    expect(await lv.checkpointNames(name)).toHaveLength(2);
    const replaced = await cli("restore", backupDir, "--replace", "--dir", vmDir, "--json");
    expect(replaced.exitCode, replaced.stderr).toBe(0);
    const file = JSON.parse(replaced.stdout).disks[0].file;
    expect(file).toMatch(new RegExp(`/${name}\\.restored-\\d{8}T\\d{6}Z\\.qcow2$`));
    expect((await lv.domainDisks(name)).find((d) => d.target === "vda")?.source).toBe(file);
    expect(await lv.checkpointNames(name)).toEqual([]);
  });
});
