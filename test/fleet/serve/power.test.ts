// A node's power settings through the real CLI against the real `kvmstrap serve --store` (PGlite in a
// temp dir): `kvmstrap fleet power NODE --libvirt|--ipmi` stores them, reading them back shows every
// password as "(set)", the password never reaches the event stream, a timeline, a rollout's view or
// serve's own output; a bad body is a 400 naming the field, an unknown node exit 2. Then a rollout
// powers its nodes on through what was stored: node a through libvirt's test driver (real virsh,
// test:///default, whose domain "test" is running: the power-on succeeds and a is booting), node
// b through ipmitool against a BMC address where none answers (its failure names the stored BMC).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freeTcp } from "../../helpers/free-port.js";
import { projectRoot } from "../../helpers/shared-hosts.js";
import { makeNetboot, tempDir } from "../../pxe/serve/helpers.js";

const bin = path.join(projectRoot, "bin/kvmstrap.js");
const built = existsSync(path.join(projectRoot, "dist/cli/fleet-power-command.js"));
const virsh = existsSync("/usr/bin/virsh");
const tmp = tempDir("power");
const state = path.join(tmp.dir, "state");
const tokenFile = path.join(state, "admin.token");
const SECRET = `pw-${process.pid}-Xq7`; // 20 characters at most (IPMI 2.0)
const MAC_A = "52:54:00:e1:00:01";
const MAC_B = "52:54:00:e1:00:02";
const MAC_C = "52:54:00:e1:00:03";
let child: ChildProcess | undefined;
let base = "";
let out = "";
let events = "";
const stopEvents = new AbortController();

const fleet = (args: string[], env: Record<string, string> = {}) =>
  execa(process.execPath, [bin, "fleet", ...args, "--server", base, "--token-file", tokenFile], {
    reject: false,
    timeout: 30_000,
    env: { NO_COLOR: "1", IPMI_PASSWORD: "", REDFISH_PASSWORD: "", ...env },
  });
const ok = async (args: string[], env: Record<string, string> = {}) => {
  const r = await fleet(args, env);
  expect(r.exitCode, r.stderr).toBe(0);
  return r.stdout;
};
const admin = (method: string, route: string, body?: string) =>
  fetch(`${base}${route}`, {
    method,
    headers: {
      authorization: `Bearer ${readFileSync(tokenFile, "utf8").trim()}`,
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body } : {}),
  });

/** A node's boot script with its DMI UUID: the store then knows it (beyond DHCP, identified). */
const boot = (mac: string, n: number) =>
  fetch(`${base}/boot/${mac}.ipxe?uuid=4c4c4544-0000-4000-8000-00000000000${n}&serial=PWR-${n}&asset=`);

async function idOf(mac: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const r = await fleet(["nodes", "--json"]);
    const nodes = r.exitCode === 0 ? (JSON.parse(r.stdout).nodes as { id: string; macs: string[] }[]) : [];
    const n = nodes.find((x) => x.macs.includes(mac));
    if (n) return n.id;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`node ${mac} never reached the store`);
}

beforeAll(async () => {
  if (!built) return;
  makeNetboot(path.join(tmp.dir, "netboot"));
  mkdirSync(path.join(tmp.dir, "ipxe"));
  const port = await freeTcp();
  base = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, [
    bin,
    "serve",
    ...["--dhcp", "off", "--listen", "127.0.0.1", "--tftp-port", "0", "--http-port", String(port)],
    ...["--netboot", path.join(tmp.dir, "netboot"), "--ipxe-dir", path.join(tmp.dir, "ipxe")],
    ...["--state-dir", state, "--store", path.join(tmp.dir, "db"), "--rack", "r1", "--json"],
  ]);
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const until = Date.now() + 240_000; // PGlite's first open took 53 s under load 10
  while (!out.includes('"listening"')) {
    if (Date.now() > until || child.exitCode !== null) throw new Error(`serve did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // Everything the server publishes while the test runs (JSON lines).
  void fetch(`${base}/v1/events`, { signal: stopEvents.signal })
    .then(async (res) => {
      const dec = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>)
        events += dec.decode(chunk, { stream: true });
    })
    .catch(() => {});
}, 300_000);
afterAll(() => {
  stopEvents.abort();
  if (child && child.exitCode === null) child.kill("SIGKILL");
  tmp.remove();
});

describe.skipIf(!built)(
  `fleet power: a node's power settings through the CLI and the routes${built ? "" : " (skipped: run npm run build)"}`,
  () => {
    let a = "";
    let b = "";

    it("sets libvirt and IPMI settings with the CLI and reads them back redacted", async () => {
      for (const [mac, n] of [
        [MAC_A, 1],
        [MAC_B, 2],
        [MAC_C, 3],
      ] as const)
        expect((await boot(mac, n)).status).toBe(200);
      a = await idOf(MAC_A);
      b = await idOf(MAC_B);
      await idOf(MAC_C);

      const setA = await ok(["power", a, "--libvirt", "test", "--uri", "test:///default"]);
      expect(setA).toBe(`node ${a} now powers on through libvirt domain test at test:///default`);
      const setB = await ok(["power", MAC_B, "--ipmi", "127.0.0.1", "--port", "9", "--user", "admin"], {
        IPMI_PASSWORD: SECRET,
      });
      expect(setB).toContain("ipmi 127.0.0.1:9 (lanplus) as admin, password (set)");
      expect(setB).not.toContain(SECRET);

      expect(JSON.parse(await ok(["power", a, "--json"]))).toEqual({
        driver: "libvirt",
        domain: "test",
        uri: "test:///default",
      });
      const shownB = await ok(["power", b, "--json"]);
      expect(JSON.parse(shownB)).toEqual({
        driver: "ipmi",
        host: "127.0.0.1",
        port: 9,
        user: "admin",
        password: "(set)",
      });
      const res = await admin("GET", `/v1/fleet/nodes/${b}/power`);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(JSON.parse(text).password).toBe("(set)");
      expect(text).not.toContain(SECRET);
    });

    it("refuses bad input: the field named (400), the password never an option, an unknown node exit 2", async () => {
      const bad = await admin("PUT", `/v1/fleet/nodes/${a}/power`, '{"driver":"libvirt","domain":"a/b"}');
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: string }).error).toMatch(/^bad power settings: domain: /);
      const extra = await admin(
        "PUT",
        `/v1/fleet/nodes/${a}/power`,
        `{"driver":"ipmi","host":"10.0.0.1","user":"u","password":"${SECRET}","pasword":"x"}`,
      );
      expect(extra.status).toBe(400);
      const why = ((await extra.json()) as { error: string }).error;
      expect(why).toMatch(/pasword: unknown key/);
      expect(why).not.toContain(SECRET);
      expect((await admin("PUT", `/v1/fleet/nodes/${a}/power`, "[]")).status).toBe(400);
      expect((await fetch(`${base}/v1/fleet/nodes/${a}/power`)).status).toBe(401);
      // The refused bodies changed nothing.
      expect(JSON.parse(await ok(["power", a, "--json"])).domain).toBe("test");

      const unknown = await fleet(["power", "99999", "--libvirt", "vm1"]);
      expect(unknown.exitCode).toBe(2);
      expect(unknown.stderr).toMatch(/no such node: 99999/);
      const none = await fleet(["power", MAC_C]);
      expect(none.exitCode).toBe(2);
      expect(none.stderr).toMatch(/has no power settings/);
      const noPw = await fleet(["power", a, "--ipmi", "10.0.0.1", "--user", "admin"]);
      expect(noPw.exitCode).toBe(2);
      expect(noPw.stderr.split("\n")[0]).toBe(
        "kvmstrap: --ipmi needs the BMC password in IPMI_PASSWORD (never an option: ps shows options)",
      );
      const badFlag = await fleet(["power", a, "--libvirt", "42"]);
      expect(badFlag.exitCode).toBe(2);
      expect(badFlag.stderr).toMatch(/--libvirt: all digits/);
      const two = await fleet(["power", a, "--libvirt", "vm", "--redfish", "https://bmc"]);
      expect(two.exitCode).toBe(2);
      expect(two.stderr).toMatch(/one power driver per node/);
      // Redfish the same way, its password from REDFISH_PASSWORD (node c had none until now).
      const rf = await ok(
        [
          ...["power", MAC_C, "--redfish", "https://bmc-c.example:8443", "--user", "root"],
          ...["--system", "/redfish/v1/Systems/1", "--insecure", "--json"],
        ],
        { REDFISH_PASSWORD: SECRET },
      );
      expect(JSON.parse(rf)).toEqual({
        driver: "redfish",
        url: "https://bmc-c.example:8443",
        user: "root",
        password: "(set)",
        system: "/redfish/v1/Systems/1",
        insecure: true,
      });
      expect(await ok(["power", MAC_C])).toContain("certificate not verified");
      const help = await fleet(["power", "--help"]);
      expect(help.stdout).toMatch(/IPMI_PASSWORD/);
    });

    it.skipIf(!virsh)(
      "a rollout powers its nodes on through the stored settings (libvirt succeeds, the IPMI BMC fails by name)",
      async () => {
        await ok(["approve", a]);
        await ok(["approve", b]);
        const started = await ok([
          ...["rollout", "start", "--canary", "2", "--wave", "2", "--max-per-rack", "2"],
          ...["--power-interval", "0", "--node", a, "--node", b, "--json"],
        ]);
        const id = String(JSON.parse(started).id);
        type View = { state: string; nodes: { id: unknown; state: string; reason: string | null }[] };
        let view: View = { state: "", nodes: [] };
        const nodeOf = (n: string) => view.nodes.find((x) => String(x.id) === n);
        // ipmitool (or its absence) fails b; a's power-on through virsh succeeds: a is "booting"
        // (powered on, in flight until its boot is seen).
        const settled = () => nodeOf(b)?.state === "failed" && nodeOf(a)?.state === "booting";
        for (let i = 0; i < 300 && !settled(); i++) {
          await new Promise((r) => setTimeout(r, 200));
          view = JSON.parse(await ok(["rollout", "status", id, "--json"]));
        }
        expect(nodeOf(b)?.state).toBe("failed");
        expect(nodeOf(b)?.reason).toMatch(/^power on: ipmi 127\.0\.0\.1: /);
        expect(nodeOf(a)).toMatchObject({ state: "booting" });
        expect(nodeOf(a)?.reason ?? "").not.toMatch(/fail|no power settings/);
        const rollout = await ok(["rollout", "status", id, "--json"]);
        expect(rollout).not.toContain(SECRET);
        await ok(["rollout", "abort", id]);
      },
      120_000,
    );

    it("the password is in no event, timeline or line of serve's output", async () => {
      const shown = (await ok(["show", b, "--json"])) + (await ok(["show", a, "--json"]));
      expect(shown).not.toContain(SECRET);
      expect(events.length).toBeGreaterThan(0);
      expect(events).toContain(MAC_B);
      expect(events).not.toContain(SECRET);
      expect(out).toContain('"listening"');
      expect(out).not.toContain(SECRET);
    });
  },
);
