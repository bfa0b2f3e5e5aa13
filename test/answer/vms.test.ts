// The answer file's vms: section: the schema (strict, located errors), the validation rules against
// the lab host, and vmSpecsFromAnswer turning entries into the VmSpecs deployVm takes.
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AnswerError, parseAnswerSource, parseAnswerText } from "../../src/answer/load.js";
import { parsePath } from "../../src/answer/positions.js";
import { answerJsonSchema } from "../../src/answer/schema.js";
import { validateAnswer } from "../../src/answer/validate.js";
import type { HostReport } from "../../src/detect/types.js";
import { buildPlan } from "../../src/plan/index.js";
import { DEFAULT_TEMPLATE_DIR } from "../../src/vm/cloud-init.js";
import { OVMF_CODE, vmSpecsFromAnswer } from "../../src/vm/from-answer.js";
import { SRIOV, VFIO } from "../helpers/sysfs-fixture.js";
import { LAB, labReport } from "./hosts.js";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@kvmstrap";

let lab: HostReport;
let dir: string;
beforeAll(async () => {
  lab = await labReport();
  dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-vms-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A VM entry in flow style, with overrides appended as extra keys. */
const vm = (name: string, extra = "", image = "debian-12") =>
  `  - { name: ${name}, image: ${image}, vcpus: 2, memoryMiB: 1024, diskGiB: 10, user: { name: debian, sshKeys: ["${KEY}"] }${extra ? `, ${extra}` : ""} }`;
const answer = (yaml: string) => parseAnswerText(`version: 1\n${yaml}`, "test.yaml");
const check = (yaml: string) => validateAnswer(answer(yaml), lab, { baseDir: dir });
const paths = (issues: { path: string }[]) => issues.map((i) => i.path);

describe("the vms: schema", () => {
  it("an unknown key in a VM is an error at its path and line", () => {
    const text = ["version: 1", "vms:", vm("web1"), "  - name: web2", "    imgae: debian-12"].join("\n");
    const e = (() => {
      try {
        parseAnswerSource(text, "a.yaml");
      } catch (x) {
        return x as AnswerError;
      }
      throw new Error("should not parse");
    })();
    expect(e).toBeInstanceOf(AnswerError);
    const typo = e.issues.find((i) => i.path === "vms[1].imgae");
    expect(typo).toMatchObject({ line: 5, column: 5, message: 'unknown key "imgae"; did you mean "image"?' });
  });

  it("an unknown key inside a NIC, and a NIC of no known kind, are errors at their paths", () => {
    const bad = (nics: string) => {
      try {
        answer(`vms:\n${vm("web1", `nics: [${nics}]`)}`);
      } catch (x) {
        return (x as AnswerError).issues.map((i) => `${i.path}: ${i.message}`);
      }
      throw new Error("should not parse");
    };
    expect(bad("{ bridge: br0, vlanId: 5 }")).toEqual([
      'vms[0].nics[0].vlanId: unknown key "vlanId"; did you mean "vlan"?',
    ]);
    expect(bad("{ macvtap: { name: eno1 }, mode: loud }")[0]).toMatch(/^vms\[0\]\.nics\[0\]\.mode: /);
  });

  it("fills defaults: one NIC on the libvirt network default, no sudo unless asked", () => {
    const a = answer(`vms:\n${vm("web1")}`);
    expect(a.vms[0]?.nics).toEqual([{ network: "default" }]);
    expect(a.vms[0]?.user).toEqual({ name: "debian", sshKeys: [KEY], sudo: false });
  });

  it("the JSON Schema describes a VM entry, strictly", () => {
    const s = answerJsonSchema() as {
      properties: { vms: { items: { properties: Record<string, unknown>; additionalProperties: unknown } } };
    };
    const item = s.properties.vms.items;
    expect(item.additionalProperties).toBe(false);
    expect(Object.keys(item.properties)).toEqual(
      expect.arrayContaining(["name", "image", "template", "user", "nics", "passthrough", "uefi", "pin"]),
    );
  });
});

describe("validating vms against the lab host", () => {
  it("a valid section: no errors", () => {
    const r = check(
      [
        "network:",
        "  bridges: [{ name: br1, ports: [{ name: enp5s0 }] }]",
        `sriov: [{ pf: { name: ${SRIOV.pfName} }, numVfs: 2 }]`,
        // The GPU's group passes whole: its audio function goes to vfio-pci too.
        `passthrough: [{ device: { address: "${VFIO.gpu}" } }, { device: { address: "${VFIO.audio}" } }]`,
        "vms:",
        vm(
          "web1",
          `nics: [{ bridge: br0 }, { bridge: br1 }, { sriov: { name: ${SRIOV.pfName} } }, { macvtap: { name: enp5s0 } }]`,
        ),
        vm("web2", `passthrough: [{ address: "${VFIO.gpu}" }]`),
      ].join("\n"),
    );
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
  });

  it("duplicate VM names", () => {
    const r = check(["vms:", vm("web1"), vm("web2"), vm("web1")].join("\n"));
    expect(r.errors).toEqual([{ path: "vms[2].name", message: 'duplicate VM name "web1" (also vms[0])' }]);
  });

  it("a bridge NIC naming neither a bridge of network.bridges nor one on the host", () => {
    const r = check(["vms:", vm("web1", "nics: [{ bridge: br0 }, { bridge: br7 }]")].join("\n"));
    expect(r.errors).toEqual([
      {
        path: "vms[0].nics[1].bridge",
        message: "bridge br7 is neither defined in network.bridges nor present on this host (it has br0)",
      },
    ]);
  });

  it("a passthrough device listed in a second VM", () => {
    const r = check(
      [
        `passthrough: [{ device: { id: "10de:1b80" } }]`,
        "vms:",
        vm("web1", `passthrough: [{ id: "10de:1b80" }]`),
        vm("web2", `passthrough: [{ address: "${VFIO.audio}" }, { address: "${VFIO.gpu}" }]`),
      ].join("\n"),
    );
    // passthrough[0] leaves the GPU's audio function behind in its IOMMU group (the group goes whole).
    expect(paths(r.errors)).toEqual(["passthrough[0].device", "vms[1].passthrough[1]"]);
    expect(r.errors[1]?.message).toBe(
      `${VFIO.gpu} is also passed through to VM web1 (vms[0].passthrough[0]): a device goes to one VM only`,
    );
    // The audio function is not bound by the host's passthrough section: a warning, not an error.
    expect(paths(r.warnings)).toEqual(["vms[1].passthrough[0]"]);
  });

  it("an sriov NIC whose PF has no sriov entry", () => {
    const r = check(["vms:", vm("web1", `nics: [{ sriov: { driver: igb } }]`)].join("\n"));
    expect(paths(r.errors)).toEqual(["vms[0].nics[0].sriov"]);
    expect(r.errors[0]?.message).toMatch(/^enp3s0f0 has no entry in sriov:/);
  });

  it("an sriov or macvtap NIC rule that matches nothing lists the candidates", () => {
    const r = check(
      ["vms:", vm("web1", `nics: [{ sriov: { driver: mlx5_core } }, { macvtap: { name: eth9 } }]`)].join(
        "\n",
      ),
    );
    expect(paths(r.errors)).toEqual(["vms[0].nics[0].sriov", "vms[0].nics[1].macvtap"]);
    expect(r.errors[0]?.message).toMatch(/^no NIC matches; candidates:/);
  });

  it("an unknown template directory, and a directory that is not a template", () => {
    mkdirSync(path.join(dir, "empty"), { recursive: true });
    const r = check(["vms:", vm("web1", "template: nowhere"), vm("web2", "template: empty")].join("\n"));
    expect(r.errors).toEqual([
      { path: "vms[0].template", message: `unknown template: ${path.join(dir, "nowhere")} does not exist` },
      {
        path: "vms[1].template",
        message: `${path.join(dir, "empty")} is not a cloud-init template directory: it has no user-data.yaml, meta-data.yaml, network-config.yaml`,
      },
    ]);
  });

  it("each issue's path locates its line in the file (what answer validate prints as file:line:col)", () => {
    const text = ["version: 1", "vms:", vm("web1"), "  - name: web1", "    image: debian-12", "    vcpus: 1"];
    text.push("    memoryMiB: 512", "    diskGiB: 5", "    user: { name: debian }", "    nics:");
    text.push("      - bridge: nobr0", "    template: ./missing");
    const src = parseAnswerSource(text.join("\n"), "a.yaml");
    const r = validateAnswer(src.answer, lab, { baseDir: dir });
    const at = r.errors.map((e) => [e.path, src.map.locate(parsePath(e.path))?.line]);
    expect(at).toEqual([
      ["vms[1].name", 4],
      ["vms[1].nics[0].bridge", 11],
      ["vms[1].template", 12],
    ]);
  });
});

describe("what the VMs ask of the host, at validate and plan time (the deploy preflight's checks)", () => {
  const host = (change: (r: HostReport) => void) => {
    const r = structuredClone(lab);
    change(r);
    return r;
  };
  const two = (extra: string) => answer(["vms:", vm("web1", extra), vm("web2", extra)].join("\n"));

  it("hugepages: refused on a host with no hugepage size, and when the VMs together outgrow the pool", () => {
    const none = validateAnswer(two("hugepages: true"), lab, { baseDir: dir });
    expect(none.errors).toEqual([
      {
        path: "vms[0].hugepages",
        message: "VM web1: hugepages asked for, but this host reports no hugepage size",
      },
      {
        path: "vms[1].hugepages",
        message: "VM web2: hugepages asked for, but this host reports no hugepage size",
      },
    ]);
    const pool = host((r) => {
      r.memory.hugepageSizeKiB = 2048;
      r.memory.hugepages["2048kB"] = { total: 768, free: 768 };
    });
    const r = validateAnswer(two("hugepages: true"), pool, { baseDir: dir });
    expect(r.errors).toEqual([
      {
        path: "vms[1].hugepages",
        message:
          "VM web2: needs 512 free 2048 KiB hugepages for 1024 MiB, 256 free on this host after the 512 other VMs take",
      },
    ]);
    // The plan refuses the VM that does not fit and deploys the other.
    const plan = buildPlan(pool, two("hugepages: true"), new Map(), { baseDir: dir });
    expect(plan.refusals.map((x) => x.path)).toEqual(["vms[1].hugepages"]);
    expect(plan.actions.filter((x) => x.id.endsWith(".define")).map((x) => x.id)).toEqual(["vm.web1.define"]);
  });

  it("pin: the plan allocates CPUs across the answer's VMs (not vCPU 0 of every VM on CPU 0)", () => {
    const node = host((r) => {
      r.memory.numa = [{ id: 0, cpus: "0-3", memoryKiB: 32 * 1024 ** 2, hugepages: {}, distances: [10] }];
    });
    const plan = buildPlan(node, two("pin: true"), new Map(), { baseDir: dir });
    const pins = plan.actions.flatMap((x) =>
      x.kind === "libvirt" && x.op === "define-domain"
        ? [[...(x.xml?.matchAll(/<vcpupin vcpu="\d+" cpuset="(\d+)"/g) ?? [])].map((m) => Number(m[1]))]
        : [],
    );
    expect(pins).toEqual([
      [0, 1],
      [2, 3],
    ]);
    expect(validateAnswer(two("pin: true"), node, { baseDir: dir }).warnings).toEqual([]);
  });
});

describe("vmSpecsFromAnswer", () => {
  it("resolves NICs, passthrough, the template and the options into a VmSpec", () => {
    const tpl = path.join(dir, "tpl");
    cpSync(DEFAULT_TEMPLATE_DIR, tpl, { recursive: true });
    const a = answer(
      [
        `sriov: [{ pf: { name: ${SRIOV.pfName} }, numVfs: 2 }, { pf: { name: enp5s0 }, numVfs: 0, hostdevNetwork: fast-vfs }]`,
        `passthrough: [{ device: { id: "10de:1b80" } }, { device: { id: "10de:10f0" } }]`,
        "vms:",
        vm(
          "render01",
          [
            "template: tpl",
            "hostname: render01.example.net",
            `nics: [{ bridge: br0, mac: "52:54:00:aa:bb:cc" }, { sriov: { driver: igb } }, { network: default }, { macvtap: { uplink: true }, mode: passthrough }]`,
            `passthrough: [{ id: "10de:1b80" }, { id: "10de:10f0" }]`,
            "uefi: true, hugepages: true, pin: true, packages: [htop], runcmd: [[touch, /ok]]",
          ].join(", "),
        ),
        vm("plain"),
      ].join("\n"),
    );
    // hugepages: true needs free pages of the default size (vms.hugepages): 512 x 2 MiB here.
    const pages = structuredClone(lab);
    pages.memory.hugepageSizeKiB = 2048;
    pages.memory.hugepages["2048kB"] = { total: 512, free: 512 };
    const { specs, errors } = vmSpecsFromAnswer(a, pages, { baseDir: dir });
    expect(errors).toEqual([]);
    expect(specs[0]).toEqual({
      name: "render01",
      image: "debian-12",
      vcpus: 2,
      memoryMiB: 1024,
      diskGiB: 10,
      user: { name: "debian", sshKeys: [KEY], sudo: false },
      template: tpl,
      hostname: "render01.example.net",
      nics: [
        { kind: "bridge", bridge: "br0", mac: "52:54:00:aa:bb:cc" },
        { kind: "hostdev-network", network: `${SRIOV.pfName}-vfs` },
        { kind: "network", network: "default" },
        { kind: "macvtap", dev: LAB.mgmt, mode: "passthrough" },
      ],
      hostdevs: [VFIO.gpu, VFIO.audio],
      uefi: { loader: OVMF_CODE, nvram: "/var/lib/libvirt/qemu/nvram/render01_VARS.fd" },
      hugepages: true,
      pin: true,
      packages: ["htop"],
      runcmd: [["touch", "/ok"]],
    });
    // The plain entry: the default template (no template key, so it hashes as a flag deploy does).
    expect(specs[1]).toEqual({
      name: "plain",
      image: "debian-12",
      vcpus: 2,
      memoryMiB: 1024,
      diskGiB: 10,
      user: { name: "debian", sshKeys: [KEY], sudo: false },
      nics: [{ kind: "network", network: "default" }],
    });
  });

  it("an sriov NIC takes the PF's hostdevNetwork when its sriov entry names one", () => {
    const a = answer(
      [
        `sriov: [{ pf: { driver: igb }, numVfs: 2, hostdevNetwork: sriov-pool }]`,
        "vms:",
        vm("web1", `nics: [{ sriov: { name: "enp3s*" } }]`),
      ].join("\n"),
    );
    const { specs, errors } = vmSpecsFromAnswer(a, lab);
    expect(errors).toEqual([]);
    expect(specs[0]?.nics).toEqual([{ kind: "hostdev-network", network: "sriov-pool" }]);
  });

  it("an entry with an error yields no spec; the error carries its path", () => {
    const a = answer(["vms:", vm("ok1"), vm("bad", "template: /nonexistent/tpl")].join("\n"));
    const { specs, errors } = vmSpecsFromAnswer(a, lab);
    expect(specs.map((s) => s.name)).toEqual(["ok1"]);
    expect(errors).toEqual([
      { path: "vms[1].template", message: "unknown template: /nonexistent/tpl does not exist" },
    ]);
  });

  it("with a cache directory: a named image must be cached, a path must exist", () => {
    const cache = path.join(dir, "cache");
    mkdirSync(cache, { recursive: true });
    writeFileSync(
      path.join(cache, "index.json"),
      JSON.stringify({ version: 1, images: { "debian-12": {} } }),
    );
    const a = answer(
      ["vms:", vm("web1"), vm("web2", "", "ubuntu-24.04"), vm("web3", "", "/nonexistent/base.qcow2")].join(
        "\n",
      ),
    );
    const { specs, errors } = vmSpecsFromAnswer(a, lab, { cacheDir: cache });
    expect(specs.map((s) => s.name)).toEqual(["web1"]);
    expect(paths(errors)).toEqual(["vms[1].image", "vms[2].image"]);
    expect(errors[0]?.message).toMatch(/unknown image "ubuntu-24.04": not in the image cache/);
  });
});

describe("explain walks the VMs' match rules too", () => {
  it("each VM's sriov and macvtap NICs and passthrough devices are explained with their candidates", async () => {
    const { explainAnswerData } = await import("../../src/answer/explain.js");
    const a = answer(
      [
        `sriov: [{ pf: { name: ${SRIOV.pfName} }, numVfs: 2 }]`,
        "vms:",
        vm("web1", `nics: [{ sriov: { name: ${SRIOV.pfName} } }, { macvtap: { name: enp5s0 } }]`),
        vm("web2", `passthrough: [{ id: "10de:1b80" }]`),
      ].join("\n"),
    );
    const data = explainAnswerData(a, lab);
    expect(data.map((e) => [e.path, e.chosen.length ? e.chosen[0]?.split(" ")[0] : e.error])).toEqual([
      ["sriov[0].pf", SRIOV.pfName],
      ["vms[0].nics[0].sriov", SRIOV.pfName],
      ["vms[0].nics[1].macvtap", "enp5s0"],
      ["vms[1].passthrough[0]", VFIO.gpu],
    ]);
    // The rule set's word on each choice comes with it: the GPU is not bound at boot.
    expect(data[3]?.findings.map((f) => [f.level, f.ruleId])).toEqual([["warning", "vms.passthrough"]]);
  });
});
