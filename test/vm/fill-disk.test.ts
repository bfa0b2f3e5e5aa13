// kvmstrap vm fill-disk's logic (src/vm/fill-disk.ts) with the real qemu-img and qemu-io on plain
// files (the same block layer reaches an iSCSI LUN or an NFS file; the cluster tier's iSCSI and NFS
// tests run it there): a blank volume gets the image; a volume holding data anywhere in its first or
// last MiB is never written; a missing file is made at the size asked; an image larger than the
// volume is refused before any write; and a write cut off before its last step leaves the volume
// blank, so the next run writes it whole.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { vmFillDiskCommand } from "../../src/cli/vm-fill-disk-command.js";
import { type CommandRunner, ExecaRunner } from "../../src/host/commands.js";
import { FillError, fillDisk } from "../../src/vm/fill-disk.js";
import { captureCli } from "../helpers/capture-cli.js";

const hasQemu = (() => {
  try {
    execFileSync("qemu-img", ["--version"], { stdio: "ignore" });
    execFileSync("qemu-io", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

const MiB = 2 ** 20;
let dir = "";
let imageBytes: Buffer;
let qcow2 = "";
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), `kvmstrap-fill-${process.pid}-`));
  // An image of 3 MiB with data at both ends and a hole in the middle, as qcow2 (a cloud image's form).
  imageBytes = Buffer.concat([randomBytes(MiB + 4096), Buffer.alloc(MiB), randomBytes(MiB - 4096)]);
  await writeFile(path.join(dir, "image.raw"), imageBytes);
  qcow2 = path.join(dir, "image.qcow2");
  if (hasQemu) execFileSync("qemu-img", ["convert", "-O", "qcow2", path.join(dir, "image.raw"), qcow2]);
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const image = () => ({ path: qcow2, format: "qcow2" as const });
const file = (name: string) => ({ driver: "file" as const, filename: path.join(dir, name) });

describe.skipIf(!hasQemu)("fillDisk on files (skipped without qemu-utils)", () => {
  it("a blank volume gets the image; run again, it holds data and is not written", async () => {
    const vol = path.join(dir, "blank.raw");
    await writeFile(vol, Buffer.alloc(8 * MiB));
    const r = await fillDisk(new ExecaRunner(), { image: image(), target: file("blank.raw") });
    expect(r).toEqual({
      outcome: "filled",
      imageBytes: imageBytes.length,
      volumeBytes: 8 * MiB,
      created: false,
    });
    const got = await readFile(vol);
    expect(got.subarray(0, imageBytes.length).equals(imageBytes)).toBe(true);
    expect(got.subarray(imageBytes.length).every((b) => b === 0)).toBe(true);
    const mtime = (await stat(vol)).mtimeMs;
    expect(await fillDisk(new ExecaRunner(), { image: image(), target: file("blank.raw") })).toEqual({
      outcome: "holds-data",
      volumeBytes: 8 * MiB,
    });
    expect((await stat(vol)).mtimeMs).toBe(mtime);
  });

  it("data only in the last MiB: never written", async () => {
    const vol = path.join(dir, "tail.raw");
    const bytes = Buffer.alloc(8 * MiB);
    bytes.write("someone's data", 8 * MiB - 100);
    await writeFile(vol, bytes);
    const r = await fillDisk(new ExecaRunner(), { image: image(), target: file("tail.raw") });
    expect(r.outcome).toBe("holds-data");
    expect((await readFile(vol)).equals(bytes)).toBe(true);
  });

  it("a missing file is made at the size asked, then filled; without a size it is an error", async () => {
    const r = await fillDisk(new ExecaRunner(), {
      image: image(),
      target: file("new.raw"),
      createBytes: 5 * MiB,
    });
    expect(r).toMatchObject({ outcome: "filled", volumeBytes: 5 * MiB, created: true });
    expect(
      (await readFile(path.join(dir, "new.raw"))).subarray(0, imageBytes.length).equals(imageBytes),
    ).toBe(true);
    await expect(fillDisk(new ExecaRunner(), { image: image(), target: file("none.raw") })).rejects.toThrow(
      /does not exist and no size was given/,
    );
  });

  it("an image larger than the volume: refused before any write", async () => {
    const vol = path.join(dir, "small.raw");
    await writeFile(vol, Buffer.alloc(2 * MiB));
    const err = await fillDisk(new ExecaRunner(), { image: image(), target: file("small.raw") }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(FillError);
    expect(String(err.message)).toMatch(/is 2097152 bytes; the image .* needs 3145728/);
    expect((await readFile(vol)).every((b) => b === 0)).toBe(true);
  });

  it("cut off before its first MiB is written, the volume still reads blank and the next run writes it whole", async () => {
    const vol = path.join(dir, "cut.raw");
    await writeFile(vol, Buffer.alloc(4 * MiB));
    const real = new ExecaRunner();
    const converts: string[] = [];
    // The real tools, except that the second qemu-img convert (the first MiB) dies as if killed.
    const cut: CommandRunner = {
      which: (p) => real.which(p),
      async run(f, args, o) {
        if (f === "qemu-img" && args[0] === "convert") {
          converts.push(
            args.find((a) => a.startsWith("driver=raw,") && a.includes("file.driver=file,file.filename=")) ??
              "",
          );
          if (converts.length === 2)
            return { exitCode: 137, stdout: "", stderr: "Killed\n", timedOut: false };
        }
        return real.run(f, args, o);
      },
    };
    await expect(fillDisk(cut, { image: image(), target: file("cut.raw") })).rejects.toThrow(/first MiB/);
    expect(converts[0]).toMatch(/^driver=raw,offset=1048576,/); // everything after the first MiB first
    expect(converts[1]).toMatch(/^driver=raw,size=1048576,/);
    const half = await readFile(vol);
    expect(half.subarray(0, MiB).every((b) => b === 0)).toBe(true);
    expect(half.subarray(MiB, imageBytes.length).equals(imageBytes.subarray(MiB))).toBe(true);
    const again = await fillDisk(real, { image: image(), target: file("cut.raw") });
    expect(again.outcome).toBe("filled");
    expect((await readFile(vol)).subarray(0, imageBytes.length).equals(imageBytes)).toBe(true);
  });
});

describe.skipIf(!hasQemu)("kvmstrap vm fill-disk (skipped without qemu-utils)", () => {
  const cli = (...argv: string[]) => captureCli(() => vmFillDiskCommand(argv));

  it("fills a blank file and says so in --json; a disk that is not the grammar's is a usage error (exit 2)", async () => {
    await writeFile(path.join(dir, "cli.raw"), Buffer.alloc(4 * MiB));
    const disk = JSON.stringify(file("cli.raw"));
    const r = await cli("--image", qcow2, "--disk", disk, "--json");
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ outcome: "filled", imageBytes: imageBytes.length });
    expect(r.stderr).toContain("written");
    const again = await cli("--image", qcow2, "--disk", disk, "--json");
    expect(JSON.parse(again.stdout)).toMatchObject({ outcome: "holds-data" });
    const bad = await cli(
      "--image",
      qcow2,
      "--disk",
      '{"driver":"iscsi","portal":"a,b","target":"t","lun":1}',
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--disk: portal:");
    expect((await cli("--image", qcow2, "--disk", "{not json")).code).toBe(2);
  });

  it("an image not in the cache is an input error naming the cache (exit 2); a volume qemu cannot open exits 1", async () => {
    const r = await cli(
      "--image",
      "no-such-image",
      "--cache",
      dir,
      "--disk",
      JSON.stringify(file("cli.raw")),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown image "no-such-image"');
    const gone = await cli(
      "--image",
      qcow2,
      "--disk",
      JSON.stringify({ driver: "host_device", filename: "/dev/kvmstrap-none" }),
    );
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("opening /dev/kvmstrap-none");
  });
});
