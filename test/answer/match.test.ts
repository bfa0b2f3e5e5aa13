// Match rules on real-machine snapshots (the AMD desktop's 4 NICs without drivers recorded; its and
// the laptop's disks) and on synthetic hosts (SR-IOV, VFIO, a bridged management NIC).
import { beforeAll, describe, expect, it } from "vitest";
import { explainAnswer, explainAnswerData } from "../../src/answer/explain.js";
import { parseAnswerText } from "../../src/answer/load.js";
import { globMatch, matchDisks, matchNics, matchPci, parseSize } from "../../src/answer/match.js";
import { detectHost } from "../../src/detect/index.js";
import type { HostReport } from "../../src/detect/types.js";
import { RootedHostFs } from "../../src/host/fs.js";
import { SKIP_REASON, sharedHostRoot, sharedHostsAvailable } from "../helpers/shared-hosts.js";
import { buildDmarBridgeHost, buildSriovHost, DMAR_BRIDGE, SRIOV, VFIO } from "../helpers/sysfs-fixture.js";
import { detectFixture, LAB, labReport } from "./hosts.js";

const names = <T extends { name: string | null }>(xs: T[]) => xs.map((x) => x.name);

describe("parseSize and globs", () => {
  it("reads decimal and binary units", () => {
    expect(parseSize("500G")).toBe(500e9);
    expect(parseSize("2T")).toBe(2e12);
    expect(parseSize("2TB")).toBe(2e12);
    expect(parseSize("1.5TiB")).toBe(1.5 * 2 ** 40);
    expect(parseSize("512Gi")).toBe(512 * 2 ** 30);
    expect(parseSize("100 MB")).toBe(100e6);
    expect(parseSize("4096")).toBe(4096);
    expect(parseSize(123)).toBe(123);
    expect(() => parseSize("big")).toThrow(/not a size/);
  });

  it("globs with * and ? over the whole name", () => {
    expect(globMatch("eno*", "eno1")).toBe(true);
    expect(globMatch("enp?s0", "enp3s0")).toBe(true);
    expect(globMatch("enp?s0", "enp3s0f0")).toBe(false);
    expect(globMatch("en.1", "enx1")).toBe(false);
  });
});

if (!sharedHostsAvailable) it.skip(`answer match on shared snapshots: ${SKIP_REASON}`, () => {});

describe.skipIf(!sharedHostsAvailable)("on real-machine snapshots", () => {
  let amd: HostReport;
  let laptop: HostReport;
  beforeAll(async () => {
    const detect = (root: string) =>
      detectHost({ fs: new RootedHostFs(root), probe: { mode: "never" }, pciIds: null });
    [amd, laptop] = await Promise.all([
      detect(sharedHostRoot("amd-ryzen-1600-desktop")),
      detect(sharedHostRoot("intel-i7-1270p-laptop")),
    ]);
  }, 60_000);

  it("AMD desktop: a name glob matching two NICs is ambiguous, and says which", () => {
    const m = matchNics({ name: "enp6s0f?" }, amd);
    expect(m.chosen).toEqual([]);
    expect(m.error).toBe("2 NICs match (enp6s0f0, enp6s0f1): add a criterion or pick: first|last|fastest");
    expect(m.candidates.map((c) => [c.label, c.matched])).toEqual([
      ["enp3s0", false],
      ["enp6s0f0", true],
      ["enp6s0f1", true],
      ["enp8s0", false],
    ]);
    expect(m.candidates[0]?.reasons).toEqual(["name enp3s0 does not match enp6s0f?"]);
  });

  it("AMD desktop: pick first/last by name", () => {
    expect(names(matchNics({ name: "enp6s0f?", pick: "first" }, amd).chosen)).toEqual(["enp6s0f0"]);
    expect(names(matchNics({ name: "enp6s0f?", pick: "last" }, amd).chosen)).toEqual(["enp6s0f1"]);
    expect(names(matchNics({ name: "enp*", pick: "last" }, amd).chosen)).toEqual(["enp8s0"]);
  });

  it("AMD desktop: vendor and PCI address (the snapshot recorded no drivers)", () => {
    const intel = matchNics({ vendor: "8086", pick: "first" }, amd);
    expect(names(intel.chosen)).toEqual(["enp6s0f0"]);
    expect(intel.candidates[0]?.reasons).toEqual(["vendor 10ec != 8086"]);
    expect(names(matchNics({ vendor: "10EC", pci: "08:00.0" }, amd).chosen)).toEqual(["enp8s0"]);
    const byDriver = matchNics({ driver: "igb" }, amd);
    expect(byDriver.error).toMatch(/^no NIC matches; candidates:\n {2}enp3s0: driver unknown/);
  });

  it("AMD desktop: the snapshot has no route table, so uplink fails and says the route is unknown", () => {
    const m = matchNics({ uplink: true }, amd);
    expect(m.error).toBe(
      [
        "no NIC matches; candidates:",
        "  enp3s0: may carry the default route: no route table was captured",
        "  enp6s0f0: may carry the default route: no route table was captured",
        "  enp6s0f1: may carry the default route: no route table was captured",
        "  enp8s0: may carry the default route: no route table was captured",
      ].join("\n"),
    );
  });

  it("AMD desktop disks: rotational, size ranges, largest/smallest", () => {
    expect(names(matchDisks({ rotational: true }, amd).chosen)).toEqual(["sdb"]);
    const ssd = matchDisks({ rotational: false }, amd);
    expect(ssd.error).toMatch(/^2 disks match \(sda \(256.1 GB\), sdc \(500.1 GB\)\)/);
    expect(names(matchDisks({ rotational: false, pick: "largest" }, amd).chosen)).toEqual(["sdc"]);
    expect(names(matchDisks({ rotational: false, pick: "smallest" }, amd).chosen)).toEqual(["sda"]);
    expect(names(matchDisks({ largest: true }, amd).chosen)).toEqual(["sdb"]);
    const mid = matchDisks({ minSize: "500G", maxSize: "600G" }, amd);
    expect(names(mid.chosen)).toEqual(["sdc"]);
    const sda = mid.candidates.find((c) => c.item.name === "sda");
    expect(sda?.reasons).toEqual(["size 256.1 GB < minSize 500G", "size 256.1 GB <= maxSize 600G"]);
    expect(mid.candidates.find((c) => c.item.name === "sdb")?.reasons).toContain("size 1 TB > maxSize 600G");
    expect(names(matchDisks({}, amd).candidates.map((c) => c.item))).toEqual(["sda", "sdb", "sdc"]); // no dm-*
    expect(matchDisks({ largest: true, pick: "first" }, amd).error).toBe(
      "largest: true conflicts with pick: first",
    );
  });

  it("laptop disk: decimal vs binary sizes", () => {
    expect(names(matchDisks({ minSize: "1T" }, laptop).chosen)).toEqual(["nvme0n1"]);
    const tib = matchDisks({ minSize: "1TiB" }, laptop);
    expect(tib.error).toBe("no disk matches; candidates:\n  nvme0n1 (1 TB): size 1 TB < minSize 1TiB");
  });

  it("AMD desktop PCI: class, vendor:device, address and pick", () => {
    expect(matchPci({ class: "03" }, amd).chosen.map((p) => p.address)).toEqual(["0000:0a:00.0"]);
    expect(matchPci({ id: "1002:AA90" }, amd).chosen.map((p) => p.address)).toEqual(["0000:0a:00.1"]);
    expect(matchPci({ address: "0a:00.0" }, amd).chosen.map((p) => p.address)).toEqual(["0000:0a:00.0"]);
    expect(matchPci({ class: "0x0200", pick: "last" }, amd).chosen.map((p) => p.address)).toEqual([
      "0000:08:00.0",
    ]);
    expect(matchPci({ class: "0200" }, amd).error).toMatch(/^4 PCI devices match/);
    expect(matchPci({ class: "0200", pick: "largest" }, amd).error).toBe(
      "pick: largest does not apply to PCI devices (use first, last)",
    );
    const none = matchPci({ id: "10de:1b80" }, amd);
    expect(none.error?.split("\n")).toHaveLength(10); // the header, 8 nearest candidates, "N more"
    expect(none.error).toMatch(/\(35 more: kvmstrap answer explain lists them all\)$/);
  });
});

describe("on synthetic hosts", () => {
  let sriov: HostReport;
  let dmar: HostReport;
  let lab: HostReport;
  beforeAll(async () => {
    const a = buildSriovHost();
    const b = buildDmarBridgeHost();
    [sriov, dmar, lab] = await Promise.all([detectFixture(a), detectFixture(b), labReport()]);
    a.cleanup();
    b.cleanup();
  });

  it("SR-IOV host: driver picks the PF; VFs are not candidates", () => {
    const m = matchNics({ driver: "igb" }, sriov);
    expect(names(m.chosen)).toEqual([SRIOV.pfName]);
    expect(m.candidates.map((c) => c.label)).toEqual([SRIOV.pfName]);
    expect(m.candidates[0]?.reasons).toEqual(["driver igb == igb"]);
  });

  it("SR-IOV host: mac, and speed below the minimum", () => {
    expect(names(matchNics({ mac: "A0:36:9F:00:00:01" }, sriov).chosen)).toEqual([SRIOV.pfName]);
    const fast = matchNics({ minSpeedMbps: 10000 }, sriov);
    expect(fast.error).toBe(
      `no NIC matches; candidates:\n  ${SRIOV.pfName}: speed 1000 Mb/s < minSpeedMbps 10000`,
    );
  });

  it("bridged management NIC: uplink picks the physical port eno1, not br0", () => {
    const m = matchNics({ uplink: true }, dmar);
    expect(names(m.chosen)).toEqual([DMAR_BRIDGE.mgmt]);
    expect(m.candidates.map((c) => [c.label, c.matched, c.reasons])).toEqual([
      [DMAR_BRIDGE.mgmt, true, ["carries the default route"]],
      [DMAR_BRIDGE.other, false, ["does not carry the default route"]],
    ]);
    const speed = matchNics({ minSpeedMbps: 100 }, dmar);
    expect(speed.candidates[1]?.reasons).toEqual(["speed unknown (no link?)"]);
    expect(names(speed.chosen)).toEqual([DMAR_BRIDGE.mgmt]);
  });

  it("lab: fastest picks the NIC with the best known speed", () => {
    expect(names(matchNics({ vendor: "8086", pick: "fastest" }, lab).chosen)).toEqual(["eno1"]);
    expect(names(matchNics({ name: "en*", pick: "first" }, lab).chosen)).toEqual(["eno1"]);
  });

  it("VFIO: the GPU by vendor:device and its audio by class", () => {
    expect(matchPci({ id: "10de:1b80" }, lab).chosen.map((p) => p.address)).toEqual([VFIO.gpu]);
    expect(matchPci({ id: "10de:10f0", class: "0403" }, lab).chosen.map((p) => p.address)).toEqual([
      VFIO.audio,
    ]);
    const gpus = matchPci({ class: "03" }, lab);
    expect(gpus.error).toMatch(
      /^2 PCI devices match \(0000:00:02\.0 8086:3e92 \[0300\] \(i915\), 0000:01:00\.0/,
    );
  });

  it("lab disks: model glob (case-insensitive), serial and by-id with or without the directory", () => {
    expect(names(matchDisks({ model: "samsung*" }, lab).chosen)).toEqual(["nvme0n1"]);
    expect(names(matchDisks({ serial: "WJG00001" }, lab).chosen)).toEqual(["sdb"]);
    const id = "nvme-eui.002538b000000001";
    expect(names(matchDisks({ byId: id }, lab).chosen)).toEqual(["nvme0n1"]);
    expect(names(matchDisks({ byId: `/dev/disk/by-id/${id}` }, lab).chosen)).toEqual(["nvme0n1"]);
    const wrong = matchDisks({ model: "ST4000*", rotational: false }, lab);
    expect(wrong.candidates.find((c) => c.item.name === "sdb")?.reasons).toEqual([
      'model "ST4000NM000A-2HZ100" matches ST4000*',
      "rotational (HDD), wanted non-rotational (SSD)",
    ]);
  });

  it("explain lists every rule with its candidates, reasons and result", () => {
    const answer = parseAnswerText(
      [
        "version: 1",
        "network:",
        "  bridges:",
        "    - name: br0",
        "      uplink: { uplink: true }",
        "sriov:",
        "  - pf: { driver: igb }",
        "    numVfs: 2",
        "passthrough:",
        "  - device: { class: '03' }",
        "storage:",
        "  pools:",
        "    - { name: data, type: lvm-thin, disks: [{ rotational: true }] }",
      ].join("\n"),
      "explain.yaml",
    );
    const data = explainAnswerData(answer, lab);
    expect(data.map((d) => [d.path, d.kind, d.chosen, d.error === null])).toEqual([
      ["network.bridges[0].uplink", "nic", ["eno1"], true],
      ["sriov[0].pf", "nic", ["enp3s0f0"], true],
      ["passthrough[0].device", "pci", [], false],
      ["storage.pools[0].disks[0]", "disk", ["sdb (4 TB, ST4000NM000A-2HZ100, serial WJG00001)"], true],
    ]);
    const text = explainAnswer(answer, lab);
    expect(text).toContain(
      "network.bridges[0].uplink (nic: uplink: true)\n  + eno1\n      carries the default route\n",
    );
    expect(text).toContain("  - enp5s0\n      does not carry the default route\n");
    expect(text).toContain("  => eno1\n");
    expect(text).toContain("  - enp5s0\n      driver i40e != igb\n");
    expect(text).toMatch(/passthrough\[0\]\.device \(pci: class: 03\)[\s\S]*=> error: 2 PCI devices match/);
    expect(text).toMatch(/ {6}rotational \(HDD\)\n[\s\S]*=> sdb/);
    expect(text).not.toMatch(/[^\x20-\x7e\n]/); // plain ASCII for serial consoles
  });

  it("explain shows under each choice what the rule set says about it (what validate reports)", () => {
    const answer = parseAnswerText(
      `version: 1\npassthrough:\n  - device: { address: "${LAB.mgmtPci}" }\n`,
      "explain.yaml",
    );
    const text = explainAnswer(answer, lab);
    expect(text).toContain(
      `  ! error (passthrough.management-nic): ${LAB.mgmtPci} is the management NIC eno1 (${LAB.mgmtPci}): passing it through would cut this host off\n`,
    );
  });
});
