// The in-process NoCloud ISO, read back by real tools: blkid, isoinfo (genisoimage), xorriso, the
// kernel (mount -o loop, when this kernel allows it) and cloud-init's own seed reader; and compared
// with what `xorriso -as mkisofs -V cidata -J -R` makes from the same files.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderSeed } from "../../src/vm/cloud-init.js";
import { buildSeedIso, seedFiles } from "../../src/vm/seed-iso.js";

const has = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
const run = (file: string, args: string[]) => execFileSync(file, args, { stdio: ["ignore", "pipe", "pipe"] });
const NAMES = ["meta-data", "network-config", "user-data"];
const seed = renderSeed({
  hostname: "seed-test",
  user: { name: "ops", sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@x"], sudo: true },
  writeFiles: [{ path: "/etc/kvmstrap-test", content: "x".repeat(5000) }], // user-data > 1 sector
  network: { macAddress: "52:54:00:00:00:01", dhcp: true },
});
const expected = Object.fromEntries(seedFiles(seed).map((f) => [f.name, Buffer.from(f.data)]));

let dir: string;
let ours: string;
let ref: string;
beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-iso-"));
  ours = path.join(dir, "seed.iso");
  await buildSeedIso(seed, ours);
  if (has("xorriso")) {
    const src = path.join(dir, "src");
    mkdirSync(src);
    for (const [n, b] of Object.entries(expected)) writeFileSync(path.join(src, n), b);
    ref = path.join(dir, "ref.iso");
    run("xorriso", ["-as", "mkisofs", "-quiet", "-o", ref, "-V", "cidata", "-J", "-R", src]);
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("seed ISO", () => {
  it("is a whole number of 2048-byte sectors, written atomically (no temporary file left)", async () => {
    expect(statSync(ours).size % 2048).toBe(0);
    await buildSeedIso(seed, ours); // replaces in place
    expect(readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);
    await expect(buildSeedIso(seed, path.join(dir, "missing-dir", "x.iso"))).rejects.toThrow(/ENOENT/);
  });

  it.skipIf(!has("blkid"))('blkid sees LABEL="cidata" TYPE="iso9660"', () => {
    const out = run("blkid", ["-p", "-o", "export", ours]).toString();
    expect(out).toMatch(/^LABEL=cidata$/m);
    expect(out).toMatch(/^TYPE=iso9660$/m);
    expect(run("blkid", [ours]).toString()).toMatch(/LABEL="cidata" .*TYPE="iso9660"/);
  });

  it.skipIf(!has("isoinfo"))("isoinfo reads the volume id, Joliet, the exact names and the content", () => {
    const d = run("isoinfo", ["-d", "-i", ours]).toString();
    expect(d).toMatch(/^Volume id: cidata$/m);
    expect(d).toMatch(/Joliet with UCS level 3 found/);
    const listing = run("isoinfo", ["-J", "-l", "-i", ours]).toString();
    const names = [...listing.matchAll(/\]\s+(\S+)\s*$/gm)]
      .map((m) => m[1])
      .filter((n) => n !== "." && n !== "..");
    expect(names).toEqual(NAMES);
    for (const iso of [ours, ref]) {
      if (!iso) continue;
      for (const n of NAMES)
        expect(run("isoinfo", ["-J", "-x", `/${n}`, "-i", iso]).equals(expected[n] as Buffer)).toBe(true);
    }
  });

  it.skipIf(!has("xorriso"))(
    "xorriso lists and extracts byte-identical files, like from its own mkisofs image",
    () => {
      expect(run("xorriso", ["-indev", ours, "-ls"]).toString().trim().split("\n")).toEqual(
        NAMES.map((n) => `'${n}'`),
      );
      for (const [name, iso] of [
        ["ours", ours],
        ["ref", ref],
      ] as const) {
        const out = path.join(dir, `x-${name}`);
        run("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", "/", out]);
        expect(readdirSync(out).sort()).toEqual(NAMES);
        for (const n of NAMES)
          expect(readFileSync(path.join(out, n)).equals(expected[n] as Buffer)).toBe(true);
      }
    },
  );

  it.skipIf(!has("xorriso") || !has("cloud-init"))(
    "cloud-init's own NoCloud reader parses the extracted seed",
    () => {
      const out = path.join(dir, "x-ours");
      if (!statSync(out, { throwIfNoEntry: false }))
        run("xorriso", ["-osirrox", "on", "-indev", ours, "-extract", "/", out]);
      const py = [
        "import json, sys",
        "from cloudinit import util",
        "md, ud, vd = util.read_seeded('file://' + sys.argv[1] + '/', timeout=1, retries=0)",
        "nc = util.load_yaml(open(sys.argv[1] + '/network-config').read())",
        "print(json.dumps({'md': md, 'ud': ud.decode(), 'nc': nc}))",
      ].join("\n");
      // The interpreter cloud-init itself runs under (its shebang), which has the cloudinit module.
      const cloudInit = run("sh", ["-c", "command -v cloud-init"]).toString().trim();
      const python =
        readFileSync(cloudInit, "utf8")
          .split("\n")[0]
          ?.replace(/^#!\s*/, "")
          .split(" ")[0] ?? "python3";
      const r = JSON.parse(run(python, ["-c", py, out]).toString()) as { md: object; ud: string; nc: object };
      expect(r.md).toEqual({ "instance-id": seed.instanceId, "local-hostname": "seed-test" });
      expect(r.ud).toBe(seed.userData);
      expect(r.nc).toEqual({
        version: 2,
        ethernets: { eth0: { match: { macaddress: "52:54:00:00:00:01" }, dhcp4: true } },
      });
    },
  );

  it("mounts with mount -o loop,ro and reads identical files (when the kernel allows loop + iso9660)", (ctx) => {
    const mnt = path.join(dir, "mnt");
    mkdirSync(mnt, { recursive: true });
    const m = spawnSync("mount", ["-o", "loop,ro", "-t", "iso9660", ours, mnt], {
      encoding: "utf8",
      timeout: 20_000,
    });
    if (m.status !== 0) {
      const why = (m.stderr || m.error?.message || "mount failed").trim().split("\n")[0];
      console.warn(`seed ISO mount test skipped: ${why}`);
      ctx.skip(`mount -o loop not possible here: ${why}`);
      return;
    }
    try {
      expect(readdirSync(mnt).sort()).toEqual(NAMES);
      for (const n of NAMES) expect(readFileSync(path.join(mnt, n)).equals(expected[n] as Buffer)).toBe(true);
    } finally {
      spawnSync("umount", [mnt]);
    }
  });
});
