// The image cache as a libvirt dir pool on the test-owned libvirtd: `kvmstrap image import` registers
// it (defined and started, the base listed as a volume), a second import refreshes it, and the CLI
// says so only as a note when libvirt cannot be reached.
import { mkdtemp, rm } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { VirshLibvirt } from "../../src/vm/virsh-libvirt.js";
import { startTestLibvirtd, type TestLibvirtd } from "./libvirtd.js";

let daemon: TestLibvirtd | undefined;
let work = "";

beforeAll(async () => {
  daemon = await startTestLibvirtd();
  work = await mkdtemp(path.join("/var/tmp", "kvmstrap-imgpool-"));
  await execa("qemu-img", ["create", "-q", "-f", "qcow2", path.join(work, "a.qcow2"), "64M"]);
  await execa("qemu-img", ["create", "-q", "-f", "qcow2", path.join(work, "b.qcow2"), "64M"]);
});
afterAll(async () => {
  await daemon?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("the image cache as the libvirt pool kvmstrap-images", () => {
  it("is defined by the first import and refreshed by the next, listing each base as a volume", async () => {
    if (!daemon) throw new Error("no test libvirtd");
    const cache = path.join(work, "cache");
    const lv = new VirshLibvirt(daemon.uri);
    expect(
      await main([
        "image",
        "import",
        path.join(work, "a.qcow2"),
        "--name",
        "base-a",
        "--cache",
        cache,
        "--connect",
        daemon.uri,
      ]),
    ).toBe(0);
    expect(await lv.poolExists("kvmstrap-images")).toBe(true);
    expect((await lv.volList("kvmstrap-images")).map((v) => v.name)).toContain("base-a.qcow2");
    expect(
      await main([
        "image",
        "import",
        path.join(work, "b.qcow2"),
        "--name",
        "base-b",
        "--cache",
        cache,
        "--connect",
        daemon.uri,
      ]),
    ).toBe(0);
    // (The cache's index.json shows up as a volume too: libvirt lists every file of a dir pool.)
    expect((await lv.volList("kvmstrap-images")).map((v) => v.name)).toEqual(
      expect.arrayContaining(["base-a.qcow2", "base-b.qcow2"]),
    );
  }, 60_000);
});
