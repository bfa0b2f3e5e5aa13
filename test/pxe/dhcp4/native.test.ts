// The SO_BINDTODEVICE addon as shipped: compiled on first use with cc against the running Node's
// headers, cached, handed to dgram by fd; and its failures are named, not crashes.
import dgram from "node:dgram";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadDeviceSocketAddon, NativeBuildError, nodeIncludeDir } from "../../../src/pxe/dhcp4/native.js";
import { has } from "./netns.js";

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(path.join(os.tmpdir(), "kvms-native-"));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const why = has("cc") ? undefined : "no C compiler (cc)";

describe.skipIf(why)(`interface-bound socket addon${why ? ` (skipped: ${why})` : ""}`, () => {
  // First in the file: the module keeps the addon once loaded.
  it("names the compiler failure instead of crashing", async () => {
    const saved = process.env.CC;
    process.env.CC = "false";
    try {
      await expect(loadDeviceSocketAddon(tmp())).rejects.toThrow(NativeBuildError);
      await expect(loadDeviceSocketAddon(tmp())).rejects.toThrow(
        /could not build the interface-bound DHCP socket/,
      );
    } finally {
      if (saved === undefined) delete process.env.CC;
      else process.env.CC = saved;
    }
  });

  it("builds once into its cache and gives dgram a socket bound to one device", async () => {
    expect(nodeIncludeDir()).toMatch(/include\/node$/);
    const cache = tmp();
    const addon = await loadDeviceSocketAddon(cache);
    expect(readdirSync(cache).filter((f) => f.endsWith(".node"))).toHaveLength(1);
    const fd = addon.openDeviceUdp("lo", 0);
    const s = dgram.createSocket("udp4");
    await new Promise<void>((r) => s.bind({ fd }, () => r()));
    const port = s.address().port;
    const got = new Promise<string>((r) => s.once("message", (m) => r(m.toString())));
    const c = dgram.createSocket("udp4");
    c.send("over lo", port, "127.0.0.1");
    expect(await got).toBe("over lo");
    c.close();
    s.close();
  });

  it("refuses an unknown device and bad arguments with a coded error", async () => {
    const addon = await loadDeviceSocketAddon(tmp());
    expect(() => addon.openDeviceUdp("nosuchdev0", 0)).toThrow(
      expect.objectContaining({
        code: "ENODEV",
        message: expect.stringMatching(/SO_BINDTODEVICE on nosuchdev0/),
      }),
    );
    expect(() => addon.openDeviceUdp("", 0)).toThrow(/bad arguments/);
    expect(() => addon.openDeviceUdp("x".repeat(20), 0)).toThrow(/bad arguments/);
  });

  it("reads an interface's IPv4 address and netmask from the kernel, and names a missing device", async () => {
    const addon = await loadDeviceSocketAddon(tmp());
    expect(addon.interfaceIPv4("lo")).toEqual({ address: "127.0.0.1", netmask: "255.0.0.0" });
    expect(() => addon.interfaceIPv4("nosuchdev0")).toThrow(
      expect.objectContaining({
        code: "ENODEV",
        message: expect.stringMatching(/SIOCGIFADDR on nosuchdev0/),
      }),
    );
    expect(() => addon.interfaceIPv4("")).toThrow(/bad argument/);
  });
});
