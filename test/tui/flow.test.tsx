// The whole path by keystrokes, Welcome to Review, and the round trip: the answer file saved at
// Review passes validation, and the unattended path (the app's prepareFile, what `kvmstrap plan` and
// `kvmstrap apply --yes` call) builds the very plan the TUI showed.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadAnswerFile } from "../../src/answer/load.js";
import { prepareFile } from "../../src/app/prepare.js";
import { SKIP_REASON, sharedHostRoot, sharedHostsAvailable } from "../helpers/shared-hosts.js";
import { buildSriovHost, SRIOV } from "../helpers/sysfs-fixture.js";
import { type Driven, drive, KEY } from "./helpers.js";

const out = mkdtempSync(path.join(tmpdir(), "kvmstrap-tui-flow-"));
// Configured by netplan, so the bridge the flow picks can be planned (network.stack-unknown).
const sriov = buildSriovHost().file("/etc/netplan/50-cloud-init.yaml", "network: {version: 2}\n");
afterAll(() => sriov.cleanup());

/** The unattended path, as shipped: `kvmstrap apply FILE --yes --root ROOT` prepares with this. */
const unattendedPlan = (root: string, file: string) => prepareFile(file, { root }, { probe: "never" });

async function saveAtReview(d: Driven, file: string): Promise<void> {
  await d.waitFor(/\d+ actions, \d+ refused/);
  await d.press("s");
  // Keys typed before the prompt is drawn would be lost and the default path saved instead.
  await d.waitFor("save answer file to");
  for (let i = 0; i < 40; i++) await d.press(KEY.backspace);
  await d.type(file);
  await d.waitFor(file);
  await d.press(KEY.enter);
  await d.waitFor(`saved ${file}`);
}

describe("tui: the whole path by keystrokes", () => {
  it("Welcome to Review on an SR-IOV host, then the round trip", async () => {
    const d = await drive(sriov.root);
    await d.press(KEY.enter); // Welcome -> Hardware
    await d.press("n"); // -> Network
    expect(d.frame()).toContain(SRIOV.pfName);
    await d.press(KEY.enter, KEY.tab, KEY.down, KEY.enter); // uplink, addressing -> static
    await d.type("192.0.2.10/24");
    await d.press(KEY.enter, KEY.down, KEY.down, KEY.enter); // gateway
    await d.type("192.0.2.1");
    await d.press(KEY.enter);
    expect(d.frame()).toContain("192.0.2.10/24");
    await d.press("n"); // -> SR-IOV
    await d.press("+", "+"); // 2 -> 4 VFs
    expect(d.frame()).toContain("-> 4 VFs");
    await d.press("n", "n", "n", "n"); // Passthrough, Storage, VMs, Review
    expect(d.frame()).toContain("Review");
    const file = path.join(out, "sriov-answer.yaml");
    await saveAtReview(d, file);
    await d.waitFor(/8\/10 Review +\|/); // saved: no "(unsaved changes)" any more
    const shown = d.state.shared?.review;
    expect(shown).toBeTruthy();
    d.unmount();

    const text = readFileSync(file, "utf8");
    expect(text).toContain("numVfs: 4");
    const { answer, validation, plan } = await unattendedPlan(sriov.root, file);
    expect(validation.errors).toEqual([]);
    expect(plan).toEqual(shown?.plan);
    expect(answer).toEqual(shown?.answer);
  });

  it("--answer pre-fills the screens with the file's values", async () => {
    const file = path.join(out, "prefill.yaml");
    const first = await drive(sriov.root, {
      start: 7,
      draft: { version: 1, sriov: [{ pf: { name: SRIOV.pfName }, numVfs: 5 }] },
    });
    await saveAtReview(first, file);
    first.unmount();
    const answer = await loadAnswerFile(file);
    const { draftFrom } = await import("../../src/tui/draft.js");
    const d = await drive(sriov.root, { draft: draftFrom(answer), start: 3 });
    expect(d.frame()).toContain("-> 5 VFs");
    d.unmount();
  });
});

describe.skipIf(!sharedHostsAvailable)("tui: round trip on a shared snapshot", () => {
  it("a passthrough pick on the laptop saves, validates and plans the same", async () => {
    const root = sharedHostRoot("intel-i7-1270p-laptop");
    const d = await drive(root, { start: 4 });
    const lines = d.frame().split("\n");
    const target = lines.findIndex((l) => /\[ \] 0000:00:04\.0/.test(l));
    const from = lines.findIndex((l) => l.includes(">"));
    expect(target).toBeGreaterThan(0);
    for (let i = from; i < target; i++) await d.press(KEY.down);
    expect(await d.press(KEY.enter)).toContain("picked 0000:00:04.0");
    await d.press("n", "n", "n");
    const file = path.join(out, "laptop-answer.yaml");
    await saveAtReview(d, file);
    const shown = d.state.shared?.review;
    d.unmount();
    const { validation, plan } = await unattendedPlan(root, file);
    expect(validation.errors).toEqual([]);
    expect(plan).toEqual(shown?.plan);
  });
});
if (!sharedHostsAvailable) it.skip(`tui round trip on a shared snapshot: ${SKIP_REASON}`, () => {});
