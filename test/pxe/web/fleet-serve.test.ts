// The dashboard's fleet side against the real `kvmstrap serve` fleet routes (src/pxe/http/fleet-routes.ts):
// the shipped BootServer keeping its fleet in an embedded store, nodes discovered through their own
// boot requests (identity in the store, not approved), the page signed in with the server's admin
// token from its state directory. Approve and hold go through the real routes and store; the node's
// change comes back as the server's fleet-node event. (fleet.test.ts covers the rest against a
// contract server; the rollout panel joins here once serve wires the rollout routes.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bootScript,
  buildWeb,
  type Chromium,
  HAVE_CHROMIUM,
  launchChromium,
  type Rig,
  screenshot,
  seen,
  startRig,
} from "./rig.js";

const WAIT = { timeout: 10_000 };
const A = "52:54:03:00:00:01";
const B = "52:54:03:00:00:02";

const title = HAVE_CHROMIUM
  ? "the dashboard's fleet side against kvmstrap serve's fleet routes"
  : "the dashboard's fleet side against serve (SKIPPED: /usr/bin/chromium is missing; scripts/setup-test-host.sh installs it)";

describe.skipIf(!HAVE_CHROMIUM)(title, { timeout: 60_000 }, () => {
  let rig: Rig;
  let browser: Chromium;
  const posts: { url: string; auth: string | undefined; body: string | null }[] = [];

  beforeAll(async () => {
    buildWeb();
    rig = await startRig({ tag: "fleet-serve", named: 1, fleetRack: "r07" });
    browser = await launchChromium();
    browser.page.on("request", (r) => {
      if (r.method() === "POST")
        posts.push({ url: r.url(), auth: r.headers().authorization, body: r.postData() });
    });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await rig?.close();
  });

  it("discovered nodes wait for approval; approve and hold go through serve and come back as its events", async () => {
    const page = browser.page;
    await bootScript(rig.base, A);
    await bootScript(rig.base, B);
    await page.goto(`${rig.base}/ui/`);
    await page.waitForSelector("body[data-ready='1']");
    await page.locator("#login-token").fill("wrong");
    await page.locator("#login-token").press("Enter");
    await expect.poll(() => page.locator("#login-error").textContent(), WAIT).toBe("token refused");
    await page.locator("#login-token").fill(rig.adminToken);
    await page.locator("#login-token").press("Enter");
    await expect.poll(() => page.locator("#fleet").isVisible(), WAIT).toBe(true);
    await expect.poll(() => page.locator("#waiting-count").textContent(), WAIT).toBe("2");
    expect(await seen(page.locator("details.rack[data-rack='r07'] > summary"))).toContain(
      "rack r07: 2 nodes — 2 waiting for approval",
    );

    const item = page.locator("#waiting-list li[data-node]", { hasText: A });
    await item.locator("button[data-act='approve']").click();
    await page.locator("#fleet-dialog-submit").press("Enter");
    await expect.poll(() => page.locator("#waiting-count").textContent(), WAIT).toBe("1");
    expect(posts.at(-1)).toMatchObject({ auth: `Bearer ${rig.adminToken}` });
    expect(posts.at(-1)?.url).toMatch(/\/v1\/fleet\/nodes\/\d+\/approve$/);
    const listed = (await (
      await fetch(`${rig.base}/v1/fleet/nodes`, {
        headers: { authorization: `Bearer ${rig.adminToken}` },
      })
    ).json()) as { nodes: { macs: string[]; approved: boolean }[] };
    expect(listed.nodes.find((n) => n.macs.includes(A))?.approved).toBe(true);

    await page
      .locator("#waiting-list li[data-node]", { hasText: B })
      .locator("button[data-act='hold']")
      .click();
    await page.locator("#fleet-reason").fill("wrong rack label: check the cabling");
    await page.keyboard.press("Enter");
    await expect
      .poll(() => seen(page.locator("#waiting-list")), WAIT)
      .toContain("HELD: wrong rack label: check the cabling");
    await page.locator("#waiting-list li[data-node] button.node").first().click();
    await expect
      .poll(() => seen(page.locator("#fleet-detail-holds")), WAIT)
      .toContain("wrong rack label: check the cabling");
    await screenshot(page, "fleet-serve");
  });
});
