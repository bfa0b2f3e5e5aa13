// Semantic validation against the hardware: one test per rule, each asserting the error and its path.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { loadAnswerFile, parseAnswerText } from "../../src/answer/load.js";
import { validateAnswer } from "../../src/answer/validate.js";
import { main } from "../../src/cli/main.js";
import type { HostReport } from "../../src/detect/types.js";
import { projectRoot } from "../helpers/shared-hosts.js";
import { buildDmarBridgeHost, DMAR_BRIDGE, VFIO } from "../helpers/sysfs-fixture.js";
import { detectFixture, LAB, labReport } from "./hosts.js";

const TEMPLATE = path.join(projectRoot, "templates/answer.example.yaml");

let lab: HostReport;
let dmar: HostReport;
beforeAll(async () => {
  // The DMAR host boots with GRUB, so enabling the IOMMU can be planned there.
  const fx = buildDmarBridgeHost().file("/etc/default/grub", 'GRUB_CMDLINE_LINUX=""\n');
  [lab, dmar] = await Promise.all([labReport(), detectFixture(fx)]);
  fx.cleanup();
});

const check = (yaml: string, report: HostReport = lab) =>
  validateAnswer(parseAnswerText(`version: 1\n${yaml}`, "test.yaml"), report);
const paths = (issues: { path: string }[]) => issues.map((i) => i.path);

describe("validateAnswer", () => {
  it("the complete example validates on the lab host with no errors and no warnings", async () => {
    const result = validateAnswer(await loadAnswerFile(TEMPLATE), lab);
    expect(result).toEqual({ errors: [], warnings: [], findings: [] });
  });

  it("a NIC rule that matches nothing, anywhere, is an error listing the candidates", () => {
    const r = check(
      [
        "network:",
        "  bridges:",
        "    - { name: br0, uplink: { driver: mlx5_core }, ports: [{ name: eth9 }] }",
        "  bonds:",
        "    - { name: bond0, mode: active-backup, interfaces: [{ mac: '00:11:22:33:44:55' }] }",
        "  vlans:",
        "    - { name: v7, id: 7, link: { vendor: '15b3' } }",
        "sriov:",
        "  - { pf: { name: ens9 }, numVfs: 1 }",
      ].join("\n"),
    );
    expect(paths(r.errors)).toEqual([
      "network.bridges[0].uplink",
      "network.bridges[0].ports[0]",
      "network.bonds[0].interfaces[0]",
      "network.vlans[0].link",
      "sriov[0].pf",
    ]);
    expect(r.errors[0]?.message).toMatch(
      /^no NIC matches; candidates:\n {2}eno1: driver e1000e != mlx5_core\n/,
    );
    expect(r.errors[0]?.message).toContain("enp5s0: driver i40e != mlx5_core");
  });

  it("a passthrough device sharing an IOMMU group with the management NIC is refused (bridges exempt)", () => {
    const r = check(`passthrough:\n  - device: { address: "${LAB.audioPci}" }`);
    expect(r.errors).toEqual([
      {
        path: "passthrough[0].device",
        message: `${LAB.audioPci} shares IOMMU group 20 with the management NIC eno1 (${LAB.mgmtPci}): the whole group goes to the guest together`,
      },
    ]);
  });

  it("a passthrough device sharing a group with the root disk's controller is refused", () => {
    const r = check(`passthrough:\n  - device: { address: "${LAB.usb}" }`);
    expect(r.errors).toEqual([
      {
        path: "passthrough[0].device",
        message: `${LAB.usb} shares IOMMU group 21 with the controller of sda, which holds root, boot (${LAB.sata}): the whole group goes to the guest together`,
      },
    ]);
  });

  it("the GPU and its audio in their own group pass", () => {
    const r = check('passthrough:\n  - device: { id: "10de:1b80" }\n  - device: { id: "10de:10f0" }');
    expect(r.findings).toEqual([]);
  });

  it("passthrough of the management NIC itself is refused", () => {
    const r = check(`passthrough:\n  - device: { address: "${LAB.mgmtPci}" }`);
    expect(r.errors).toEqual([
      {
        path: "passthrough[0].device",
        message: `${LAB.mgmtPci} is the management NIC eno1 (${LAB.mgmtPci}): passing it through would cut this host off`,
      },
    ]);
  });

  it("passthrough while the IOMMU is off: an error, or a reboot warning when the file enables it", () => {
    const off = check(`passthrough:\n  - device: { address: "${DMAR_BRIDGE.otherPci}" }`, dmar);
    expect(paths(off.errors)).toEqual(["passthrough"]);
    expect(off.errors[0]?.message).toMatch(/IOMMU, which is off on this host.*set iommu.enabled: true/);
    const on = check(
      `iommu: { enabled: true }\npassthrough:\n  - device: { address: "${DMAR_BRIDGE.otherPci}" }`,
      dmar,
    );
    expect(on.errors).toEqual([]);
    expect(on.warnings).toEqual([
      {
        path: "iommu.enabled",
        message:
          "the IOMMU is off now: the host must reboot with it enabled before passthrough devices can be bound",
      },
    ]);
  });

  it("the boot VGA on a host with a single GPU is refused; with a second GPU it is allowed", () => {
    const yaml = `passthrough:\n  - device: { address: "${VFIO.igpu}" }`;
    expect(check(yaml).errors).toEqual([]);
    const single = structuredClone(lab);
    single.pci = single.pci.filter((p) => p.address !== VFIO.gpu);
    expect(check(yaml, single).errors).toEqual([
      {
        path: "passthrough[0].device",
        message: `${VFIO.igpu} 8086:3e92 [0300] (i915) is the boot VGA and the only GPU: the host console would go dark`,
      },
    ]);
  });

  it("more VFs than sriov_totalvfs, and a PF without SR-IOV", () => {
    expect(check("sriov:\n  - { pf: { driver: igb }, numVfs: 8 }").errors).toEqual([
      {
        path: "sriov[0].numVfs",
        message: "8 VFs requested but enp3s0f0 supports at most 7 (sriov_totalvfs)",
      },
    ]);
    expect(check("sriov:\n  - { pf: { driver: i40e }, numVfs: 2 }").errors).toEqual([
      { path: "sriov[0].pf", message: "enp5s0 has no SR-IOV capability (no sriov_totalvfs)" },
    ]);
    expect(check("sriov:\n  - { pf: { driver: igb }, numVfs: 2, vfs: [{ index: 2 }] }").errors).toEqual([
      { path: "sriov[0].vfs[0].index", message: "VF 2 does not exist with numVfs 2" },
    ]);
  });

  it("SR-IOV VF changes on the management NIC are refused", () => {
    const r = check("sriov:\n  - { pf: { uplink: true }, numVfs: 0 }");
    expect(paths(r.errors)).toEqual(["sriov[0].pf", "sriov[0].pf"]);
    expect(r.errors[0]?.message).toMatch(/^eno1 is the management NIC .* would cut this host off$/);
    expect(r.errors[1]?.message).toBe("eno1 has no SR-IOV capability (no sriov_totalvfs)");
  });

  it("a pool that would wipe the disk holding / is refused", () => {
    const r = check(
      "storage:\n  pools:\n    - { name: p, type: lvm-thin, wipe: true, disks: [{ serial: PHYF000000AB480BGN }] }",
    );
    expect(r.errors).toEqual([
      { path: "storage.pools[0].disks[0]", message: "refusing to wipe sda: holds root, boot" },
    ]);
  });

  it("a wipe is refused when the report's rootDisk fact says / is on no known disk (not a warning's wording)", () => {
    const yaml =
      "storage:\n  pools:\n    - { name: p, type: lvm-thin, wipe: true, disks: [{ serial: WJG00001 }] }";
    const unknown = structuredClone(lab);
    unknown.storage = { rootDisk: { known: false, disks: [], reason: "/proc/mounts: / is on mpatha" } };
    expect(check(yaml, unknown).errors).toEqual([
      {
        path: "storage.pools[0].wipe",
        message: expect.stringContaining(
          "which disk holds the running system (/proc/mounts: / is on mpatha)",
        ),
      },
    ]);
    // A warning that reads alike decides nothing: the fact says the root disk is known.
    const worded = structuredClone(lab);
    worded.warnings.push({ path: "/proc/mounts", message: "cannot tell which disk holds /srv (/dev/x)" });
    expect(check(yaml, worded).errors).toEqual([]);
  });

  it("wiping a mounted disk, one with holders, or the boot medium is refused", () => {
    const yaml =
      "storage:\n  pools:\n    - { name: p, type: lvm-thin, wipe: true, disks: [{ serial: WJG00001 }] }";
    const variants: [(r: HostReport) => void, string][] = [
      [(r) => void r.disks[1]?.mountpoints.push("/srv"), "mounted"],
      [(r) => void r.disks[1]?.holders.push("dm-3"), "in use by another device (LVM/RAID/dm)"],
      [(r) => void r.disks[1]?.roles.push("boot-medium"), "holds boot-medium"],
    ];
    for (const [mutate, reason] of variants) {
      const report = structuredClone(lab);
      mutate(report);
      expect(check(yaml, report).errors).toEqual([
        { path: "storage.pools[0].disks[0]", message: `refusing to wipe sdb: ${reason}` },
      ]);
    }
    expect(check(yaml).errors).toEqual([]);
  });

  it("a wipe names its disks by byId or serial, on every run (the plan refuses it too)", () => {
    const loose =
      "storage:\n  pools:\n    - { name: p, type: lvm-thin, wipe: true, disks: [{ rotational: true }] }";
    const refusal = {
      path: "storage.pools[0].disks[0]",
      message: "a wipe names its disks by byId or serial (this rule picked sdb by other criteria)",
    };
    expect(check(loose).errors).toEqual([refusal]);
    const named =
      "storage:\n  pools:\n    - { name: p, type: lvm-thin, wipe: true, disks: [{ serial: WJG00001 }] }";
    expect(check(named).errors).toEqual([]);
  });

  it("requires: failing checks at fail level are errors, at warn level warnings", () => {
    const r = check(
      "requires:\n  checks:\n    iommu.enabled: fail\n    kvm.dev: warn\n    cpu.virt: warn",
      dmar,
    );
    expect(r.errors).toEqual([
      {
        path: 'requires.checks["iommu.enabled"]',
        message: expect.stringMatching(/^check iommu.enabled is warn: /),
      },
    ]);
    expect(paths(r.warnings)).toEqual(['requires.checks["cpu.virt"]']); // kvm.dev is a note: it passes
    expect(check("requires:\n  checks:\n    iommu.enabled: fail").errors).toEqual([]);
  });

  it("requires: minNics, minMemoryGiB and minVfs", () => {
    const r = check(
      [
        "requires:",
        "  minNics: { count: 2, minSpeedMbps: 10000, level: fail }",
        "  minMemoryGiB: { value: 128, level: warn }",
        "  minVfs: { count: 8, level: fail }",
      ].join("\n"),
    );
    expect(r.errors).toEqual([
      { path: "requires.minNics", message: "2 NICs at 10000 Mb/s or more required, this host has 0" },
      { path: "requires.minVfs", message: "8 SR-IOV VFs required, this host supports 7" },
    ]);
    expect(r.warnings).toEqual([
      { path: "requires.minMemoryGiB", message: "128 GiB of memory required, this host has 62.8 GiB" },
    ]);
    expect(
      check("requires:\n  minNics: { count: 3, level: fail }\n  minVfs: { count: 7, level: fail }").errors,
    ).toEqual([]);
  });

  it("a vlan link naming a bridge or bond not defined in the file", () => {
    const r = check("network:\n  bridges: [{ name: br0 }]\n  vlans:\n    - { name: v20, id: 20, link: br1 }");
    expect(r.errors).toEqual([
      {
        path: "network.vlans[0].link",
        message:
          '"br1" is not a bridge or bond defined in this file (defined: br0); to put the VLAN on a NIC, give a match rule',
      },
    ]);
  });

  it("duplicate bridge/bond/vlan names, and a bridge port naming an undefined bond", () => {
    const r = check(
      [
        "network:",
        "  bridges: [{ name: br0, ports: [{ bond: bond9 }] }]",
        "  bonds: [{ name: br0, mode: active-backup, interfaces: [{ name: enp5s0 }] }]",
      ].join("\n"),
    );
    expect(r.errors).toEqual([
      { path: "network.bonds[0].name", message: 'duplicate interface name "br0" (also network.bridges[0])' },
      { path: "network.bridges[0].ports[0].bond", message: 'no bond named "bond9" in network.bonds' },
    ]);
  });

  it("a NIC claimed by two bridges/bonds", () => {
    const r = check(
      [
        "network:",
        "  bridges:",
        "    - { name: br0, uplink: { uplink: true } }",
        "  bonds:",
        "    - { name: bond0, mode: active-backup, interfaces: [{ name: eno1 }, { driver: i40e }] }",
      ].join("\n"),
    );
    expect(r.errors).toEqual([
      {
        path: "network.bonds[0].interfaces[0]",
        message: "eno1 is already claimed by network.bridges[0].uplink",
      },
      {
        path: "network.bonds[0].interfaces[0]",
        message:
          "eno1 is the management NIC (it carries the default route): bonding it moves the address this session uses",
      },
    ]);
  });

  it("is fast: parse + validate of the complete example takes well under 50 ms (median)", async () => {
    const { readFileSync } = await import("node:fs");
    const text = readFileSync(TEMPLATE, "utf8");
    const times: number[] = [];
    for (let i = 0; i < 21; i++) {
      const t = performance.now();
      validateAnswer(parseAnswerText(text, "a.yaml"), lab);
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    expect(times[10]).toBeLessThan(50);
  });
});

describe("kvmstrap answer (in process)", () => {
  let dir: string;
  let reportFile: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-answer-cli-"));
    reportFile = path.join(dir, "report.json");
    writeFileSync(reportFile, JSON.stringify({ report: lab, checks: [], verdict: "ready" }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function run(argv: string[]) {
    let out = "";
    let err = "";
    const o = vi.spyOn(process.stdout, "write").mockImplementation((s) => {
      out += String(s);
      return true;
    });
    const e = vi.spyOn(process.stderr, "write").mockImplementation((s) => {
      err += String(s);
      return true;
    });
    try {
      const code = await main(argv);
      return { code, out, err };
    } finally {
      o.mockRestore();
      e.mockRestore();
    }
  }

  it("validate: the example against a saved {report, checks} object exits 0", async () => {
    const r = await run(["answer", "validate", TEMPLATE, "--report", reportFile]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${TEMPLATE}: valid (0 errors, 0 warnings)\n`);
  });

  it("validate: semantic errors exit 2, each at the line of its key", async () => {
    const f = path.join(dir, "bad.yaml");
    writeFileSync(
      f,
      `version: 1\nsriov:\n  - pf:\n      driver: igb\n    numVfs: 9\npassthrough:\n  - device:\n      address: "${LAB.mgmtPci}"\n`,
    );
    const bare = path.join(dir, "bare.json");
    writeFileSync(bare, JSON.stringify(lab));
    const r = await run(["answer", "validate", f, "--report", bare]);
    expect(r.code).toBe(2);
    expect(r.err.split("\n")).toEqual([
      `${f}:5:13: sriov[0].numVfs: 9 VFs requested but enp3s0f0 supports at most 7 (sriov_totalvfs)`,
      `${f}:8:7: passthrough[0].device: ${LAB.mgmtPci} is the management NIC eno1 (${LAB.mgmtPci}): passing it through would cut this host off`,
      "  fix: pass through another NIC; the one carrying the default route stays with the host",
      `kvmstrap: ${f}: invalid (2 errors, 0 warnings)`,
      "",
    ]);
    const json = await run(["answer", "validate", f, "--report", bare, "--json"]);
    expect(json.code).toBe(2);
    const data = JSON.parse(json.out) as {
      valid: boolean;
      errors: { line: number; path: string; ruleId: string; remediation: string | null }[];
    };
    expect(data.valid).toBe(false);
    expect(data.errors.map((e) => [e.line, e.path])).toEqual([
      [5, "sriov[0].numVfs"],
      [8, "passthrough[0].device"],
    ]);
    // Scripts get the rule that fired and what to do about it.
    expect(data.errors.every((e) => /^[a-z]+\.[a-z.-]+$/.test(e.ruleId))).toBe(true);
    expect(data.errors[1]?.remediation).toMatch(/another NIC/);
  });

  it("explain prints each rule's candidates; --json gives the same as data", async () => {
    const r = await run(["answer", "explain", TEMPLATE, "--report", reportFile]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("network.bridges[0].uplink (nic: uplink: true)\n  + eno1\n");
    const j = await run(["answer", "explain", TEMPLATE, "--report", reportFile, "--json"]);
    const data = JSON.parse(j.out) as { rules: { path: string; chosen: string[] }[] };
    expect(data.rules.map((x) => x.path)).toContain("storage.pools[1].disks[0]");
  });

  it("a bad --report file, a missing file argument and schema", async () => {
    const junk = path.join(dir, "junk.json");
    writeFileSync(junk, '{"hello": 1}');
    const r = await run(["answer", "validate", TEMPLATE, "--report", junk]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/not a kvmstrap host report/);
    expect((await run(["answer", "validate"])).code).toBe(2);
    // --unattended changed nothing (a wipe needs byId or serial on every run): it is gone, not dead.
    const u = await run(["answer", "validate", TEMPLATE, "--report", reportFile, "--unattended"]);
    expect([u.code, u.err]).toEqual([2, expect.stringMatching(/unattended/)]);
    const s = await run(["answer", "schema"]);
    expect(s.code).toBe(0);
    expect(JSON.parse(s.out)).toHaveProperty("properties.version");
  });

  it("validates offline against a --root snapshot tree", async () => {
    const fx = buildDmarBridgeHost().file("/etc/netplan/50-cloud-init.yaml", "network: {version: 2}\n");
    try {
      const f = path.join(dir, "uplink.yaml");
      writeFileSync(f, "version: 1\nnetwork:\n  bridges:\n    - name: br0\n      uplink: { uplink: true }\n");
      const r = await run(["answer", "validate", f, "--root", fx.root]);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
    } finally {
      fx.cleanup();
    }
  });
});
