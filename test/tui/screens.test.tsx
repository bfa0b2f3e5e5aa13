// Each screen renders its data: synthetic hosts built from the kernel's sysfs layout, and a shared
// snapshot of a real laptop (skipped visibly when the snapshots are absent).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { DiskReport } from "../../src/detect/types.js";
import { SCREENS } from "../../src/tui/screens.js";
import { disk as labDisk } from "../answer/hosts.js";
import { SKIP_REASON, sharedHostRoot, sharedHostsAvailable } from "../helpers/shared-hosts.js";
import {
  buildDmarBridgeHost,
  buildSriovHost,
  buildVfioGpuHost,
  SRIOV,
  VFIO,
} from "../helpers/sysfs-fixture.js";

import { drive, emptyDraft, KEY, reportOf } from "./helpers.js";

const at = (id: string) => SCREENS.findIndex((s) => s.id === id);
const sriov = buildSriovHost();
const vfio = buildVfioGpuHost();
const dmar = buildDmarBridgeHost();
afterAll(() => {
  for (const fx of [sriov, vfio, dmar]) fx.cleanup();
});

describe("tui screens on synthetic hosts", () => {
  it("Welcome shows the host summary and the verdict", async () => {
    const d = await drive(vfio.root);
    expect(d.frame()).toMatch(/Verdict: (READY|NOT READY)/);
    expect(d.frame()).toContain("PCI");
    expect(d.frame()).toMatch(/^\+-+\+$/m);
    d.unmount();
  });

  it("Hardware lists PCI devices and drills into one", async () => {
    const d = await drive(vfio.root, { start: at("hardware") });
    const pci = await d.press(KEY.tab, KEY.tab, KEY.tab);
    expect(pci).toContain("[PCI]");
    expect(pci).toContain(VFIO.gpu);
    const idx = pci
      .split("\n")
      .filter((l) => /\d{4}:\d\d:\d\d\.\d/.test(l))
      .findIndex((l) => l.includes(VFIO.gpu));
    for (let i = 0; i < idx; i++) await d.press(KEY.down);
    const detail = await d.press(KEY.enter);
    expect(detail).toContain(`IOMMU group ${VFIO.group}`);
    expect(detail).toContain("Esc closes");
    expect(await d.press(KEY.esc)).toContain("[PCI]");
    d.unmount();
  });

  it("Network marks the management NIC", async () => {
    const d = await drive(dmar.root, { start: at("network") });
    expect(d.frame()).toMatch(/eno1.*\(management\)/);
    expect(d.frame()).toContain("enp2s0");
    d.unmount();
  });

  it("SR-IOV shows the PF and refuses more VFs than sriov_totalvfs", async () => {
    const d = await drive(sriov.root, { start: at("sriov") });
    expect(d.frame()).toContain(`${SRIOV.pfName}`);
    expect(d.frame()).toContain("now 2/7");
    await d.press("+", "+", "+", "+", "+");
    expect(d.frame()).toContain("-> 7 VFs");
    expect(await d.press("+")).toContain("refused");
    expect((await d.draftWhere((x) => Boolean(x.sriov?.length))).sriov).toEqual([
      { pf: { name: SRIOV.pfName }, numVfs: 7 },
    ]);
    d.unmount();
  });

  it("Passthrough groups devices, warns about the boot VGA (a second GPU remains) and picks a whole group", async () => {
    const d = await drive(vfio.root, { start: at("passthrough") });
    expect(d.frame()).toContain(`IOMMU group ${VFIO.group}`);
    expect(d.frame()).toContain("(warning: is the boot VGA");
    const warned = await d.press(KEY.down, KEY.enter); // the iGPU line in group 0
    expect(warned).toMatch(new RegExp(`picked ${VFIO.igpu}; warning: .*boot VGA`));
    await d.press(KEY.enter); // and back out
    const lines = d.frame().split("\n");
    const from = lines.findIndex((l) => l.includes(">"));
    const to = lines.findIndex((l) => l.includes(`IOMMU group ${VFIO.group}`));
    for (let i = from; i < to; i++) await d.press(KEY.down);
    const picked = await d.press(KEY.enter);
    expect(picked).toContain(`picked ${VFIO.gpu}, ${VFIO.audio}`);
    expect((await d.draftWhere((x) => (x.passthrough?.length ?? 0) >= 2)).passthrough).toEqual([
      { device: { address: VFIO.gpu } },
      { device: { address: VFIO.audio } },
    ]);
    d.unmount();
  });

  it("Storage shows why a disk cannot be used and asks for the serial before a wipe", async () => {
    const report = await reportOf(sriov.root);
    // The answer tests' disk builder, with a model, serial and by-id link the Storage screen shows.
    const disk = (name: string, extra: Partial<DiskReport>): DiskReport =>
      labDisk({
        name,
        sizeBytes: 500e9,
        model: "TESTDISK",
        serial: `SER-${name}`,
        byId: [`/dev/disk/by-id/ata-TESTDISK_SER-${name}`],
        ...extra,
      });
    report.disks = [disk("sda", { roles: ["root"] }), disk("sdb", {})];
    const d = await drive(sriov.root, { report, start: at("storage") });
    expect(d.frame()).toContain("sda 500 GB TESTDISK: sda is not free (holds root)");
    await d.press(KEY.enter, KEY.enter); // none -> dir -> lvm-thin
    expect(d.frame()).toContain("lvm-thin");
    expect(await d.press(KEY.tab, KEY.enter)).toContain("refused: sda is not free (holds root)");
    await d.press(KEY.down, KEY.enter);
    expect(d.frame()).toMatch(/\[x\] sdb/);
    await d.press(KEY.tab, KEY.down, KEY.down, KEY.enter); // wipe disks
    expect(d.frame()).toContain("WIPE sdb? type its serial");
    await d.type("WRONG");
    expect(await d.press(KEY.enter)).toContain("not its serial; nothing will be wiped");
    await d.press(KEY.enter);
    await d.type("SER-sdb");
    expect(await d.press(KEY.enter)).toContain("wipe disks  YES");
    expect((await d.draftWhere((x) => Boolean(x.storage?.pools?.length))).storage?.pools?.[0]).toMatchObject({
      type: "lvm-thin",
      wipe: true,
      disks: [{ byId: "ata-TESTDISK_SER-sdb" }],
    });
    d.unmount();
  });

  it("Storage takes a partitioned disk only into a pool that wipes it (what validate and plan say)", async () => {
    const report = await reportOf(sriov.root);
    const parts = [{ name: "sdb1", sizeBytes: null, mountpoints: [], holders: [], fstype: "ext4" }];
    report.disks = [
      labDisk({ name: "sdb", sizeBytes: 500e9, model: "TESTDISK", serial: "SER-sdb", partitions: parts }),
    ];
    const d = await drive(sriov.root, { report, start: at("storage") });
    expect(d.frame()).toContain("sdb 500 GB TESTDISK: sdb has partition sdb1: it is not free");
    await d.press(KEY.enter, KEY.enter); // none -> dir -> lvm-thin
    expect(await d.press(KEY.tab, KEY.enter)).toContain("refused: sdb has partition sdb1: it is not free");
    await d.press(KEY.tab, KEY.down, KEY.down, KEY.enter); // wipe disks, none picked yet
    expect(d.frame()).toContain("wipe disks  YES");
    await d.press(KEY.tab, KEY.enter);
    expect(d.frame()).toContain("WIPE sdb? type its serial");
    await d.type("SER-sdb");
    await d.press(KEY.enter);
    expect(
      (await d.draftWhere((x) => Boolean(x.storage?.pools?.[0]?.disks?.length))).storage?.pools?.[0],
    ).toMatchObject({
      wipe: true,
      disks: [{ serial: "SER-sdb" }],
    });
    d.unmount();
  });

  it("VMs lists the answer's VM entries, or says there are none", async () => {
    const empty = await drive(sriov.root, { start: at("vms") });
    expect(empty.frame()).toContain("No VMs in the answer file");
    empty.unmount();
    const draft = {
      ...emptyDraft(),
      vms: [
        {
          name: "web-1",
          image: "debian-12",
          vcpus: 2,
          memoryMiB: 2048,
          diskGiB: 20,
          user: { name: "ops" },
          nics: [{ bridge: "br0" }],
        },
      ],
    };
    const d = await drive(sriov.root, { start: at("vms"), draft: draft as never });
    expect(d.frame()).toContain("web-1: debian-12, 2 vCPU, 2048 MiB, 20 GiB; br br0");
    d.unmount();
  });

  it("Review shows the plan and the answer file; Apply dry-runs it; Done summarises", async () => {
    const target = mkdtempSync(path.join(tmpdir(), "kvmstrap-tui-apply-"));
    const d = await drive(sriov.root, {
      start: at("review"),
      draft: { version: 1, sriov: [{ pf: { name: SRIOV.pfName }, numVfs: 4 }] },
      session: { stateDir: path.join(target, "state") },
    });
    await d.waitFor(/\d+ actions, 0 refused, 0 errors/);
    expect(d.frame()).toContain("sriov_numvfs");
    expect(await d.press(KEY.tab)).toContain("version: 1");
    expect(d.frame()).toContain("numVfs: 4");
    await d.press("n", KEY.enter);
    await d.waitFor("Dry run finished: dry-run");
    expect(d.frame()).toMatch(/sriov/);
    const done = await d.press(KEY.enter);
    expect(done).toMatch(/Dry run dry-run-\S+: dry-run/);
    expect(done).toContain("answer file: not saved");
    d.unmount();
  });

  it("? opens the help; q asks before quitting once something changed", async () => {
    const d = await drive(sriov.root, { start: at("sriov") });
    expect(await d.press("?")).toContain("Help (any key closes)");
    expect(await d.press("x")).toContain("now 2/7");
    await d.press("+");
    expect(await d.press("q")).toContain("Quit without saving");
    expect(await d.press("n")).not.toContain("Quit without saving");
    d.unmount();
  });
});

describe.skipIf(!sharedHostsAvailable)("tui screens on a shared snapshot", () => {
  it("every screen renders the laptop within 80 columns", async () => {
    const root = sharedHostRoot("intel-i7-1270p-laptop");
    const d = await drive(root);
    expect(d.frame()).toContain("i7-1270P");
    for (const s of SCREENS.slice(1)) {
      const f = await d.press("n");
      expect(f).toContain(s.title);
    }
    d.unmount();
  });
});
if (!sharedHostsAvailable) it.skip(`tui screens on a shared snapshot: ${SKIP_REASON}`, () => {});
