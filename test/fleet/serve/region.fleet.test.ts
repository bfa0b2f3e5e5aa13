// The region view: two `kvmstrap serve` processes (two racks, --rack a and --rack b) sharing one
// test-owned PostgreSQL 15; a node discovered by each is listed by both in GET /v1/fleet/nodes, and an
// approval given through one is seen through the other. Then the dashboard of rack a's serve in
// Debian's chromium (playwright-core, the dashboard tests' rig): both racks' nodes grouped by rack
// with counts, and an approval through rack b's serve (the real CLI) and a node discovered on rack b
// arriving live, without a reload (the store's LISTEN/NOTIFY, then serve's fleet-node events).
// Fleet tier (a real PostgreSQL). Screenshot: iso-build/out/test-logs/dashboard/region.png (and
// docs/dashboard-region.png with KVMSTRAP_DOCS_SHOTS=1).
import { type ChildProcess, spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freeTcp } from "../../helpers/free-port.js";
import { projectRoot } from "../../helpers/shared-hosts.js";
import { makeNetboot, tempDir } from "../../pxe/serve/helpers.js";
import { type Chromium, HAVE_CHROMIUM, launchChromium, screenshot, seen } from "../../pxe/web/rig.js";
import { postgresMissing, TestPostgres } from "../store/postgres-server.js";

const bin = path.join(projectRoot, "bin/kvmstrap.js");
const built =
  existsSync(path.join(projectRoot, "dist/app/fleet-serve.js")) &&
  existsSync(path.join(projectRoot, "dist/web/index.html"));
const missing = postgresMissing();
const tmp = tempDir("region");
let pg: TestPostgres | undefined;
const racks: {
  name: string;
  child: ChildProcess;
  base: string;
  token: string;
  tokenFile: string;
  out: string;
}[] = [];

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
  const tokenFile = path.join(state, "admin.token");
  const r = { name, child, base: `http://127.0.0.1:${port}`, token: "", tokenFile, out: "" };
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
  r.token = readFileSync(tokenFile, "utf8").trim();
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

/** A node's first request to a rack's serve: its boot script, with its DMI identity (discovery). */
const boot = (r: (typeof racks)[number], mac: string, uuid: string) =>
  fetch(`${r.base}/boot/${mac}.ipxe?uuid=${uuid}&serial=S-${mac.slice(-2)}&asset=`).then((x) => x.status);

const skipped = `${missing ? ` (skipped: ${missing})` : ""}${built ? "" : " (skipped: npm run build)"}`;

describe.skipIf(!built || missing !== undefined)(`two racks' serve sharing one PostgreSQL${skipped}`, () => {
  it("each rack's nodes are listed by both (the region view); an approval is seen by both", async () => {
    const [a, b] = racks as [(typeof racks)[number], (typeof racks)[number]];
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
});

const WAIT = { timeout: 15_000 };
const noBrowser = HAVE_CHROMIUM
  ? ""
  : " (SKIPPED: /usr/bin/chromium is missing; scripts/setup-test-host.sh installs it)";

describe.skipIf(!built || missing !== undefined || !HAVE_CHROMIUM)(
  `the dashboard of rack a's serve in chromium, following the region${skipped}${noBrowser}`,
  () => {
    let browser: Chromium | undefined;
    beforeAll(async () => {
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
    });

    it("lists both racks' nodes by rack with counts; rack b's approval and discovery arrive live", async () => {
      const [a, b] = racks as [(typeof racks)[number], (typeof racks)[number]];
      const page = (browser as Chromium).page;
      const A1 = "52:54:00:aa:0a:11";
      const A2 = "52:54:00:aa:0a:12";
      const B1 = "52:54:00:bb:0b:21";
      const B2 = "52:54:00:bb:0b:22";
      expect(await boot(a, A1, "6b0e5a4c-2222-4a2b-9c3d-00000000aa11")).toBe(200);
      expect(await boot(a, A2, "6b0e5a4c-2222-4a2b-9c3d-00000000aa12")).toBe(200);
      expect(await boot(b, B1, "6b0e5a4c-2222-4a2b-9c3d-00000000bb21")).toBe(200);
      const before = await list(a);
      const inRack = (rack: string) => before.filter((n) => n.rack === rack);
      const waiting = (rack: string) => inRack(rack).filter((n) => !n.approved).length;

      const listings: string[] = [];
      page.on("request", (r) => {
        if (r.method() === "GET" && new URL(r.url()).pathname === "/v1/fleet/nodes") listings.push(r.url());
      });
      await page.goto(`${a.base}/ui/`);
      await page.waitForSelector("body[data-ready='1']");
      // Signed in with the keyboard: the token field, typed, Enter.
      await page.locator("#login-token").focus();
      await page.keyboard.type(a.token);
      await page.keyboard.press("Enter");
      await expect.poll(() => page.locator("#fleet").isVisible(), WAIT).toBe(true);
      await page.evaluate(() => {
        (globalThis as unknown as { regionMark: string }).regionMark = "the page as first loaded";
      });

      expect(await seen(page.locator("#server"))).toMatch(
        /^kvmstrap serve .* at http:\/\/127\.0\.0\.1:\d+, rack a$/,
      );
      // Both racks, each with its own nodes and counts (the store's rack, not the serve's).
      const summary = (rack: string) => seen(page.locator(`details.rack[data-rack='${rack}'] > summary`));
      const rackA = await summary("a");
      expect(rackA).toContain(`rack a: ${inRack("a").length} nodes`);
      expect(rackA).toContain(`${waiting("a")} waiting for approval`);
      expect(await summary("b")).toContain(`rack b: ${inRack("b").length} nodes`);
      const button = (rack: string, mac: string) =>
        page.locator(`details.rack[data-rack='${rack}'] button.fleet-node`, { hasText: mac });
      for (const [rack, mac] of [
        ["a", A1],
        ["a", A2],
        ["b", B1],
      ] as const)
        expect(await button(rack, mac).count(), `${mac} in rack ${rack}`).toBe(1);
      expect(await page.locator("#waiting-count").textContent()).toBe(
        String(before.filter((n) => !n.approved).length),
      );
      await expect.poll(() => seen(button("b", B1)), WAIT).toContain("waiting for approval");

      // Approved through rack b's serve with the real CLI: rack a's page shows it without a reload.
      const nodeB1 = before.find((n) => n.macs.includes(B1));
      const approved = await execa(
        process.execPath,
        [bin, "fleet", "approve", String(nodeB1?.id), "--server", b.base, "--token-file", b.tokenFile],
        { reject: false },
      );
      expect(approved.exitCode, approved.stderr).toBe(0);
      await expect.poll(() => seen(button("b", B1)), WAIT).not.toContain("waiting for approval");
      await expect.poll(() => seen(page.locator("#waiting-list")), WAIT).not.toContain(B1);
      const stillWaiting = waiting("b") - 1;
      if (stillWaiting > 0) expect(await summary("b")).toContain(`${stillWaiting} waiting for approval`);
      else expect(await summary("b")).not.toContain("waiting for approval");

      // A node discovered on rack b now: listed in rack b on rack a's page, waiting for approval.
      expect(await boot(b, B2, "6b0e5a4c-2222-4a2b-9c3d-00000000bb22")).toBe(200);
      await expect.poll(() => button("b", B2).count(), WAIT).toBe(1);
      await expect.poll(() => seen(button("b", B2)), WAIT).toContain("waiting for approval");
      await expect.poll(() => summary("b"), WAIT).toContain(`rack b: ${inRack("b").length + 1} nodes`);
      await expect.poll(() => seen(page.locator("#waiting-list")), WAIT).toContain(B2);

      // Live: the same page (no reload), the list fetched once, at sign-in.
      expect(await page.evaluate(() => (globalThis as unknown as { regionMark?: string }).regionMark)).toBe(
        "the page as first loaded",
      );
      expect(listings).toHaveLength(1);
      await screenshot(page, "region");
      if (process.env.KVMSTRAP_DOCS_SHOTS === "1")
        copyFileSync(
          await screenshot(page, "region-docs"),
          path.join(projectRoot, "docs/dashboard-region.png"),
        );
    });
  },
);
