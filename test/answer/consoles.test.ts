// The consoles: section: the rule set (no wildcard, TLS on a network, the management address from
// the answer), the plan it turns into (the PKI made, qemu.conf's settings in a managed block whose
// undo restores the file, libvirtd restarted after the write and after the undo), and the
// <graphics> elements the domain XML gets, with no secret in them.
import { beforeAll, describe, expect, it } from "vitest";
import { parseAnswerText } from "../../src/answer/load.js";
import { validateAnswer } from "../../src/answer/validate.js";
import type { HostReport } from "../../src/detect/types.js";
import { consoleQemuSettings, QEMU_CONF, withQemuSettings } from "../../src/plan/console-plan.js";
import { buildPlan } from "../../src/plan/index.js";
import { renderDomainXml } from "../../src/vm/domain-xml.js";
import { labReport } from "./hosts.js";

let lab: HostReport;
beforeAll(async () => {
  lab = await labReport();
});

const NET = `network:
  bridges:
    - { name: br0, uplink: { uplink: true }, addresses: [192.0.2.10/24], gateway: 192.0.2.1 }
`;
const answer = (consoles: string, net = NET) =>
  parseAnswerText(`version: 1\n${net}consoles: ${consoles}\n`, "test.yaml");
const findings = (consoles: string, net = NET) =>
  validateAnswer(answer(consoles, net), lab).findings.map(
    (f) => `${f.level} ${f.ruleId} ${f.path}: ${f.message}`,
  );

describe("the consoles rules", () => {
  it("VNC and SPICE with TLS on the management address pass", () => {
    expect(
      findings("{ vnc: true, spice: true, listen: 192.0.2.10 }").filter((f) => f.includes("consoles")),
    ).toEqual([]);
  });

  it("0.0.0.0 and :: are refused, and say so when TLS is off", () => {
    expect(findings("{ vnc: true, listen: 0.0.0.0 }")).toContainEqual(
      expect.stringMatching(
        /^error consoles.wildcard consoles.listen: 0.0.0.0 listens on every address of the host: /,
      ),
    );
    expect(findings("{ vnc: true, listen: '::', tls: false }")).toContainEqual(
      expect.stringMatching(
        /^error consoles.wildcard consoles.listen: :: listens on every address of the host, without TLS/,
      ),
    );
  });

  it("a network address without TLS is refused; loopback without TLS is a warning", () => {
    expect(findings("{ vnc: true, listen: 192.0.2.10, tls: false }")).toContainEqual(
      expect.stringMatching(/^error consoles.tls consoles.tls: a console on 192.0.2.10 without TLS/),
    );
    const lo = findings("{ vnc: true, listen: 127.0.0.1, tls: false }").filter((f) => f.includes("consoles"));
    expect(lo).toEqual([expect.stringMatching(/^warning consoles.tls consoles.tls: .*SSH tunnel/)]);
  });

  it("an address that is not the management address is refused; no static address is a warning", () => {
    expect(findings("{ vnc: true, listen: 192.0.2.99 }")).toContainEqual(
      "error consoles.management consoles.listen: 192.0.2.99 is not the management address (192.0.2.10)",
    );
    expect(findings("{ vnc: true, listen: 192.0.2.99 }", "")).toContainEqual(
      expect.stringMatching(/^warning consoles.management consoles.listen: 192.0.2.99 cannot be confirmed/),
    );
  });

  // The lab's eno1 (in br0, the default route) as a DHCP-configured host has it: what detect reads
  // with `ip -j addr`; the X710 port carries a second address off the management network.
  const withAddresses = (): HostReport => {
    const nics = lab.nics.map((n) => {
      if (n.name === "br0" || n.name === "eno1")
        return {
          ...n,
          addresses:
            n.name === "br0"
              ? [
                  { family: "inet" as const, address: "198.51.100.7", prefixLength: 24, scope: "global" },
                  { family: "inet6" as const, address: "2001:db8::7", prefixLength: 64, scope: "global" },
                ]
              : [],
        };
      if (n.name !== null && !n.management)
        return {
          ...n,
          addresses: [{ family: "inet" as const, address: "203.0.113.5", prefixLength: 24, scope: "global" }],
        };
      return n;
    });
    return { ...lab, nics };
  };
  const onHost = (consoles: string, report: HostReport) =>
    validateAnswer(answer(consoles, ""), report)
      .findings.filter((f) => f.ruleId.startsWith("consoles."))
      .map((f) => `${f.level} ${f.ruleId} ${f.path}: ${f.message}`);

  it("listen is an address of the host's management interface (from the report): it passes", () => {
    expect(lab.nics.find((n) => n.name === "br0")?.management).toBe(true);
    expect(onHost("{ vnc: true, listen: 198.51.100.7 }", withAddresses())).toEqual([]);
    expect(onHost("{ spice: true, listen: '2001:db8::7' }", withAddresses())).toEqual([]);
    // Still never the wildcard, whatever the host's addresses.
    expect(onHost("{ vnc: true, listen: 0.0.0.0 }", withAddresses())).toContainEqual(
      expect.stringMatching(/^error consoles.wildcard /),
    );
  });

  it("listen is an address the host does not have, or one off the management interface: refused", () => {
    expect(onHost("{ vnc: true, listen: 198.51.100.99 }", withAddresses())).toEqual([
      "error consoles.management consoles.listen: 198.51.100.99 is not an address of this host (management addresses: br0 198.51.100.7, br0 2001:db8::7)",
    ]);
    const other = withAddresses().nics.find(
      (n) => Array.isArray(n.addresses) && n.addresses.length && !n.management,
    );
    expect(onHost("{ vnc: true, listen: 203.0.113.5 }", withAddresses())).toEqual([
      `error consoles.management consoles.listen: 203.0.113.5 is on ${other?.name}, which does not carry the default route (management addresses: br0 198.51.100.7, br0 2001:db8::7)`,
    ]);
  });

  it("the answer's static management address wins over the host's current one", () => {
    expect(findings("{ vnc: true, listen: 192.0.2.10 }").filter((f) => f.includes("consoles"))).toEqual([]);
    expect(
      validateAnswer(answer("{ vnc: true, listen: 198.51.100.7 }"), withAddresses()).findings.map(
        (f) => `${f.level} ${f.ruleId}: ${f.message}`,
      ),
    ).toContainEqual("error consoles.management: 198.51.100.7 is not the management address (192.0.2.10)");
  });
});

describe("the consoles plan", () => {
  const current = new Map([
    [QEMU_CONF, '# qemu.conf\n#vnc_tls = 1\nvnc_listen = "0.0.0.0"\nuser = "libvirt-qemu"\n'],
  ]);
  const planOf = (consoles: string, cur = current) => buildPlan(lab, answer(consoles), cur);

  it("makes the PKI, writes qemu.conf's TLS settings in a managed block and restarts libvirtd", () => {
    const plan = planOf("{ vnc: true, spice: true, listen: 192.0.2.10 }");
    const ids = plan.actions.map((a) => a.id).filter((id) => id.startsWith("consoles."));
    expect(ids).toEqual([
      "consoles.pki",
      "consoles.libvirtd-restart-on-undo",
      "consoles.qemu-conf",
      "consoles.libvirtd-restart",
    ]);
    const pki = plan.actions.find((a) => a.id === "consoles.pki");
    expect(pki).toMatchObject({
      kind: "run-command",
      argv: ["kvmstrap", "pki", "init", "--address", "192.0.2.10"],
      check: ["kvmstrap", "pki", "status"],
    });
    const conf = plan.actions.find((a) => a.id === "consoles.qemu-conf");
    if (conf?.kind !== "write-file") throw new Error("no qemu.conf action");
    expect(conf.mode).toBe(0o600);
    expect(conf.previous).toBe(current.get(QEMU_CONF));
    expect(conf.content).toContain('#kvmstrap-replaced# vnc_listen = "0.0.0.0"');
    expect(conf.content).toContain("#vnc_tls = 1\n"); // a comment stays as it was
    expect(conf.content).toContain('user = "libvirt-qemu"');
    const block = conf.content.slice(conf.content.indexOf("# BEGIN kvmstrap consoles"));
    expect(block).toContain('vnc_listen = "192.0.2.10"');
    expect(block).toContain("vnc_tls = 1\n");
    expect(block).toContain('vnc_tls_x509_cert_dir = "/etc/pki/libvirt-vnc"');
    expect(block).toContain("vnc_tls_x509_verify = 1\n");
    expect(block).toContain("spice_tls = 1\n");
    expect(block).toContain('spice_tls_x509_cert_dir = "/etc/pki/libvirt-spice"');
    const restart = plan.actions.find((a) => a.id === "consoles.libvirtd-restart-on-undo");
    expect(restart).toMatchObject({ undo: ["systemctl", "try-restart", "libvirtd.service"] });
  });

  it("is converged once qemu.conf holds the block, and dropping the consoles restores the file", () => {
    const consoles = answer("{ vnc: true, listen: 192.0.2.10 }").consoles;
    if (!consoles) throw new Error("no consoles section");
    const settings = consoleQemuSettings(consoles);
    const written = withQemuSettings(current.get(QEMU_CONF) ?? "", settings);
    const again = planOf("{ vnc: true, listen: 192.0.2.10 }", new Map([[QEMU_CONF, written]]));
    expect(again.actions.map((a) => a.id).filter((id) => id.startsWith("consoles."))).toEqual([
      "consoles.pki",
    ]); // its check decides
    expect(withQemuSettings(written, [])).toBe(current.get(QEMU_CONF));
  });

  it("plans nothing for a refused console", () => {
    const plan = planOf("{ vnc: true, listen: 0.0.0.0 }");
    expect(plan.actions.filter((a) => a.id.startsWith("consoles."))).toEqual([]);
    expect(plan.refusals.map((r) => r.path)).toContain("consoles.listen");
  });
});

describe("the domain's <graphics>", () => {
  const spec = {
    name: "vm1",
    domainType: "qemu" as const,
    vcpus: 1,
    memoryMiB: 256,
    disk: { path: "/var/lib/vm1.qcow2", format: "qcow2" as const },
    nics: [],
    serialLog: "/var/log/vm1.log",
  };
  it("VNC and SPICE on the listen address, ports by libvirt, SPICE secure only, no password", () => {
    const xml = renderDomainXml({
      ...spec,
      graphics: { vnc: true, spice: true, listen: "192.0.2.10", tls: true },
    });
    expect(xml).toContain('<graphics type="vnc" port="-1" autoport="yes" listen="192.0.2.10">');
    expect(xml).toContain('<graphics type="spice" autoport="yes" listen="192.0.2.10" defaultMode="secure">');
    expect(xml.match(/<listen type="address" address="192.0.2.10"\/>/g)).toHaveLength(2);
    expect(xml).not.toMatch(/passwd|0\.0\.0\.0/);
    expect(renderDomainXml(spec)).not.toContain("<graphics");
  });
});

describe("the answer's VMs get the consoles", () => {
  const KEY =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@kvmstrap";
  const VMS = `vms:\n  - { name: web1, image: debian-12, vcpus: 1, memoryMiB: 512, diskGiB: 5, user: { name: debian, sshKeys: ["${KEY}"] } }\n`;
  const domainOf = (consoles: string) => {
    const plan = buildPlan(lab, parseAnswerText(`version: 1\n${NET}${VMS}consoles: ${consoles}\n`, "t.yaml"));
    const define = plan.actions.find((a) => a.kind === "libvirt" && a.op === "define-domain");
    if (define?.kind !== "libvirt" || define.op !== "define-domain")
      throw new Error("no define-domain action");
    return define.xml;
  };
  it("a VM's domain has the <graphics> of the consoles section", () => {
    const xml = domainOf("{ vnc: true, spice: true, listen: 192.0.2.10 }");
    expect(xml).toContain('<graphics type="vnc" port="-1" autoport="yes" listen="192.0.2.10">');
    expect(xml).toContain('<graphics type="spice" autoport="yes" listen="192.0.2.10" defaultMode="secure">');
  });
  it("a refused consoles section gives the VMs no console at all", () => {
    expect(domainOf("{ vnc: true, listen: 0.0.0.0 }")).not.toContain("<graphics");
  });
});
