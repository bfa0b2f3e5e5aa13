// Where the target port keeps the original of a file it replaces or removes: under
// /var/lib/kvmstrap/backup/<path>, never in the file's own directory, which its service reads whole.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { BACKUP_DIR, ORIG_SUFFIX, originalPathOf, RootedTargetFs } from "../../src/host/target.js";

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});
function rootWith(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(tmpdir(), "kvmstrap-target-"));
  roots.push(root);
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    writeFileSync(path.join(root, p), c);
  }
  return root;
}

describe("TargetFs keeps originals outside the directories services read", () => {
  it("a replaced file's original goes under the backup dir, and nothing new appears beside it", async () => {
    const root = rootWith({ "etc/network/interfaces.d/uplink": "iface eno1 inet dhcp\n" });
    const t = new RootedTargetFs(root);
    await t.writeAtomic("/etc/network/interfaces.d/uplink", "# taken over\n", 0o644);
    expect(readdirSync(path.join(root, "etc/network/interfaces.d"))).toEqual(["uplink"]);
    const kept = path.join(root, "var/lib/kvmstrap/backup/etc/network/interfaces.d/uplink");
    expect(readFileSync(kept, "utf8")).toBe("iface eno1 inet dhcp\n");
    expect(await t.exists(`/etc/network/interfaces.d/uplink${ORIG_SUFFIX}`)).toBe(true);
    expect(await t.read(`/etc/network/interfaces.d/uplink${ORIG_SUFFIX}`)).toBe("iface eno1 inet dhcp\n");
  });

  it("a removed file is moved to the backup dir; removing the original by its name removes the backup", async () => {
    const root = rootWith({ "etc/systemd/network/10-uplink.network": "[Match]\nName=eno1\n" });
    const t = new RootedTargetFs(root);
    await t.remove("/etc/systemd/network/10-uplink.network");
    expect(readdirSync(path.join(root, "etc/systemd/network"))).toEqual([]);
    const kept = path.join(root, BACKUP_DIR, "etc/systemd/network/10-uplink.network");
    expect(readFileSync(kept, "utf8")).toBe("[Match]\nName=eno1\n");
    await t.remove(`/etc/systemd/network/10-uplink.network${ORIG_SUFFIX}`, { keepOriginal: false });
    expect(existsSync(kept)).toBe(false);
    expect(existsSync(path.join(root, "var"))).toBe(false); // the directories it made go with it
  });

  it("the first original is kept: a second write does not overwrite it", async () => {
    const root = rootWith({ "etc/modprobe.d/kvm.conf": "first\n" });
    const t = new RootedTargetFs(root);
    await t.writeAtomic("/etc/modprobe.d/kvm.conf", "second\n", 0o644);
    await t.writeAtomic("/etc/modprobe.d/kvm.conf", "third\n", 0o644);
    expect(readFileSync(path.join(root, BACKUP_DIR, "etc/modprobe.d/kvm.conf"), "utf8")).toBe("first\n");
    expect(readdirSync(path.join(root, "etc/modprobe.d"))).toEqual(["kvm.conf"]);
  });

  it("names the backup by the normalised host path", () => {
    expect(originalPathOf("/etc/netplan/../netplan/50.yaml")).toBe(`${BACKUP_DIR}/etc/netplan/50.yaml`);
    expect(originalPathOf(`/etc/x.conf${ORIG_SUFFIX}`)).toBe(`${BACKUP_DIR}/etc/x.conf`);
  });
});
