// The dashboard's fleet side in a real browser: Debian's chromium (playwright-core) against the
// contract's fleet routes over a real FleetStore on PGlite (fleet-server.ts; `kvmstrap serve` does
// not serve them yet), the page as `npm run build` bundles it. The operator signs in with the admin
// token (keyboard only), sees the nodes waiting for approval apart, the racks with counts by state,
// the rollout; approves, holds with a reason, pauses the rollout; sees another operator's change and
// the rollout runner's arrive live; and a refused token says so. Screenshots go to
// iso-build/out/test-logs/dashboard/ (and docs/dashboard-fleet.png with KVMSTRAP_DOCS_SHOTS=1).

import { copyFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FleetTestServer, startFleetServer } from "./fleet-server.js";
import { buildWeb, type Chromium, HAVE_CHROMIUM, launchChromium, ROOT, screenshot, seen } from "./rig.js";

const WAIT = { timeout: 5000 };

const title = HAVE_CHROMIUM
  ? "the dashboard's fleet side in chromium"
  : "the dashboard's fleet side in chromium (SKIPPED: /usr/bin/chromium is missing; scripts/setup-test-host.sh installs it)";

/** 3 racks of 8; the 8th of r01 and r02 are not approved (waiting); r02-n02 failed its install. */
const RACKS = ["r01", "r02", "r03"];
const name = (rack: string, k: number) => `${rack}-n${String(k).padStart(2, "0")}`;
const mac = (r: number, k: number) =>
  `52:54:02:00:${String(r + 1).padStart(2, "0")}:${String(k).padStart(2, "0")}`;
const FAIL_LOG = [
  "apply: storage.pools: creating pool vmstore on /dev/sdb",
  "wipefs: error: /dev/sdb: probing initialization failed: Device or resource busy",
  "apply: storage.pools failed; rolled back network.bridges",
].join("\n");

// A loaded CI host (QEMU guests beside): a step may take seconds; these are not timings.
describe.skipIf(!HAVE_CHROMIUM)(title, { timeout: 60_000 }, () => {
  let srv: FleetTestServer;
  let browser: Chromium;
  const ids = new Map<string, number>();
  const urls: string[] = [];
  const pageErrors: string[] = [];
  let rolloutId = 0;

  beforeAll(async () => {
    buildWeb();
    srv = await startFleetServer("ui");
    for (const [r, rack] of RACKS.entries())
      for (let k = 1; k <= 8; k++) {
        const id = await srv.addNode({
          name: name(rack, k),
          rack,
          mac: mac(r, k),
          serial: `SN-${rack}-${k}`,
        });
        ids.set(name(rack, k), id);
        if (!(k === 8 && rack !== "r03")) await srv.store.approve(id, "test");
      }
    const state = (n: string, s: string, body: Record<string, unknown> = {}) =>
      srv.store.append({ type: "node-state", nodeId: ids.get(n) as number, state: s, body });
    for (const n of ["r01-n01", "r03-n01"]) {
      await state(n, "installing", { detail: "apply: kvm.modules" });
      await state(n, "installed", { detail: "installed" });
      await state(n, "verified", { detail: "kvmstrap verify: PASS" });
    }
    await state("r01-n02", "installing", { detail: "apply: network.bridges" });
    await state("r02-n01", "kernel", { detail: "vmlinuz 12 MiB" });
    await state("r02-n02", "installing", { detail: "apply: storage.pools" });
    await state("r02-n02", "failed", { detail: "storage.pools: disk /dev/sdb is busy", log: FAIL_LOG });
    const id = (n: string) => ids.get(n) as number;
    rolloutId = await srv.startRollout("spring", [
      { id: id("r01-n01"), wave: 0, state: "verified" },
      { id: id("r03-n01"), wave: 0, state: "verified" },
      { id: id("r01-n02"), wave: 1, state: "installing" },
      { id: id("r02-n01"), wave: 1, state: "booting" },
      { id: id("r02-n02"), wave: 1, state: "failed" },
      ...["r01-n03", "r02-n03", "r03-n03", "r03-n04"].map((n) => ({
        id: id(n),
        wave: 2,
        state: "waiting" as const,
      })),
    ]);
    browser = await launchChromium();
    browser.page.on("request", (r) => urls.push(r.url()));
    browser.page.on("pageerror", (e) => pageErrors.push(String(e)));
    browser.page.on("console", (m) => {
      if (m.type() === "error") pageErrors.push(m.text());
    });
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    await srv?.close();
  });

  const page = () => browser.page;
  const waitingItems = () => page().locator("#waiting-list li[data-node]");
  const rackHead = (rack: string) => page().locator(`details.rack[data-rack="${rack}"] > summary`);
  const nodeButton = (n: string) => page().locator(`#rack-list button.fleet-node[data-node="${ids.get(n)}"]`);
  const fleetCalls = () => srv.requests.filter((r) => r.url.startsWith("/v1/fleet/"));

  it("without a token: the boot-chain page as before, a login form, and the fleet's reads refused", async () => {
    await page().goto(`${srv.base}/ui/`);
    await page().waitForSelector("body[data-ready='1']");
    expect(await page().locator("#login").isVisible()).toBe(true);
    expect(await page().locator("#fleet").isVisible()).toBe(false);
    expect(await page().locator("#nodes").isVisible()).toBe(true); // the /v1/status table
    expect(fleetCalls()).toHaveLength(0); // nothing asked without a token
    const bare = await page().evaluate(async () => {
      const r = await fetch("/v1/fleet/nodes");
      return { status: r.status, body: await r.json() };
    });
    expect(bare).toEqual({ status: 401, body: { error: "admin token required" } });
  });

  it("a wrong token is refused: the page says 'token refused' and keeps nothing", async () => {
    srv.requests.length = 0;
    await page().locator("#login-token").fill("not-the-admin-token");
    await page().locator("#login-token").press("Enter");
    await expect.poll(() => page().locator("#login-error").textContent(), WAIT).toBe("token refused");
    expect(fleetCalls()[0]).toMatchObject({
      method: "GET",
      url: "/v1/fleet/nodes",
      auth: "Bearer not-the-admin-token",
    });
    expect(await page().evaluate(() => sessionStorage.getItem("kvmstrap.adminToken"))).toBeNull();
    expect(await page().locator("#fleet").isVisible()).toBe(false);
  });

  it("signs in with the keyboard only: Tab to the token, Enter; the fleet shows, the token kept for the tab only", async () => {
    await page().reload();
    await page().waitForSelector("body[data-ready='1']");
    await page().keyboard.press("Tab");
    expect(await page().evaluate(() => document.activeElement?.id)).toBe("login-token");
    await page().keyboard.type(srv.token);
    await page().keyboard.press("Enter");
    await expect.poll(() => page().locator("#fleet").isVisible(), WAIT).toBe(true);
    expect(await page().locator("#login").isVisible()).toBe(false);
    expect(await page().evaluate(() => sessionStorage.getItem("kvmstrap.adminToken"))).toBe(srv.token);
    expect(await page().evaluate(() => localStorage.length)).toBe(0);
    expect(await browser.context.cookies()).toEqual([]);
    // Every fleet read carried the token as a Bearer header, never in a URL.
    const reads = fleetCalls().filter((r) => r.auth === `Bearer ${srv.token}`);
    expect(reads.map((r) => r.url)).toEqual(
      expect.arrayContaining(["/v1/fleet/nodes", "/v1/fleet/rollouts/current"]),
    );
    for (const u of [...urls, page().url()]) expect(u).not.toContain(srv.token);
    for (const u of urls) expect(u.startsWith(`${srv.base}/`)).toBe(true); // no CDN
  });

  it("the nodes waiting for approval stand apart; racks group the nodes with counts by state", async () => {
    expect(await page().locator("#waiting-count").textContent()).toBe("2");
    expect(
      await waitingItems().evaluateAll((lis) => lis.map((li) => li.querySelector("button")?.textContent)),
    ).toEqual(["r01-n08", "r02-n08"]);
    expect(await seen(page().locator("#waiting-list"))).toContain("52:54:02:00:01:08");
    expect(await seen(page().locator("#tab-fleet"))).toBe("Fleet: 24 nodes, 2 waiting for approval");

    expect(
      await page()
        .locator("details.rack")
        .evaluateAll((d) => d.map((x) => (x as HTMLElement).dataset.rack)),
    ).toEqual(RACKS);
    const r01 = await seen(rackHead("r01"));
    expect(r01).toContain("rack r01: 8 nodes");
    expect(r01).toContain("5 discovered");
    expect(r01).toContain("1 installing");
    expect(r01).toContain("1 verified");
    expect(r01).toContain("1 waiting for approval");
    expect(await seen(rackHead("r02"))).toContain("1 failed");
    expect(await seen(rackHead("r03"))).not.toContain("waiting for approval");
    expect(await page().locator("details.rack[data-rack='r03'] .rack-nodes button").count()).toBe(8);
    expect(await seen(nodeButton("r01-n08"))).toContain("waiting for approval");
    expect(await seen(nodeButton("r01-n02"))).toContain("rollout: installing (wave 1)");
    await screenshot(page(), "fleet-racks");
  });

  it("the rollout panel: state, wave, counts, why nothing more is chosen, each node's rollout state", async () => {
    const panel = page().locator("#rollout");
    expect(await seen(page().locator("#rollout-summary"))).toBe(`#${rolloutId} spring: RUNNING, wave 1`);
    expect(await seen(page().locator("#rollout-counts"))).toBe(
      "4 waiting · 2 in flight · 2 verified · 1 failed · 0 held",
    );
    expect(await seen(page().locator("#rollout-why"))).toBe(
      "Nothing more chosen now: 2 in flight, the most allowed (maxInFlight 2)",
    );
    const rows = await page()
      .locator("#rollout-nodes tr")
      .evaluateAll((trs) =>
        trs.map((tr) =>
          [...tr.children]
            .map((td) => td.textContent)
            .join(" ")
            .trim(),
        ),
      );
    expect(rows[0]).toBe("r02-n02 r02 1 FAILED"); // failed first, then in flight
    expect(rows).toContain("r01-n02 r01 1 installing");
    expect(rows).toHaveLength(9);
    expect(await panel.locator("button[data-rollout='pause']").isEnabled()).toBe(true);
    expect(await panel.locator("button[data-rollout='resume']").isEnabled()).toBe(false); // the table refuses it
  });

  it("a node's detail: its timeline, its last failure with a log excerpt", async () => {
    await nodeButton("r02-n02").focus();
    await page().keyboard.press("Enter");
    const detail = page().locator("#fleet-detail");
    await expect
      .poll(() => seen(page().locator("#fleet-detail-title")), WAIT)
      .toBe(`r02-n02 (node ${ids.get("r02-n02")})`);
    const problem = await seen(page().locator("#fleet-detail-problem"));
    expect(problem).toMatch(/^Last failure in installing at \d{4}-\d\d-\d\d /);
    expect(problem).toContain("storage.pools: disk /dev/sdb is busy");
    expect(problem).toContain(
      "wipefs: error: /dev/sdb: probing initialization failed: Device or resource busy",
    );
    const timeline = await seen(page().locator("#fleet-timeline"));
    expect(timeline).toMatch(/discovered\s+first boot seen/);
    expect(timeline).toMatch(/failed\s+storage.pools: disk \/dev\/sdb is busy/);
    expect(await seen(detail)).toContain("failed, wave 1");
    await screenshot(page(), "fleet-failure");
    if (process.env.KVMSTRAP_DOCS_SHOTS === "1") {
      await page().evaluate(() => document.getElementById("fleet-main")?.scrollTo(0, 0));
      copyFileSync(await screenshot(page(), "fleet-docs"), path.join(ROOT, "docs/dashboard-fleet.png"));
    }
    await page().keyboard.press("Escape");
    await expect.poll(() => detail.isVisible(), WAIT).toBe(false);
    expect(await page().evaluate(() => document.activeElement?.getAttribute("data-node"))).toBe(
      String(ids.get("r02-n02")),
    );
  });

  it("approve on a waiting node (keyboard): the request is sent and the node leaves the waiting group", async () => {
    srv.requests.length = 0;
    const id = ids.get("r01-n08") as number;
    await page().locator(`#waiting-list button[data-node="${id}"][data-act="approve"]`).focus();
    await page().keyboard.press("Enter");
    const dialog = page().locator("#fleet-dialog");
    await expect.poll(() => dialog.isVisible(), WAIT).toBe(true);
    expect(await seen(page().locator("#fleet-dialog-text"))).toContain("overwriting its disks");
    await page().keyboard.type("rack r01 cabled and checked");
    await page().keyboard.press("Enter");
    await expect.poll(() => dialog.isVisible(), WAIT).toBe(false);
    expect(fleetCalls().filter((r) => r.method === "POST")).toEqual([
      {
        method: "POST",
        url: `/v1/fleet/nodes/${id}/approve`,
        auth: `Bearer ${srv.token}`,
        body: { reason: "rack r01 cabled and checked" },
      },
    ]);
    await expect.poll(() => page().locator("#waiting-count").textContent(), WAIT).toBe("1");
    expect(await waitingItems().count()).toBe(1);
    expect(await seen(rackHead("r01"))).not.toContain("waiting for approval");
    expect(await seen(nodeButton("r01-n08"))).not.toContain("waiting");
    expect(await srv.store.cleared(id)).toBe(true);
  });

  it("live: another operator's approval (curl) and the rollout runner's progress arrive without a reload", async () => {
    await page().evaluate(() => {
      (window as unknown as { marker: number }).marker = 1;
    });
    const id = ids.get("r02-n08") as number;
    const status = (
      await execa("curl", [
        ...["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"],
        ...["-H", "content-type: application/json", "-H", `Authorization: Bearer ${srv.token}`],
        ...["--data-binary", "{}", `${srv.base}/v1/fleet/nodes/52:54:02:00:02:08/approve`],
      ])
    ).stdout;
    expect(status).toBe("200");
    // The page learns it from the event stream only (it sent nothing itself).
    await expect.poll(() => page().locator("#waiting-count").textContent(), WAIT).toBe("0");
    expect(await seen(page().locator("#waiting-list"))).toContain("none: every discovered node is approved");
    expect(await seen(nodeButton("r02-n08"))).not.toContain("waiting");
    // The rollout runner's write to the store: r02-n01 installs.
    await srv.store.setRolloutNode(
      rolloutId,
      ids.get("r02-n01") as number,
      1,
      "installing",
      "apply: kvm.modules",
    );
    await expect.poll(() => seen(nodeButton("r02-n01")), WAIT).toContain("rollout: installing (wave 1)");
    expect(await seen(page().locator("#rollout-nodes"))).toMatch(
      /r02-n01\s+r02\s+1\s+installing\s+apply: kvm.modules/,
    );
    expect(await page().evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1);
    expect(id).toBeGreaterThan(0);
  });

  it("hold asks for a reason (nothing sent without one) and shows it with the node", async () => {
    srv.requests.length = 0;
    const id = ids.get("r01-n03") as number;
    await nodeButton("r01-n03").click();
    await expect.poll(() => seen(page().locator("#fleet-detail-title")), WAIT).toBe(`r01-n03 (node ${id})`);
    const hold = page().locator("#fleet-detail-actions button[data-act='hold']");
    await hold.focus();
    await page().keyboard.press("Enter");
    const dialog = page().locator("#fleet-dialog");
    await expect.poll(() => dialog.isVisible(), WAIT).toBe(true);
    expect(await seen(page().locator("#fleet-reason-label"))).toBe("Reason (required)");
    await page().keyboard.press("Enter"); // no reason
    expect(await seen(page().locator("#fleet-dialog-error"))).toContain("a reason is required");
    expect(fleetCalls().filter((r) => r.method === "POST")).toHaveLength(0);
    await page().keyboard.type("BMC firmware below 2.1: update first");
    await page().keyboard.press("Enter");
    await expect.poll(() => dialog.isVisible(), WAIT).toBe(false);
    expect(fleetCalls().filter((r) => r.method === "POST")).toEqual([
      {
        method: "POST",
        url: `/v1/fleet/nodes/${id}/hold`,
        auth: `Bearer ${srv.token}`,
        body: { reason: "BMC firmware below 2.1: update first" },
      },
    ]);
    await expect
      .poll(() => seen(page().locator("#fleet-detail-holds")), WAIT)
      .toContain("operator: BMC firmware below 2.1: update first");
    expect(await seen(nodeButton("r01-n03"))).toContain("HELD");
    expect(await seen(rackHead("r01"))).toContain("1 held");
    expect((await srv.store.holds(id)).map((h) => h.reason)).toEqual([
      "BMC firmware below 2.1: update first",
    ]);
    await screenshot(page(), "fleet-hold");
    // Re-arm releases it.
    await page().locator("#fleet-detail-actions button[data-act='rearm']").click();
    await page().locator("#fleet-dialog-submit").press("Enter");
    await expect.poll(() => seen(nodeButton("r01-n03")), WAIT).not.toContain("HELD");
    expect(await srv.store.holds(id)).toEqual([]);
    await page().keyboard.press("Escape");
  });

  it("the rollout's pause button pauses it (the state shown), resume runs it again", async () => {
    srv.requests.length = 0;
    const pause = page().locator("#rollout-actions button[data-rollout='pause']");
    await pause.focus();
    await page().keyboard.press("Enter");
    await expect
      .poll(() => seen(page().locator("#rollout-summary")), WAIT)
      .toBe(`#${rolloutId} spring: PAUSED, wave 1`);
    expect(fleetCalls().filter((r) => r.method === "POST")).toEqual([
      { method: "POST", url: `/v1/fleet/rollouts/${rolloutId}/pause`, auth: `Bearer ${srv.token}`, body: {} },
    ]);
    expect((await srv.store.rollout(rolloutId))?.status).toBe("paused");
    expect(await seen(page().locator("#rollout-why"))).toBe(
      "Nothing more chosen now: paused by the operator",
    );
    expect(await page().locator("#rollout-actions button[data-rollout='pause']").isEnabled()).toBe(false);
    // Focus stays on the panel's buttons (keyboard use): the enabled one.
    expect(await page().evaluate(() => (document.activeElement as HTMLElement | null)?.dataset.rollout)).toBe(
      "resume",
    );
    await screenshot(page(), "fleet-paused");
    await page().keyboard.press("Enter");
    await expect
      .poll(() => seen(page().locator("#rollout-summary")), WAIT)
      .toBe(`#${rolloutId} spring: RUNNING, wave 1`);
    expect((await srv.store.rollout(rolloutId))?.status).toBe("running");
  });

  // The token changes while the detail is open: the action is the first request to meet it. (A
  // loaded CI run once had a late rollout event reload the open detail first, which signed the page
  // out before the click: a rollout change no longer reloads the detail, see fleet-view.ts.)
  it("a 401 on an action (the server's token changed) shows 'token refused' and asks to sign in again", async () => {
    const id = ids.get("r03-n05") as number;
    await nodeButton("r03-n05").click();
    await expect.poll(() => seen(page().locator("#fleet-detail-title")), WAIT).toContain("r03-n05");
    const old = srv.token;
    srv.rotate();
    const from = srv.requests.length;
    await page().locator("#fleet-detail-actions button[data-act='hold']").click();
    await page().locator("#fleet-reason").fill("cable swap");
    await page().keyboard.press("Enter");
    await expect.poll(() => seen(page().locator("#fleet-dialog-error")), WAIT).toContain("token refused");
    // The hold itself met the new token (nothing the page sent in the background met it first).
    expect(srv.requests.slice(from)[0]).toMatchObject({
      method: "POST",
      url: `/v1/fleet/nodes/${id}/hold`,
      auth: `Bearer ${old}`,
    });
    expect(await srv.store.holds(id)).toEqual([]);
    expect(await page().evaluate(() => sessionStorage.getItem("kvmstrap.adminToken"))).toBeNull();
    await screenshot(page(), "fleet-refused");
    await page().keyboard.press("Escape"); // closes the dialog
    expect(await page().locator("#login").isVisible()).toBe(true);
    expect(await seen(page().locator("#login-error"))).toContain("token refused");
    expect(await page().locator("#fleet").isVisible()).toBe(false);
    // Signing in with the new token brings the fleet back.
    await page().locator("#login-token").fill(srv.token);
    await page().locator("#login-token").press("Enter");
    await expect.poll(() => page().locator("#fleet").isVisible(), WAIT).toBe(true);
    expect(pageErrors.filter((e) => !/401|Failed to load resource/.test(e))).toEqual([]);
  });
});
