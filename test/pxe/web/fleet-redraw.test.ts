// What an operator clicks on the fleet page stays put while the node it belongs to updates many
// times a second: the shipped BootServer with an embedded store and discovery on, a discovered node
// polling its answer as its agent does (each 409 is a fleet-node event on the page's stream), and
// the page showing that node's detail. The detail's action buttons, the waiting list's buttons and
// the node's rack button must be the same DOM elements after dozens of redraws (a marker set on each
// survives), keep the keyboard focus, and take every click: the dialog opens each time, and the
// approve made under the flood is done on the server. (Before, the waiting list was rebuilt on each
// update and the detail reloaded on every rollout change: a click could meet a detached element, or
// a reload a changed token before the action did.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bootScript,
  buildWeb,
  type Chromium,
  HAVE_CHROMIUM,
  launchChromium,
  type Rig,
  screenshot,
  startRig,
} from "./rig.js";

const WAIT = { timeout: 10_000 };
const MAC = "52:54:03:00:09:01";

const title = HAVE_CHROMIUM
  ? "the fleet page keeps what the operator clicks while its node updates"
  : "the fleet page keeps what the operator clicks (SKIPPED: /usr/bin/chromium is missing; scripts/setup-test-host.sh installs it)";

describe.skipIf(!HAVE_CHROMIUM)(title, { timeout: 90_000 }, () => {
  let rig: Rig;
  let browser: Chromium;
  let token = "";
  let polls = 0;
  let flooding = false;
  let flood: Promise<void> = Promise.resolve();
  const detailReads: string[] = [];

  /** The node's agent waiting for approval, asking for its answer as fast as the server answers. */
  const startFlood = () => {
    flooding = true;
    flood = (async () => {
      while (flooding) {
        const r = await fetch(`${rig.base}/v1/nodes/${MAC}/answer`, {
          headers: { authorization: `Bearer ${token}` },
        });
        await r.arrayBuffer();
        polls++;
      }
    })();
  };
  const stopFlood = async () => {
    flooding = false;
    await flood;
  };
  const draws = () => browser.page.evaluate(() => Number(document.body.dataset.fleetDraws ?? 0));

  beforeAll(async () => {
    buildWeb();
    rig = await startRig({ tag: "fleet-redraw", named: 1, fleetRack: "r09", discovery: true });
    browser = await launchChromium();
    browser.page.on("request", (r) => {
      if (r.method() === "GET" && /\/v1\/fleet\/nodes\/[^/]+$/.test(new URL(r.url()).pathname))
        detailReads.push(r.url());
    });
    token = await bootScript(rig.base, MAC);
  }, 120_000);
  afterAll(async () => {
    await stopFlood();
    await browser?.close();
    await rig?.close();
  });

  it("under a flood of updates for the open node, its buttons are the same elements, keep the focus and take every click", async () => {
    const page = browser.page;
    await page.goto(`${rig.base}/ui/`);
    await page.waitForSelector("body[data-ready='1']");
    await page.locator("#login-token").fill(rig.adminToken);
    await page.locator("#login-token").press("Enter");
    await expect.poll(() => page.locator("#waiting-count").textContent(), WAIT).toBe("1");
    const item = page.locator("#waiting-list li[data-node]");
    const id = await item.getAttribute("data-node");
    expect(id).toMatch(/^\d+$/);
    await item.locator("button.node").click();
    await expect
      .poll(() => page.locator("#fleet-detail-title").textContent(), WAIT)
      .toBe(`${MAC} (node ${id})`);

    const hold = page.locator("#fleet-detail-actions button[data-act='hold']");
    const approve = page.locator("#fleet-detail-actions button[data-act='approve']");
    const listApprove = item.locator("button[data-act='approve']");
    const rackButton = page.locator(`details.rack button.fleet-node[data-node="${id}"]`);
    const marked = [hold, approve, listApprove, rackButton, item.locator("button.node")];
    for (const l of marked)
      await l.evaluate((e) => {
        (e as unknown as { kvmsMark: number }).kvmsMark = 1;
      });
    await hold.focus();

    startFlood();
    const before = await draws();
    const readsBefore = detailReads.length;
    // Dozens of redraws, each from the node's own update, and the open detail reloaded from them.
    await expect.poll(draws, { timeout: 30_000 }).toBeGreaterThan(before + 20);
    expect(polls).toBeGreaterThan(20);
    expect(detailReads.length).toBeGreaterThan(readsBefore + 2);
    for (const l of marked)
      expect(await l.evaluate((e) => (e as unknown as { kvmsMark?: number }).kvmsMark)).toBe(1);
    // The keyboard focus stayed on the detail's Hold button all along.
    expect(await hold.evaluate((e) => e === document.activeElement)).toBe(true);

    // Every click lands while the updates go on: the dialog opens for this node each time.
    const dialog = page.locator("#fleet-dialog");
    for (let i = 0; i < 8; i++) {
      const target = i % 2 === 0 ? hold : listApprove;
      await target.click({ timeout: 10_000 });
      await expect.poll(() => dialog.isVisible(), WAIT).toBe(true);
      expect(await page.locator("#fleet-dialog-title").textContent()).toBe(
        `${i % 2 === 0 ? "Hold" : "Approve"} ${MAC}`,
      );
      await page.keyboard.press("Escape");
      await expect.poll(() => dialog.isVisible(), WAIT).toBe(false);
    }
    expect(await draws()).toBeGreaterThan(before + 25);

    // The approve made under the flood is done on the server, and shown.
    await approve.click({ timeout: 10_000 });
    await expect.poll(() => dialog.isVisible(), WAIT).toBe(true);
    await page.keyboard.type("cabled and checked");
    await page.keyboard.press("Enter");
    await expect.poll(() => dialog.isVisible(), WAIT).toBe(false);
    await stopFlood();
    await expect.poll(() => page.locator("#waiting-count").textContent(), WAIT).toBe("0");
    const listed = (await (
      await fetch(`${rig.base}/v1/fleet/nodes`, { headers: { authorization: `Bearer ${rig.adminToken}` } })
    ).json()) as { nodes: { id: string; approved: boolean }[] };
    expect(listed.nodes.find((n) => String(n.id) === id)?.approved).toBe(true);
    // Approved: its Approve button is hidden, Hold and Re-arm are the same elements as before.
    await expect.poll(() => approve.isVisible(), WAIT).toBe(false);
    expect(await hold.evaluate((e) => (e as unknown as { kvmsMark?: number }).kvmsMark)).toBe(1);
    await screenshot(page, "fleet-redraw");
  });
});
