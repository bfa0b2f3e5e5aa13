// The web dashboard of `kvmstrap serve` in a real browser: Debian's chromium (playwright-core)
// against the shipped BootServer on loopback, the page as `npm run build` bundles it. Nodes move
// through the server's own HTTP inputs (boot scripts, netboot downloads, the event intake with each
// node's token, also sent by the real curl); the page must show them as they come, make a stalled or
// failed node stand out with its hint, ask for the admin token before a re-arm, and pick up again
// after the server restarts. Screenshots go to iso-build/out/test-logs/dashboard/.
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TIMEOUTS } from "../../../src/pxe/node-state.js";
import {
  bootScript,
  buildWeb,
  type Chromium,
  download,
  HAVE_CHROMIUM,
  launchChromium,
  lifecycle,
  macOf,
  postEvent,
  type Rig,
  screenshot,
  seen,
  startRig,
  walkNode,
} from "./rig.js";

/** How long the page may take to show something (a loaded CI host: generous, it is not a figure). */
const WAIT = { timeout: 5000 };

const title = HAVE_CHROMIUM
  ? "the web dashboard in chromium"
  : "the web dashboard in chromium (SKIPPED: /usr/bin/chromium is missing; scripts/setup-test-host.sh installs it)";

describe.skipIf(!HAVE_CHROMIUM)(title, () => {
  let rig: Rig;
  let browser: Chromium;
  const requests: string[] = [];
  const pageErrors: string[] = [];
  const tokens = new Map<string, string>();

  beforeAll(async () => {
    buildWeb();
    rig = await startRig({ tag: "ui", named: 100, timeouts: { rootfs: 2 } });
    browser = await launchChromium();
    browser.page.on("request", (r) => requests.push(r.url()));
    browser.page.on("pageerror", (e) => pageErrors.push(String(e)));
    browser.page.on("console", (m) => {
      if (m.type() === "error") pageErrors.push(m.text());
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await rig?.close();
  });

  const row = (mac: string) => browser.page.locator(`#rows tr[data-mac="${mac}"]`);
  const cell = (mac: string, cls: string) => row(mac).locator(`td.${cls}`);

  it("serves the page from the build under /ui/ and shows every node, with counts by state", async () => {
    const head = (await execa("curl", ["-sS", "-o", "/dev/null", "-D", "-", `${rig.base}/ui/`])).stdout;
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    expect(head).toMatch(/content-type: text\/html/i);
    expect(head).toMatch(/content-security-policy: default-src 'none'; script-src 'self'/i);
    const redirect = (
      await execa("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", `${rig.base}/ui`])
    ).stdout;
    expect(redirect).toBe(`301 ${rig.base}/ui/`);

    tokens.set(macOf(0), await walkNode(rig.base, 0)); // installed
    tokens.set(macOf(1), await bootScript(rig.base, macOf(1))); // script
    tokens.set(macOf(99), await walkNode(rig.base, 99)); // every 100th fails
    await browser.page.goto(`${rig.base}/ui/`);
    await browser.page.waitForSelector("body[data-ready='1']");
    await expect.poll(() => browser.page.locator("#rows tr").count(), WAIT).toBe(3);
    expect(await cell(macOf(0), "name").textContent()).toBe("r01-n01");
    expect(await cell(macOf(0), "state").textContent()).toBe("installed");
    expect(await cell(macOf(0), "boot").textContent()).toBe("local disk");
    expect(await cell(macOf(0), "num").last().textContent()).toMatch(/KiB$/); // kernel and initrd served
    expect(await cell(macOf(1), "state").textContent()).toBe("script");
    expect(await cell(macOf(99), "state").textContent()).toBe("FAILED in installing");
    const counts = await seen(browser.page.locator("#counts"));
    expect(counts).toContain("3 nodes");
    expect(counts).toContain("1 script");
    expect(counts).toContain("1 installed");
    expect(counts).toContain("1 failed");
    expect(counts).toContain("1 need attention");
    // The failed node stands out in words: its row's mark and the attention list with its reason.
    expect(await cell(macOf(99), "mark").textContent()).toBe("!");
    const attention = await seen(browser.page.locator("#attention"));
    expect(attention).toContain(`${macOf(99)} r03-n20`);
    expect(attention).toContain("FAILED in installing");
    expect(attention).toContain("disk /dev/sdb is busy");
    // Everything came from the server itself: no CDN, no other origin.
    expect(requests.length).toBeGreaterThanOrEqual(4);
    for (const u of requests) expect(u.startsWith(`${rig.base}/`)).toBe(true);
    await screenshot(browser.page, "nodes");
  });

  it("an event posted to the intake (curl) shows on the page without a reload, and in the node's timeline", async () => {
    await browser.page.evaluate(() => {
      (window as unknown as { marker: number }).marker = 1;
    });
    const mac = macOf(1);
    const body = JSON.stringify(lifecycle("appliance-up", "live system up on 52:54:01 (test)"));
    const status = (
      await execa("curl", [
        ...["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"],
        ...["-H", "content-type: application/json", "-H", `Authorization: Bearer ${tokens.get(mac)}`],
        ...["--data-binary", body, `${rig.base}/v1/nodes/${mac}/events`],
      ])
    ).stdout;
    expect(status).toBe("204");
    await expect.poll(() => cell(mac, "state").textContent(), { timeout: 5000 }).toBe("appliance-up");
    expect(await cell(mac, "last").textContent()).toBe("appliance-up: live system up on 52:54:01 (test)");
    expect(await browser.page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1);

    // Keyboard only: / to filter, Enter back to the table, Enter for the timeline, Esc to close it.
    await browser.page.keyboard.press("/");
    await browser.page.keyboard.type("r01-n02");
    await browser.page.keyboard.press("Enter");
    expect(await browser.page.locator("#rows tr:not([hidden])").count()).toBe(1);
    await browser.page.keyboard.press("Enter");
    const detail = browser.page.locator("#detail");
    await expect.poll(() => detail.isVisible(), WAIT).toBe(true);
    expect(await browser.page.locator("#detail-title").textContent()).toBe(`${mac} (r01-n02)`);
    const timeline = await seen(browser.page.locator("#timeline"));
    expect(timeline).toMatch(/discovered -> script/);
    expect(timeline).toMatch(/script -> appliance-up\s+[\d.]+ s\s+live system up/);
    await screenshot(browser.page, "timeline");
    await browser.page.keyboard.press("Escape");
    await expect.poll(() => detail.isVisible(), WAIT).toBe(false);
    await browser.page.keyboard.press("/");
    await browser.page.keyboard.press("Escape"); // clears the filter
    expect(await browser.page.locator("#rows tr:not([hidden])").count()).toBe(3);
  });

  it("a stalled node stands out with the state it stopped in and where to look", async () => {
    const mac = macOf(2);
    await bootScript(rig.base, mac);
    await download(rig.base, mac, "filesystem.squashfs"); // rootfs; its timeout here is 2 s
    await expect.poll(() => cell(mac, "state").textContent(), { timeout: 10_000 }).toBe("STALLED in rootfs");
    const hint = TIMEOUTS.rootfs?.hint as string;
    expect(await cell(mac, "mark").textContent()).toBe("!");
    expect(await row(mac).getAttribute("class")).toContain("problem");
    const attention = browser.page.locator("#attention");
    expect(await seen(attention)).toContain(hint);
    // Its button in the list opens its timeline, where the hint is the first thing said.
    await attention.locator(`button[data-mac="${mac}"]`).click();
    const problem = await seen(browser.page.locator("#detail-problem"));
    expect(problem).toContain("STALLED in rootfs");
    expect(problem).toContain(hint);
    expect(await seen(browser.page.locator("#timeline"))).toMatch(/rootfs -> stalled/);
    await screenshot(browser.page, "stalled");
    await browser.page.keyboard.press("Escape");
  });

  it("re-arm asks for the admin token: refused without it or with a wrong one, done with it", async () => {
    const page = browser.page;
    const mac = macOf(0);
    // The route itself, from the page's origin without the token.
    const bare = await page.evaluate(
      async (url) => (await fetch(url, { method: "POST" })).status,
      `/v1/nodes/${mac}/rearm`,
    );
    expect(bare).toBe(401);

    const sent: { url: string; auth: string | undefined }[] = [];
    page.on("request", (r) => {
      if (r.url().includes("/rearm")) sent.push({ url: r.url(), auth: r.headers().authorization });
    });
    await page.locator(`#rows tr[data-mac="${mac}"]`).click();
    await page.keyboard.press("r");
    const dialog = page.locator("#action-dialog");
    await expect.poll(() => dialog.isVisible(), WAIT).toBe(true);
    expect(await page.locator("#action-text").textContent()).toContain("next network boot installs again");
    // No token typed: nothing is sent.
    await page.locator("#action-submit").click();
    expect(sent).toHaveLength(0);
    // A wrong one: the server refuses it and the page says so.
    await page.locator("#token").fill("not-the-admin-token");
    await page.locator("#action-submit").click();
    await expect.poll(() => page.locator("#action-error").textContent(), WAIT).toContain("refused");
    expect(sent).toEqual([
      { url: `${rig.base}/v1/nodes/${encodeURIComponent(mac)}/rearm`, auth: "Bearer not-the-admin-token" },
    ]);
    expect(await page.evaluate(() => sessionStorage.getItem("kvmstrap.adminToken"))).toBeNull();
    // The right one.
    await page.locator("#token").fill(rig.adminToken);
    await page.keyboard.press("Enter");
    await expect.poll(() => dialog.isVisible(), WAIT).toBe(false);
    expect(await page.locator("#status-line").textContent()).toBe(`Re-arm: ${mac} is now discovered`);
    await expect.poll(() => cell(mac, "boot").textContent(), WAIT).toBe("network");
    expect(await cell(mac, "state").textContent()).toBe("discovered");
    expect(rig.server.table.get(mac)?.installed).toBe(false);
    // Kept for this tab only, and never in a URL, a cookie or local storage.
    expect(await page.evaluate(() => sessionStorage.getItem("kvmstrap.adminToken"))).toBe(rig.adminToken);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    expect(await browser.context.cookies()).toEqual([]);
    for (const u of [...requests, page.url()]) expect(u).not.toContain(rig.adminToken);
  });

  it("picks up again after the server restarts: reconnects and reloads the status", async () => {
    const page = browser.page;
    await rig.restart();
    // The new server's table: only what it restored from its state directory (nothing is installed
    // now that node 0 was re-armed), then whatever it sees next.
    const mac = macOf(5);
    await expect.poll(() => page.locator("#link").textContent(), { timeout: 15_000 }).toBe("live");
    const token = await bootScript(rig.base, mac);
    expect(await postEvent(rig.base, mac, token, lifecycle("appliance-up"))).toBe(204);
    await expect.poll(() => cell(mac, "state").textContent(), { timeout: 5000 }).toBe("appliance-up");
    await expect.poll(() => page.locator("#rows tr").count(), WAIT).toBe(rig.server.table.size);
    expect(pageErrors.filter((e) => !/ERR_CONNECTION_REFUSED|Failed to load resource/.test(e))).toEqual([]);
  });
});
