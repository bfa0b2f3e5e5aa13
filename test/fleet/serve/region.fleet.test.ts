// The region view: two `kvmstrap serve` processes (two racks, --rack a and --rack b) sharing one
// test-owned PostgreSQL 15; a node discovered by each is listed by both in GET /v1/fleet/nodes, and an
// approval given through one is seen through the other. Fleet tier (a real PostgreSQL).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freeTcp } from "../../helpers/free-port.js";
import { projectRoot } from "../../helpers/shared-hosts.js";
import { makeNetboot, tempDir } from "../../pxe/serve/helpers.js";
import { postgresMissing, TestPostgres } from "../store/postgres-server.js";

const bin = path.join(projectRoot, "bin/kvmstrap.js");
const built = existsSync(path.join(projectRoot, "dist/app/fleet-serve.js"));
const missing = postgresMissing();
const tmp = tempDir("region");
let pg: TestPostgres | undefined;
const racks: { name: string; child: ChildProcess; base: string; token: string; out: string }[] = [];

async function serve(name: string, url: string) {
  const port = await freeTcp();
  const state = path.join(tmp.dir, `state-${name}`);
  const fleet = path.join(tmp.dir, "fleet");
  const child = spawn(process.execPath, [
    bin,
    "serve",
    ...["--dhcp", "off", "--listen", "127.0.0.1", "--tftp-port", "0", "--http-port", String(port)],
    ...["--netboot", path.join(tmp.dir, "netboot"), "--ipxe-dir", path.join(tmp.dir, "ipxe")],
    ...["--state-dir", state, "--store", url, "--fleet", fleet, "--rack", name, "--json"],
  ]);
  const r = { name, child, base: `http://127.0.0.1:${port}`, token: "", out: "" };
  child.stdout?.on("data", (d: Buffer) => {
    r.out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    r.out += d.toString();
  });
  const until = Date.now() + 120_000;
  while (!r.out.includes('"listening"')) {
    if (Date.now() > until || child.exitCode !== null) throw new Error(`serve --rack ${name}: ${r.out}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  r.token = readFileSync(path.join(state, "admin.token"), "utf8").trim();
  racks.push(r);
  return r;
}

const list = async (r: (typeof racks)[number]) => {
  const res = await fetch(`${r.base}/v1/fleet/nodes`, { headers: { authorization: `Bearer ${r.token}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { nodes: { id: string; rack: string; macs: string[]; approved: boolean }[] })
    .nodes;
};

beforeAll(async () => {
  if (!built || missing) return;
  makeNetboot(path.join(tmp.dir, "netboot"));
  mkdirSync(path.join(tmp.dir, "ipxe"));
  mkdirSync(path.join(tmp.dir, "fleet"));
  writeFileSync(path.join(tmp.dir, "fleet", "site.yaml"), "version: 1\n");
  pg = await TestPostgres.start("region");
  await serve("a", pg.url());
  await serve("b", pg.url());
});
afterAll(async () => {
  for (const r of racks) if (r.child.exitCode === null) r.child.kill("SIGKILL");
  await pg?.stop();
  tmp.remove();
});

describe.skipIf(!built || missing !== undefined)(
  `two racks' serve sharing one PostgreSQL${missing ? ` (skipped: ${missing})` : ""}${built ? "" : " (skipped: npm run build)"}`,
  () => {
    it("each rack's nodes are listed by both (the region view); an approval is seen by both", async () => {
      const [a, b] = racks as [(typeof racks)[number], (typeof racks)[number]];
      const boot = (r: typeof a, mac: string, uuid: string) =>
        fetch(`${r.base}/boot/${mac}.ipxe?uuid=${uuid}&serial=S-${mac.slice(-2)}&asset=`).then(
          (x) => x.status,
        );
      expect(await boot(a, "52:54:00:aa:0a:01", "6b0e5a4c-1111-4a2b-9c3d-00000000aa01")).toBe(200);
      expect(await boot(b, "52:54:00:bb:0b:02", "6b0e5a4c-1111-4a2b-9c3d-00000000bb02")).toBe(200);
      for (const r of [a, b]) {
        const nodes = await list(r);
        expect(nodes.map((n) => n.rack).sort()).toEqual(["a", "b"]);
      }
      const nodeB = (await list(a)).find((n) => n.rack === "b");
      const res = await fetch(`${a.base}/v1/fleet/nodes/${nodeB?.id}/approve`, {
        method: "POST",
        headers: { authorization: `Bearer ${a.token}`, "content-type": "application/json" },
        body: "{}",
      });
      expect(res.status).toBe(200);
      expect((await list(b)).find((n) => n.rack === "b")?.approved).toBe(true);
    });
  },
);
