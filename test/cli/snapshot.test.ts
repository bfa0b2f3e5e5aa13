import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { lstat, open, readdir, readFile, readlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { extractSnapshot, maskEntries, type SnapshotEntry, writeSnapshot } from "../../src/cli/snapshot.js";
import { detectHost, type HostReport } from "../../src/detect/index.js";
import { detectDisks } from "../../src/detect/storage.js";
import type { DetectContext } from "../../src/detect/sysfs.js";
import { type HostFs, RootedHostFs } from "../../src/host/fs.js";
import { HOSTS, SKIP_REASON, sharedHostRoot, sharedHostsAvailable } from "../helpers/shared-hosts.js";

const dirs: string[] = [];
const tmp = (tag: string) => {
  const d = mkdtempSync(path.join(tmpdir(), `kvmstrap-snap-${tag}-`));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A small detector: CPU model lines, every netdev's MAC, the disks and the hostname, all through fs. */
async function facts(fs: HostFs) {
  const ctx: DetectContext = { fs, warnings: [] };
  const cpuinfo = await fs.readText("/proc/cpuinfo");
  const models = [...new Set((cpuinfo ?? "").split("\n").filter((l) => l.startsWith("model name")))];
  const nets = (await fs.readDir("/sys/class/net")) ?? [];
  const macs: Record<string, string | null> = {};
  for (const n of nets) macs[n] = (await fs.readText(`/sys/class/net/${n}/address`))?.trim() ?? null;
  const disks = await detectDisks(ctx);
  const hostname = (await fs.readText("/proc/sys/kernel/hostname"))?.trim() ?? null;
  return { models, nets, macs, disks, hostname, warnings: ctx.warnings };
}

async function allFiles(
  root: string,
): Promise<{ rel: string; content: string | null; link: string | null }[]> {
  const out: { rel: string; content: string | null; link: string | null }[] = [];
  const walk = async (dir: string) => {
    for (const name of await readdir(dir)) {
      const p = path.join(dir, name);
      const st = await lstat(p);
      const rel = path.relative(root, p);
      if (st.isSymbolicLink()) out.push({ rel, content: null, link: await readlink(p) });
      else if (st.isDirectory()) {
        out.push({ rel, content: null, link: null });
        await walk(p);
      } else out.push({ rel, content: await readFile(p, "utf8"), link: null });
    }
  };
  await walk(root);
  return out;
}

const liveMacs = (): string[] =>
  readdirSync("/sys/class/net")
    .map((n) => {
      try {
        return readFileSync(`/sys/class/net/${n}/address`, "utf8").trim();
      } catch {
        return "";
      }
    })
    .filter((m) => /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(m) && m !== "00:00:00:00:00:00");

describe("writeSnapshot of this machine", () => {
  it("captures what a detector reads; the extracted snapshot gives the same facts (own and system tar)", async () => {
    const out = path.join(tmp("live"), "host.tar.gz");
    let captured: Awaited<ReturnType<typeof facts>> | undefined;
    const res = await writeSnapshot(out, {
      mask: false,
      detect: async (fs) => {
        captured = await facts(fs);
      },
    });
    expect(res.files).toBeGreaterThan(10);
    expect(res.bytes).toBe(readFileSync(out).length);
    expect(captured?.nets.length).toBeGreaterThan(0);
    expect(captured?.disks.length).toBeGreaterThan(0);
    // The live facts themselves, read directly.
    expect(captured?.nets).toEqual(readdirSync("/sys/class/net").sort());

    const mine = tmp("x1");
    await extractSnapshot(out, mine);
    expect(await facts(new RootedHostFs(mine))).toEqual(captured);

    const theirs = tmp("x2");
    execFileSync("tar", ["-xzf", out, "-C", theirs]);
    expect(await facts(new RootedHostFs(theirs))).toEqual(captured);
    // Listings are complete and symlinks keep their relative targets.
    expect(readdirSync(path.join(mine, "sys/block")).sort()).toEqual(readdirSync("/sys/block").sort());
    const first = readdirSync("/sys/block")[0] as string;
    expect(await readlink(path.join(mine, "sys/block", first))).toBe(await readlink(`/sys/block/${first}`));
  });

  it("the full detectHost report of this machine comes back from its snapshot", async () => {
    const out = path.join(tmp("full"), "host.tar.gz");
    let live: HostReport | undefined;
    await writeSnapshot(out, {
      mask: false,
      detect: async (fs) => {
        live = await detectHost({ fs, pciIds: null });
      },
    });
    const dir = tmp("fullx");
    await extractSnapshot(out, dir);
    const again = await detectHost({ fs: new RootedHostFs(dir), pciIds: null });
    expect(live).toBeDefined();
    expect(again.disks).toEqual(live?.disks);
    expect(again.nics).toEqual(live?.nics);
    expect(again.cpu).toEqual(live?.cpu);
    expect(again.pci).toEqual(live?.pci);
    expect(again.memory).toEqual(live?.memory);
    expect(again.hostname).toBe(live?.hostname);
  });

  it("--mask replaces every MAC, serial and the hostname, consistently and keeping their shape", async () => {
    const out = path.join(tmp("mask"), "host.tar.gz");
    let live: Awaited<ReturnType<typeof facts>> | undefined;
    await writeSnapshot(out, {
      mask: true,
      detect: async (fs) => {
        live = await facts(fs);
      },
    });
    const dir = tmp("maskx");
    await extractSnapshot(out, dir);
    const masked = await facts(new RootedHostFs(dir));
    const originals = liveMacs();
    expect(originals.length).toBeGreaterThan(0);
    const everything = (await allFiles(dir))
      .map((f) => `${f.rel}\n${f.link ?? ""}\n${f.content ?? ""}`)
      .join("\n");
    for (const mac of originals) expect(everything).not.toContain(mac);
    for (const [name, mac] of Object.entries(masked.macs)) {
      const orig = live?.macs[name];
      if (!orig || orig === "00:00:00:00:00:00") continue;
      expect(mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
      expect(mac).not.toBe(orig);
      expect(Number.parseInt(mac?.slice(0, 2) ?? "", 16) & 0x03).toBe(0x02); // local, unicast
    }
    for (const d of live?.disks ?? []) {
      const m = masked.disks.find((x) => x.name === d.name);
      expect(m?.sizeBytes).toBe(d.sizeBytes);
      if (d.serial && d.serial.length >= 4) {
        expect(m?.serial).not.toBe(d.serial);
        expect(m?.serial?.length).toBe(d.serial.length);
        expect(everything).not.toContain(d.serial);
      }
    }
    if (live?.hostname) expect(masked.hostname).toBe("masked-host");
  });

  it("a write failure leaves no file behind", async () => {
    const base = tmp("fail");
    const detect = async (fs: HostFs) => void (await fs.readText("/proc/cpuinfo"));
    // The parent is a regular file: the temporary file cannot be created.
    writeFileSync(path.join(base, "plain"), "x");
    await expect(
      writeSnapshot(path.join(base, "plain", "s.tar.gz"), { mask: false, detect }),
    ).rejects.toThrow();
    // The target is a directory: the archive is written, the rename fails, the temporary file goes.
    mkdirSync(path.join(base, "taken.tar.gz", "inside"), { recursive: true });
    await expect(writeSnapshot(path.join(base, "taken.tar.gz"), { mask: false, detect })).rejects.toThrow();
    // The detector fails: nothing is written at all.
    const boom = async () => {
      throw new Error("detector broke");
    };
    await expect(writeSnapshot(path.join(base, "x.tar.gz"), { mask: false, detect: boom })).rejects.toThrow(
      "broke",
    );
    expect(readdirSync(base).sort()).toEqual(["plain", "taken.tar.gz"]);
    expect(readdirSync(path.join(base, "taken.tar.gz"))).toEqual(["inside"]);
    if (process.getuid?.() !== 0) {
      // A read-only directory (meaningless as root, who may write anywhere).
      const ro = path.join(base, "ro");
      mkdirSync(ro, { mode: 0o500 });
      await expect(writeSnapshot(path.join(ro, "s.tar.gz"), { mask: false, detect })).rejects.toThrow();
      expect(readdirSync(ro)).toEqual([]);
    }
  });
});

if (!sharedHostsAvailable) console.warn(SKIP_REASON);

describe.skipIf(!sharedHostsAvailable)("re-capturing the shared snapshots", () => {
  it.each(HOSTS)("%s: a snapshot of the snapshot gives the same report, warnings included", async (host) => {
    const root = sharedHostRoot(host);
    let first: HostReport | undefined;
    const out = path.join(tmp("re"), "s.tar.gz");
    await writeSnapshot(out, {
      mask: false,
      root,
      detect: async (fs) => {
        first = await detectHost({ fs, pciIds: null });
      },
    });
    const dir = tmp("rex");
    await extractSnapshot(out, dir);
    const again = await detectHost({ fs: new RootedHostFs(dir), pciIds: null });
    expect({ ...again, root: "" }).toEqual({ ...first, root: "" });
  });
});

describe("capturing a hostile machine root", () => {
  it("a FIFO, a link loop and sys -> /sys end up as captured shapes, never a hang or the live /sys", async () => {
    const root = tmp("hostile");
    mkdirSync(path.join(root, "proc/sys/kernel"), { recursive: true });
    writeFileSync(path.join(root, "proc/sys/kernel/hostname"), "hostile\n");
    execFileSync("mkfifo", [path.join(root, "proc/cpuinfo")]);
    symlinkSync("meminfo", path.join(root, "proc/meminfo"));
    symlinkSync("/sys", path.join(root, "sys"));
    const out = path.join(tmp("hostile-out"), "s.tar.gz");
    let report: HostReport | undefined;
    const detect = async (fs: HostFs) => {
      report = await detectHost({ fs, pciIds: null });
    };
    await writeSnapshot(out, { mask: false, detect, root });
    expect(report?.nics).toEqual([]);
    const dir = tmp("hostile-x");
    await extractSnapshot(out, dir);
    const again = await detectHost({ fs: new RootedHostFs(dir), pciIds: null });
    expect(again.hostname).toBe("hostile");
    expect(again.nics).toEqual([]);
    expect(again.cpu.model).toBeNull();
  }, 30_000);
});

describe("snapshot format details", () => {
  it("bytes read at a large offset of a device become a sparse file that both extractors restore", async () => {
    const root = tmp("msr");
    mkdirSync(path.join(root, "dev/cpu/0"), { recursive: true });
    mkdirSync(path.join(root, "proc"), { recursive: true });
    writeFileSync(path.join(root, "proc/cpuinfo"), "vendor_id\t: AuthenticAMD\n");
    const msr = path.join(root, "dev/cpu/0/msr");
    const VM_CR = 0xc0010114;
    const fh = await open(msr, "w");
    await fh.truncate(VM_CR + 64);
    await fh.write(Buffer.from([0x08, 0, 0, 0, 0, 0, 0, 0x10]), 0, 8, VM_CR);
    await fh.write(Buffer.from([5, 0, 0, 0, 0, 0, 0, 0]), 0, 8, 0x3a);
    await fh.close();
    const reads = async (fs: HostFs) => [
      await fs.readBytes("/dev/cpu/0/msr", VM_CR, 8),
      await fs.readBytes("/dev/cpu/0/msr", 0x3a, 8),
      await fs.exists("/dev/cpu/0/msr"),
    ];
    let before: unknown;
    const out = path.join(tmp("msrout"), "s.tar.gz");
    const { bytes } = await writeSnapshot(out, {
      mask: false,
      root,
      detect: async (fs) => {
        before = await reads(fs);
      },
    });
    expect(bytes).toBeLessThan(4096);
    const mine = tmp("msr1");
    await extractSnapshot(out, mine);
    expect(await reads(new RootedHostFs(mine))).toEqual(before);
    const theirs = tmp("msr2");
    execFileSync("tar", ["-xzf", out, "-C", theirs]);
    expect(await reads(new RootedHostFs(theirs))).toEqual(before);
    expect(existsSync(path.join(theirs, "dev/cpu/0/GNUSparseFile.0"))).toBe(false);
  });

  it("maskEntries maps each MAC and serial to one placeholder everywhere it appears", () => {
    const f = (p: string, text: string): SnapshotEntry => ({
      type: "file",
      path: p,
      content: Buffer.from(text),
    });
    const entries: SnapshotEntry[] = [
      f("/etc/hosts", "127.0.1.1 node17.example node17\n"),
      f("/proc/sys/kernel/hostname", "node17\n"),
      f(
        "/run/udev/data/b8:0",
        "E:ID_SERIAL=ACME_SSD_S3Z9NB0K12\nE:ID_SERIAL_SHORT=S3Z9NB0K12\nE:ID_WWN=0x5002538e40a1b2c3\n",
      ),
      f("/run/udev/data/n2", "E:ID_NET_NAME_MAC=enx3cfdfe0a1b2c\n"),
      f("/sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/serial", "S3Z9NB0K12\n"),
      f("/sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/wwid", "naa.5002538e40a1b2c3\n"),
      f("/sys/devices/pci0000:00/0000:00:1f.6/net/eno1/address", "3c:fd:fe:0a:1b:2c\n"),
      f("/sys/devices/pci0000:00/0000:00:1f.6/net/eno1/perm_addr", "3C:FD:FE:0A:1B:2C\n"),
      f("/sys/devices/virtual/net/lo/address", "00:00:00:00:00:00\n"),
      f("/proc/meminfo", "MemTotal:       16303428 kB\n"),
      { type: "symlink", path: "/dev/disk/by-id/ata-ACME_SSD_S3Z9NB0K12", target: "../../sda" },
      { type: "symlink", path: "/dev/disk/by-id/wwn-0x5002538e40a1b2c3", target: "../../sda" },
      { type: "symlink", path: "/sys/class/net/enx3cfdfe0a1b2c", target: "../../devices/virtual/net/x" },
    ];
    const masked = maskEntries(entries);
    const text = (p: string) => {
      const e = masked.find((x) => x.path.endsWith(p));
      return e?.type === "file" ? e.content.toString() : "";
    };
    const mac = text("eno1/address").trim();
    expect(mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    expect(mac).not.toBe("3c:fd:fe:0a:1b:2c");
    expect(Number.parseInt(mac.slice(0, 2), 16) & 0x03).toBe(0x02);
    expect(text("eno1/perm_addr").trim()).toBe(mac.toUpperCase());
    expect(text("/run/udev/data/n2")).toBe(`E:ID_NET_NAME_MAC=enx${mac.replace(/:/g, "")}\n`);
    expect(masked.some((e) => e.path === `/sys/class/net/enx${mac.replace(/:/g, "")}`)).toBe(true);
    expect(text("lo/address")).toBe("00:00:00:00:00:00\n");

    const serial = text("0:0:0:0/serial").trim();
    expect(serial).toMatch(/^[A-Z][0-9][A-Z][0-9][A-Z]{2}[0-9][A-Z][0-9]{2}$/); // S3Z9NB0K12's shape
    expect(serial).not.toBe("S3Z9NB0K12");
    expect(text("b8:0")).toContain(`E:ID_SERIAL_SHORT=${serial}\n`);
    expect(text("b8:0")).toContain(`E:ID_SERIAL=ACME_SSD_${serial}\n`);
    const wwn = text("0:0:0:0/wwid").trim();
    expect(wwn).toMatch(/^naa\.[0-9a-f]{16}$/);
    expect(text("b8:0")).toContain(`E:ID_WWN=0x${wwn.slice(4)}\n`);
    const links = masked.filter((e) => e.type === "symlink").map((e) => e.path);
    expect(links).toContain(`/dev/disk/by-id/ata-ACME_SSD_${serial}`);
    expect(links).toContain(`/dev/disk/by-id/wwn-0x${wwn.slice(4)}`);

    expect(text("kernel/hostname")).toBe("masked-host\n");
    expect(text("/etc/hosts")).toBe("127.0.1.1 masked-host.example masked-host\n");
    expect(text("meminfo")).toBe("MemTotal:       16303428 kB\n");
    const all = masked.map((e) => `${e.path} ${e.type === "file" ? e.content : ""}`).join("\n");
    expect(all).not.toMatch(/S3Z9NB0K12|5002538e40a1b2c3|3c:fd:fe|3cfdfe/i);
    // Deterministic: the same input gives the same output.
    expect(maskEntries(entries)).toEqual(masked);
  });

  it("extractSnapshot refuses entries that escape the directory", async () => {
    const tar = (await import("tar-stream")).default;
    const { createGzip } = await import("node:zlib");
    const make = async (file: string, add: (p: ReturnType<typeof tar.pack>) => void) => {
      const pack = tar.pack();
      add(pack);
      pack.finalize();
      const chunks: Buffer[] = [];
      for await (const c of pack.pipe(createGzip())) chunks.push(c as Buffer);
      writeFileSync(file, Buffer.concat(chunks));
    };
    const base = tmp("evil");
    const dotdot = path.join(base, "dotdot.tar.gz");
    await make(dotdot, (p) => p.entry({ name: "./../escaped", type: "file" }, "x"));
    await expect(extractSnapshot(dotdot, path.join(base, "a"))).rejects.toThrow(/escapes/);
    const through = path.join(base, "through.tar.gz");
    await make(through, (p) => {
      p.entry({ name: "./sys", type: "symlink", linkname: "." });
      p.entry({ name: "./sys/x", type: "file" }, "x");
    });
    await expect(extractSnapshot(through, path.join(base, "b"))).rejects.toThrow(/through the link/);
    const outward = path.join(base, "outward.tar.gz");
    await make(outward, (p) => p.entry({ name: "./up", type: "symlink", linkname: "../../etc" }));
    await expect(extractSnapshot(outward, path.join(base, "c"))).rejects.toThrow(/outside/);
    expect(existsSync(path.join(base, "escaped"))).toBe(false);
  });
});
