// Network VLANs and bonds, and VMs added and removed on their screen: each interaction lands in the
// draft as the answer schema's network.vlans / network.bonds / vms entries, the answer saved at Review
// validates on the same host, and the screens' text fits 80 columns.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadAnswerFile } from "../../src/answer/load.js";
import { answerSchema } from "../../src/answer/schema.js";
import { validateAnswer } from "../../src/answer/validate.js";
import { SCREENS } from "../../src/tui/screens.js";
import { projectRoot } from "../helpers/shared-hosts.js";
import { buildSriovHost, SRIOV, SysfsFixture } from "../helpers/sysfs-fixture.js";
import { type Driven, drive, KEY, reportOf } from "./helpers.js";

const at = (id: string) => SCREENS.findIndex((s) => s.id === id);
const TEMPLATES = path.join(projectRoot, "templates/cloud-init");
const out = mkdtempSync(path.join(tmpdir(), "kvmstrap-tui-netvm-"));
const KEYTEXT = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@laptop";

/** The SR-IOV host plus a management NIC (default route) and two spare NICs to bond. */
function buildBondHost(): SysfsFixture {
  const fx = new SysfsFixture();
  fx.pci({ address: "0000:00:1f.6", vendor: "8086", device: "15bc", class: "020000", driver: "e1000e" });
  fx.pci({ address: "0000:05:00.0", vendor: "8086", device: "1521", class: "020000", driver: "igb" });
  fx.pci({ address: "0000:05:00.1", vendor: "8086", device: "1521", class: "020000", driver: "igb" });
  fx.netdev({ name: "eno1", pci: "0000:00:1f.6", mac: "3c:ec:ef:00:00:01", speed: 1000 });
  fx.netdev({ name: "enp5s0f0", pci: "0000:05:00.0", mac: "3c:ec:ef:00:00:02", speed: 1000 });
  fx.netdev({ name: "enp5s0f1", pci: "0000:05:00.1", mac: "3c:ec:ef:00:00:03", speed: 1000 });
  fx.routes([{ iface: "eno1", gateway: "0100000A", metric: 100 }]);
  return withNetplan(buildSriovHost(fx));
}

/** A host configured by netplan: bridges, bonds and VLANs can be planned there (network.stack-unknown). */
const withNetplan = (fx: SysfsFixture) =>
  fx.file("/etc/netplan/50-cloud-init.yaml", "network: {version: 2}\n");

const sriov = withNetplan(buildSriovHost());
const bondHost = buildBondHost();
afterAll(() => {
  sriov.cleanup();
  bondHost.cleanup();
});

/** Every line of the frame, its content trimmed, fits an 80-column terminal (76 inside the border). */
function fits80(frame: string): void {
  for (const l of frame.split("\n").filter((x) => !/^\+-+\+$/.test(x))) {
    const inner = l.replace(/^\| ?/, "").replace(/ ?\|$/, "").trimEnd();
    expect(inner.length, `wider than 80 columns: ${l}`).toBeLessThanOrEqual(76);
    expect(/^[\x20-\x7e]*$/.test(l), `non-ASCII: ${l}`).toBe(true);
  }
}

/** Moves the list pointer ('>') down to the first line matching `re`. */
async function downTo(d: Driven, re: RegExp): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const line = d
      .frame()
      .split("\n")
      .find((l) => /^\| > /.test(l));
    if (line && re.test(line)) return;
    await d.press(KEY.down);
  }
  throw new Error(`no line ${re} in:\n${d.frame()}`);
}

async function addVlan(d: Driven, id: string, name: string, addr: string | null): Promise<void> {
  await d.press("v");
  await d.type(id);
  await d.press(KEY.enter);
  await d.type(KEY.backspace.repeat(12));
  await d.type(name);
  await d.press(KEY.enter);
  if (addr !== null) {
    await d.type(KEY.backspace.repeat(6));
    await d.type(addr);
  }
  await d.press(KEY.enter);
}

/** Adds a VM through the VMs screen's prompts (values replace the defaults; null keeps one). */
async function addVm(d: Driven, values: (string | null)[]): Promise<void> {
  await d.press("a");
  for (const v of values) {
    if (v !== null) {
      await d.type(KEY.backspace.repeat(20));
      await d.type(v);
    }
    await d.press(KEY.enter);
  }
}

async function saveAtReview(d: Driven, file: string): Promise<void> {
  await d.waitFor(/\d+ actions, \d+ refused/);
  await d.press("s");
  // Keys typed before the prompt is drawn would be lost and the default path saved instead.
  await d.waitFor("save answer file to");
  await d.type(KEY.backspace.repeat(40));
  await d.type(file);
  await d.waitFor(file);
  await d.press(KEY.enter);
  await d.waitFor(`saved ${file}`);
}

describe("tui network: VLANs and bonds", () => {
  it("adds a DHCP and a static VLAN on the bridge, refuses a bad id, and removes one", async () => {
    const d = await drive(sriov.root, { start: at("network") });
    expect(await d.press("v")).toContain("pick an uplink first");
    await d.press(KEY.enter); // bridge br0 over the PF
    await d.press("v");
    await d.type("5000");
    expect(await d.press(KEY.enter)).toContain('refused: VLAN id "5000" is not 1-4094');
    await addVlan(d, "100", "vlan100", null);
    await addVlan(d, "200", "mgmt200", "192.0.2.20/24");
    const f = await d.waitFor("VLAN mgmt200");
    expect(f).toContain("VLAN vlan100  id 100 on br0, DHCP");
    expect(f).toContain("VLAN mgmt200  id 200 on br0, 192.0.2.20/24");
    fits80(f);
    const draft = await d.draftWhere((x) => (x.network?.vlans?.length ?? 0) === 2);
    expect(draft.network?.vlans).toEqual([
      { name: "vlan100", id: 100, link: "br0", addresses: "dhcp" },
      { name: "mgmt200", id: 200, link: "br0", addresses: ["192.0.2.20/24"] },
    ]);
    expect(() => answerSchema.parse(draft)).not.toThrow();
    await d.press(KEY.tab);
    await downTo(d, /VLAN vlan100/);
    expect(await d.press("x")).toContain("removed VLAN vlan100");
    const after = await d.draftWhere((x) => (x.network?.vlans?.length ?? 0) === 1);
    expect(after.network?.vlans?.[0]?.name).toBe("mgmt200");
    d.unmount();
  });

  it("bonds two spare NICs, never offering the management NIC, with a mode from the schema", async () => {
    const d = await drive(bondHost.root, { start: at("network") });
    expect(d.frame()).toMatch(/eno1.*\(management\)/);
    await downTo(d, new RegExp(SRIOV.pfName));
    await d.press(KEY.enter); // the bridge over the PF
    const editor = await d.press("b");
    expect(editor).toContain("New bond, mode active-backup");
    expect(editor).toContain("enp5s0f0");
    expect(editor).toContain("enp5s0f1");
    const offered = editor.split("\n").slice(editor.split("\n").findIndex((l) => l.includes("New bond")));
    expect(offered.join("\n")).not.toContain("eno1");
    expect(offered.join("\n")).not.toContain(SRIOV.pfName);
    await d.press(KEY.enter); // enp5s0f0
    expect(await d.press("d")).toContain("refused: a bond needs two or more NICs");
    await d.press(KEY.down, KEY.enter, "m"); // enp5s0f1, mode 802.3ad
    expect(d.frame()).toContain("mode 802.3ad");
    fits80(d.frame());
    await d.press("d", KEY.enter); // name: bond0
    const f = await d.waitFor("bond bond0");
    expect(f).toContain("bond bond0  802.3ad: enp5s0f0, enp5s0f1");
    expect(f).toMatch(/enp5s0f0.*\(in bond0\)/);
    fits80(f);
    const draft = await d.draftWhere((x) => (x.network?.bonds?.length ?? 0) === 1);
    expect(draft.network?.bonds).toEqual([
      { name: "bond0", mode: "802.3ad", interfaces: [{ name: "enp5s0f0" }, { name: "enp5s0f1" }] },
    ]);
    expect(() => answerSchema.parse(draft)).not.toThrow();
    // A bonded NIC cannot become the bridge uplink.
    await d.press(KEY.tab); // back to the uplink list (pane 0 -> 1 -> 0)
    await d.press(KEY.tab);
    await downTo(d, /enp5s0f0/);
    expect(await d.press(KEY.enter)).toContain(
      "refused: enp5s0f0 is already claimed by network.bridges[0].uplink",
    );
    d.unmount();
  });
});

describe("tui VMs: add and remove", () => {
  it("adds a VM from prompts checked by the schema, then removes it", async () => {
    const d = await drive(sriov.root, { start: at("vms") });
    await d.press("a");
    expect(d.frame()).toContain("1/9 VM name: vm-1_");
    fits80(d.frame());
    await d.press(KEY.esc);
    // vcpus 0 is refused and asked again; the NIC falls back to libvirt's default network.
    await addVm(d, ["web-1", TEMPLATES, "debian-12", "0"]);
    expect(d.frame()).toContain("refused vCPUs");
    expect(d.frame()).toContain("4/9 vCPUs");
    await d.type(KEY.backspace.repeat(4));
    await d.type("4");
    await d.press(KEY.enter);
    for (const v of ["4096", "30", null, "ops"]) {
      if (v !== null) {
        await d.type(KEY.backspace.repeat(20));
        await d.type(v);
      }
      await d.press(KEY.enter);
    }
    expect(d.frame()).toContain("9/9 ssh public key");
    await d.type(KEYTEXT); // a paste arrives as one chunk in a real terminal; typed here
    const f = await d.press(KEY.enter);
    expect(f).toContain("web-1: debian-12, 4 vCPU, 4096 MiB, 30 GiB; net default");
    fits80(f);
    const draft = await d.draftWhere((x) => (x.vms?.length ?? 0) === 1);
    expect(draft.vms).toEqual([
      {
        name: "web-1",
        template: TEMPLATES,
        image: "debian-12",
        vcpus: 4,
        memoryMiB: 4096,
        diskGiB: 30,
        user: { name: "ops", sshKeys: [KEYTEXT] },
        nics: [{ network: "default" }],
      },
    ]);
    expect(() => answerSchema.parse(draft)).not.toThrow();
    expect(await d.press("x")).toContain("removed VM web-1");
    expect((await d.draftWhere((x) => (x.vms?.length ?? 1) === 0)).vms).toEqual([]);
    d.unmount();
  });
});

describe("tui network + VMs: the round trip", () => {
  for (const [label, fx, bond] of [
    ["the SR-IOV host", sriov, false],
    ["the SR-IOV host with a management NIC and spare NICs", bondHost, true],
  ] as const) {
    it(`bridge, VLAN${bond ? ", bond" : ""} and a VM on ${label} save and validate`, async () => {
      const d = await drive(fx.root, { start: at("network") });
      await downTo(d, new RegExp(SRIOV.pfName));
      await d.press(KEY.enter);
      await addVlan(d, "42", "vlan42", "198.51.100.5/24");
      if (bond) await d.press("b", KEY.enter, KEY.down, KEY.enter, "d", KEY.enter);
      await d.waitFor(bond ? "bond bond0" : "VLAN vlan42");
      await d.press("n", "n", "n", "n"); // SR-IOV, Passthrough, Storage, VMs
      expect(d.frame()).toContain("No VMs in the answer file");
      await addVm(d, ["db-1", null, null, null, null, null, null, null, KEYTEXT]);
      expect(await d.waitFor("db-1: debian-12")).toContain("br br0");
      fits80(d.frame());
      await d.press("n");
      const file = path.join(out, `netvm-${bond ? "bond" : "plain"}.yaml`);
      await saveAtReview(d, file);
      const draft = d.state.draft;
      d.unmount();
      expect(draft?.network?.vlans).toEqual([
        { name: "vlan42", id: 42, link: "br0", addresses: ["198.51.100.5/24"] },
      ]);
      expect(draft?.network?.bonds?.length ?? 0).toBe(bond ? 1 : 0);
      expect(draft?.vms?.[0]).toMatchObject({ name: "db-1", nics: [{ bridge: "br0" }] });
      const answer = await loadAnswerFile(file);
      const report = await reportOf(fx.root);
      expect(validateAnswer(answer, report).errors).toEqual([]);
      expect(answer.network?.vlans).toHaveLength(1);
      expect(answer.vms).toHaveLength(1);
    }, 40_000);
  }
});
