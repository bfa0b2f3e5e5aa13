// The full-DHCP lease file as the server keeps it: compact JSON, leases by address whatever order
// they were handed out in, back after a restart, and whole after the writer is killed mid-save
// (a real SIGKILL of a process saving in a loop). Saves are coalesced by src/core/coalesce.ts
// (coalesce.test.ts); the server's lease file across a real restart is dhcp-chain.pxe.test.ts.
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { afterAll, describe, expect, it } from "vitest";
import { JsonFileLeaseStore, type Lease, LeaseTable, parseRange } from "../../../src/pxe/dhcp4/leases.js";
import { tempDir } from "./helpers.js";

const tmp = tempDir("leases");
afterAll(() => tmp.remove());
const range = parseRange("10.9.0.1-10.9.3.254") as NonNullable<ReturnType<typeof parseRange>>;
const mac = (i: number) =>
  `52:54:00:00:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;
const lease = (i: number, ip: string): Lease => ({ mac: mac(i), ip, expires: 5000 + i, state: "bound" });

describe("the lease file", () => {
  it("is compact JSON that loads back as it was", async () => {
    const store = new JsonFileLeaseStore(path.join(tmp.dir, "compact.json"));
    const t = new LeaseTable(range);
    for (let i = 0; i < 300; i++) t.set(lease(i, t.pick(mac(i), undefined, 0) as string));
    await store.save(t.all());
    const text = readFileSync(store.file, "utf8");
    expect(text.trimEnd().split("\n")).toHaveLength(1);
    expect(await store.load()).toEqual(t.all());
  });

  it("lists leases by address, also when one went in out of order", () => {
    const t = new LeaseTable(range);
    t.set(lease(1, "10.9.0.7"));
    t.set(lease(2, "10.9.0.9"));
    expect(t.all().map((l) => l.ip)).toEqual(["10.9.0.7", "10.9.0.9"]);
    t.set(lease(3, "10.9.0.2"));
    t.set(lease(4, "10.9.1.1"));
    expect(t.all().map((l) => l.ip)).toEqual(["10.9.0.2", "10.9.0.7", "10.9.0.9", "10.9.1.1"]);
    t.release(mac(1));
    t.set(lease(5, "10.9.0.8"));
    expect(t.all().map((l) => l.ip)).toEqual(["10.9.0.2", "10.9.0.8", "10.9.0.9", "10.9.1.1"]);
  });

  it("is whole after the saving process is killed mid-write", async () => {
    const dir = tmp.dir;
    const file = path.join(dir, "crash.json");
    const bundle = path.join(dir, "leases.mjs");
    await build({
      entryPoints: [fileURLToPath(new URL("../../../src/pxe/dhcp4/leases.ts", import.meta.url))],
      bundle: true,
      platform: "node",
      format: "esm",
      outfile: bundle,
      logLevel: "silent",
    });
    const child = path.join(dir, "saver.mjs");
    // Saves 1,000 leases in a loop, a different expiry each round; says "saving" once it has begun.
    writeFileSync(
      child,
      `import { JsonFileLeaseStore } from ${JSON.stringify(bundle)};
const store = new JsonFileLeaseStore(${JSON.stringify(file)});
for (let round = 0; ; round++) {
  const leases = Array.from({ length: 1000 }, (_, i) => ({ mac: "52:54:00:00:" + (i >> 8).toString(16).padStart(2, "0") + ":" + (i & 255).toString(16).padStart(2, "0"), ip: "10.9." + (i >> 8) + "." + (i & 255), expires: round, state: "bound" }));
  await store.save(leases);
  if (round === 0) process.stdout.write("saving\\n");
}
`,
    );
    const p = spawn(process.execPath, [child], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve, reject) => {
      p.stdout.once("data", () => resolve());
      p.once("exit", (code) => reject(new Error(`saver exited early (${code})`)));
    });
    await new Promise((r) => setTimeout(r, 150));
    p.kill("SIGKILL");
    await new Promise((r) => p.once("exit", r));
    const leases = await new JsonFileLeaseStore(file).load();
    expect(leases).toHaveLength(1000);
    expect(new Set(leases.map((l) => l.expires)).size).toBe(1); // one save's table, not a mix
  }, 30_000);
});
