// The hardening: section as plan actions: qemu.conf's seccomp_sandbox and libvirtd.conf's TLS-only
// remote access in managed blocks whose inverse is the file as it was, Debian 12's socket units
// switched with checks (a step found in place is skipped and never undone), the PKI for libvirtd's
// certificate, libvirtd restarted only when a file changed; a second plan on the result is empty;
// the consoles' qemu.conf block and this one live side by side.
import { beforeAll, describe, expect, it } from "vitest";
import { parseAnswerText } from "../../src/answer/load.js";
import { parseLibvirtConf } from "../../src/app/libvirt-conf.js";
import { hardeningChecks } from "../../src/app/verify-hardening.js";
import type { HostReport } from "../../src/detect/types.js";
import type { Action } from "../../src/plan/actions.js";
import { withQemuSettings } from "../../src/plan/console-plan.js";
import { HARDENING_PATHS, withHardeningBlock } from "../../src/plan/hardening-plan.js";
import { buildPlan } from "../../src/plan/index.js";
import { LIBVIRTD_SOCKETS_RESTART } from "../../src/plan/libvirtd-sockets.js";
import { labReport } from "../answer/hosts.js";

let lab: HostReport;
beforeAll(async () => {
  lab = await labReport();
});

const QEMU = '# qemu.conf\n#user = "root"\nseccomp_sandbox = 0\n';
const LIBVIRTD = '# libvirtd.conf\nlisten_tcp = 1\nauth_tcp = "none"\n';
const NET = `network:
  bridges:
    - { name: br0, uplink: { uplink: true }, addresses: [192.0.2.10/24], gateway: 192.0.2.1 }
`;

function plan(hardening: string, files: Record<string, string> = {}, extra = "") {
  const answer = parseAnswerText(`version: 1\n${extra}hardening: ${hardening}\n`, "test.yaml");
  const current = new Map<string, string | null>([
    [HARDENING_PATHS.qemuConf, QEMU],
    [HARDENING_PATHS.libvirtdConf, LIBVIRTD],
    ...Object.entries(files),
  ]);
  return buildPlan(lab, answer, current).actions.filter(
    (a) => a.id.startsWith("hardening.") || a.id.startsWith("consoles."),
  );
}
const file = (actions: Action[], id: string) => {
  const a = actions.find((x) => x.id === id);
  if (a?.kind !== "write-file") throw new Error(`${id} is not a write-file action`);
  return a;
};

describe("hardening: in the plan", () => {
  it("seccomp on and TLS-only libvirt: the PKI, both files, the sockets, one restart, in that order", () => {
    const actions = plan("{ seccompSandbox: true, remoteLibvirt: tls }");
    expect(actions.map((a) => a.id)).toEqual([
      "hardening.pki",
      "hardening.libvirtd-restart-on-undo",
      "hardening.qemu-conf",
      "hardening.libvirtd-conf",
      "hardening.tcp-socket",
      "hardening.tls-socket",
      "hardening.libvirtd-restart",
    ]);
    const qemu = file(actions, "hardening.qemu-conf");
    expect(qemu.previous).toBe(QEMU);
    expect(qemu.content).toContain("#kvmstrap-hardening# seccomp_sandbox = 0\n");
    expect(qemu.content).toMatch(
      /# BEGIN kvmstrap hardening.*\nseccomp_sandbox = 1\n# END kvmstrap hardening\n$/,
    );
    const libvirtd = file(actions, "hardening.libvirtd-conf");
    expect(libvirtd.content).toContain("#kvmstrap-hardening# listen_tcp = 1\n");
    expect(libvirtd.content).toContain(
      'listen_tcp = 0\nlisten_tls = 1\ntls_no_verify_certificate = 0\nauth_tls = "none"\n',
    );
    // The block's inverse is the file as it was, byte for byte.
    expect(withHardeningBlock(qemu.content, [])).toBe(QEMU);
    expect(withHardeningBlock(libvirtd.content, [])).toBe(LIBVIRTD);
    const tcp = actions.find((a) => a.id === "hardening.tcp-socket");
    expect(tcp).toMatchObject({
      argv: ["systemctl", "disable", "--now", "libvirtd-tcp.socket"],
      undo: ["systemctl", "enable", "libvirtd-tcp.socket"],
      check: ["sh", "-c", "! systemctl is-enabled --quiet libvirtd-tcp.socket"],
    });
    expect(actions.find((a) => a.id === "hardening.tls-socket")).toMatchObject({
      argv: ["systemctl", "enable", "libvirtd-tls.socket"],
      check: ["systemctl", "is-enabled", "--quiet", "libvirtd-tls.socket"],
    });
    // systemd starts no socket of a running libvirtd: the restart starts the enabled ones with it.
    expect(actions.find((a) => a.id === "hardening.libvirtd-restart")).toMatchObject({
      argv: LIBVIRTD_SOCKETS_RESTART,
      check: null,
    });
    expect(actions.find((a) => a.id === "hardening.libvirtd-restart-on-undo")).toMatchObject({
      undo: LIBVIRTD_SOCKETS_RESTART,
    });
    expect(actions.find((a) => a.id === "hardening.pki")).toMatchObject({
      argv: ["kvmstrap", "pki", "init"],
      check: ["kvmstrap", "pki", "status"],
    });
  });

  it("a second plan on the applied files changes no file, and restarts only where TLS does not listen", () => {
    const first = plan("{ remoteLibvirt: tls }");
    const applied = {
      [HARDENING_PATHS.qemuConf]: file(first, "hardening.qemu-conf").content,
      [HARDENING_PATHS.libvirtdConf]: file(first, "hardening.libvirtd-conf").content,
    };
    const again = plan("{ remoteLibvirt: tls }", applied);
    expect(again.map((a) => a.id)).toEqual([
      "hardening.pki",
      "hardening.tcp-socket",
      "hardening.tls-socket",
      "hardening.libvirtd-restart",
    ]);
    expect(again.at(-1)).toMatchObject({
      check: ["systemctl", "is-active", "--quiet", "libvirtd-tls.socket"],
    });
  });

  it("remoteLibvirt off: no listener at all, no PKI; seccompSandbox false leaves qemu.conf alone", () => {
    const actions = plan("{ seccompSandbox: false, remoteLibvirt: off }");
    expect(actions.map((a) => a.id)).not.toContain("hardening.qemu-conf");
    expect(actions.map((a) => a.id)).not.toContain("hardening.pki");
    expect(file(actions, "hardening.libvirtd-conf").content).toContain("listen_tcp = 0\nlisten_tls = 0\n");
    expect(actions.find((a) => a.id === "hardening.tls-socket")).toMatchObject({
      argv: ["systemctl", "disable", "--now", "libvirtd-tls.socket"],
      undo: ["systemctl", "enable", "libvirtd-tls.socket"],
    });
  });

  it("with consoles: qemu.conf gets both blocks, each kept by the other's rewrite", () => {
    const actions = plan(
      "{ seccompSandbox: true }",
      {},
      `${NET}consoles: { vnc: true, listen: 192.0.2.10 }\n`,
    );
    const consoles = file(actions, "consoles.qemu-conf");
    const ours = file(actions, "hardening.qemu-conf");
    const block = /# BEGIN kvmstrap consoles[\s\S]*# END kvmstrap consoles\n/.exec(consoles.content)?.[0];
    expect(block).toBeDefined();
    expect(ours.content).toContain(block);
    expect(ours.content).toContain("vnc_tls = 1");
    expect(ours.content).toContain("seccomp_sandbox = 1");
    // The next plan's consoles step finds its block in place and leaves ours alone.
    expect(withQemuSettings(ours.content, [])).toContain("seccomp_sandbox = 1");
    expect(withHardeningBlock(ours.content, [])).toContain("vnc_tls = 1");
    // Undo in reverse: ours restores the file as it was before the run, then the consoles' does.
    expect(ours.previous).toBe(QEMU);
  });

  it("what the plan writes is what verify's checks pass on: seccomp and remote-tls FAIL before, PASS after", () => {
    const actions = plan("{ seccompSandbox: true, remoteLibvirt: off }");
    const verdict = (qemu: string, libvirtd: string) =>
      hardeningChecks({
        live: false,
        etc: "/etc/libvirt",
        qemuConf: parseLibvirtConf(qemu),
        libvirtdConf: parseLibvirtConf(libvirtd),
        sockets: [],
        listenFlag: false,
        listeners: [],
        tlsFiles: [],
        apparmor: false,
        domains: "a tree",
        allowList: [],
      })
        .filter((c) => c.id === "hardening.seccomp" || c.id === "hardening.remote-tls")
        .map((c) => c.status);
    expect(verdict(QEMU, LIBVIRTD)).toEqual(["fail", "fail"]);
    const after = verdict(
      file(actions, "hardening.qemu-conf").content,
      file(actions, "hardening.libvirtd-conf").content,
    );
    expect(after).toEqual(["pass", "pass"]);
  });

  it("no hardening: section, no hardening action", () => {
    const answer = parseAnswerText("version: 1\n", "test.yaml");
    expect(buildPlan(lab, answer).actions.filter((a) => a.id.startsWith("hardening."))).toEqual([]);
  });
});
