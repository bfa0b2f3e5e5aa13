// The hardening checks of kvmstrap verify, one decision at a time: facts built from libvirt domain
// XML (test/app/hardening/*.xml, as virsh dumpxml --security-info writes them) and qemu.conf /
// libvirtd.conf text, each case turning one protection off. The real libvirtd and qemu are the e2e
// tier's (test/e2e/hardening.e2e.test.ts); reading a tree (socket units, config files) is tested here.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseLibvirtConf } from "../../src/app/libvirt-conf.js";
import { type DomainView, type HardeningFacts, hardeningChecks } from "../../src/app/verify-hardening.js";
import { libvirtListeners, readHardeningFacts } from "../../src/app/verify-hardening-read.js";
import { domainFactsOf } from "../../src/app/verify-hardening-xml.js";
import { RootedHostFs } from "../../src/host/fs.js";

const fixture = (name: string) => readFileSync(path.join(import.meta.dirname, "hardening", name), "utf8");
const CONFINED = domainFactsOf(fixture("running-confined.xml"));
const UNSAFE = domainFactsOf(fixture("unsafe.xml"));
const LABEL = "libvirt-4dea22b3-1d52-d8f3-2516-782e98ab3fa0";

const confined = (over: Partial<DomainView> = {}): DomainView => ({
  facts: CONFINED,
  running: true,
  qemu: { pid: 4242, seccomp: 2, label: `${LABEL} (enforce)` },
  ...over,
});

function facts(over: Partial<HardeningFacts> = {}): HardeningFacts {
  return {
    live: true,
    etc: "/etc/libvirt",
    qemuConf: parseLibvirtConf('# defaults\n#seccomp_sandbox = 1\nvnc_listen = "127.0.0.1"\n'),
    libvirtdConf: parseLibvirtConf('#listen_tls = 0\nauth_unix_rw = "polkit"\n'),
    sockets: [],
    listenFlag: false,
    listeners: [],
    tlsFiles: [],
    apparmor: true,
    domains: [confined()],
    allowList: ["0000:02:00.0"],
    ...over,
  };
}

const hardeningFactsWith = (d: DomainView["facts"], qemuConf: HardeningFacts["qemuConf"]) =>
  facts({ domains: [{ facts: d, running: false, qemu: null }], qemuConf });
const byId = (f: HardeningFacts) =>
  new Map(hardeningChecks(f).map((c) => [c.id.replace("hardening.", ""), c]));

describe("domain XML facts", () => {
  it("reads the seclabel, the PCI hostdev address, the listeners and no secret from a clean domain", () => {
    expect(CONFINED.name).toBe("web");
    expect(CONFINED.seclabels[0]).toEqual({ type: "dynamic", model: "apparmor", label: LABEL });
    expect(CONFINED.hostdevs).toEqual([{ type: "pci", address: "0000:02:00.0" }]);
    expect(CONFINED.graphics[0]?.listens).toEqual([{ type: "address", address: "127.0.0.1" }]);
    expect(CONFINED.inlineSecrets).toEqual([]);
  });

  it("names every secret written into the XML, never its value", () => {
    expect(UNSAFE.inlineSecrets).toHaveLength(4);
    expect(UNSAFE.inlineSecrets.join("\n")).toMatch(/passwd=/);
    expect(UNSAFE.inlineSecrets.join("\n")).toMatch(/disk vda: <source name=\.\.\.> holds key=/);
    expect(UNSAFE.inlineSecrets.join("\n")).toMatch(/disk vdb: <auth> without a <secret/);
    for (const s of UNSAFE.inlineSecrets) {
      expect(s).not.toContain("hunter2");
      expect(s).not.toContain("AQBexample");
      expect(s).not.toContain("s3cret");
    }
  });

  it("refuses XML that is not a domain", () => {
    expect(() => domainFactsOf("<network><name>x</name></network>")).toThrow(/no <domain>/);
  });
});

describe("hardening checks", () => {
  it("a confined, sandboxed guest with an allowed device on a local console passes all six", () => {
    const checks = hardeningChecks(facts());
    expect(checks.map((c) => [c.id, c.status])).toEqual([
      ["hardening.apparmor", "pass"],
      ["hardening.seccomp", "pass"],
      ["hardening.remote-tls", "pass"],
      ["hardening.hostdev", "pass"],
      ["hardening.graphics", "pass"],
      ["hardening.secrets", "pass"],
    ]);
    expect(checks[2]?.found).toBe("no network listener: local UNIX socket only");
  });

  describe("AppArmor (sVirt)", () => {
    it("a kernel without AppArmor is a visible skip (unknown) with the reason, never a pass", () => {
      const c = byId(facts({ apparmor: false })).get("apparmor");
      expect(c?.status).toBe("unknown");
      expect(c?.found).toMatch(/^skipped: this kernel has no AppArmor/);
    });
    it("a profile in complain mode, an unconfined qemu or seclabel type='none' fails, naming the guest", () => {
      const complain = confined({ qemu: { pid: 7, seccomp: 2, label: `${LABEL} (complain)` } });
      expect(byId(facts({ domains: [complain] })).get("apparmor")).toMatchObject({
        status: "fail",
        found: expect.stringMatching(/web: profile .* only complains \(pid 7\)/),
      });
      const unconfined = confined({ qemu: { pid: 7, seccomp: 2, label: "unconfined" } });
      expect(byId(facts({ domains: [unconfined] })).get("apparmor")?.found).toMatch(/runs as "unconfined"/);
      const none: DomainView = {
        facts: UNSAFE,
        running: true,
        qemu: { pid: 9, seccomp: 2, label: "unconfined" },
      };
      expect(byId(facts({ domains: [none] })).get("apparmor")).toMatchObject({
        status: "fail",
        found: "risky: no AppArmor seclabel in its live XML (type='none')",
      });
    });
    it('security_driver = "none" in qemu.conf fails, naming the file and line', () => {
      const c = byId(facts({ qemuConf: parseLibvirtConf('user = "root"\nsecurity_driver = "none"\n') })).get(
        "apparmor",
      );
      expect(c?.status).toBe("fail");
      expect(c?.found).toContain("/etc/libvirt/qemu.conf line 2: security_driver = none");
    });
    it("a defined guest that does not run is not asked for a label", () => {
      expect(
        byId(facts({ domains: [confined({ running: false, qemu: null })] })).get("apparmor")?.status,
      ).toBe("pass");
    });
  });

  describe("seccomp", () => {
    it("seccomp_sandbox = 0 fails, naming the file, line and key, with the fix", () => {
      const c = byId(facts({ qemuConf: parseLibvirtConf("seccomp_sandbox = 0 # off\n") })).get("seccomp");
      expect(c?.status).toBe("fail");
      expect(c?.found).toContain("/etc/libvirt/qemu.conf line 1: seccomp_sandbox = 0");
      expect(c?.where.some((w) => w.startsWith("fix: "))).toBe(true);
    });
    it("a guest's qemu without a filter (Seccomp: 0) fails even when qemu.conf says nothing", () => {
      const c = byId(facts({ domains: [confined({ qemu: { pid: 11, seccomp: 0, label: null } })] })).get(
        "seccomp",
      );
      expect(c?.status).toBe("fail");
      expect(c?.found).toContain("web: qemu pid 11 has Seccomp: 0");
    });
    it("both halves are named: qemu.conf's seccomp_sandbox = 0 and the guest started under it", () => {
      const off = facts({
        qemuConf: parseLibvirtConf("seccomp_sandbox = 0\n"),
        domains: [confined({ qemu: { pid: 12, seccomp: 0, label: null } })],
      });
      expect(byId(off).get("seccomp")?.found).toBe(
        "/etc/libvirt/qemu.conf line 1: seccomp_sandbox = 0: guests start without the sandbox; web: qemu pid 12 has Seccomp: 0 (no filter)",
      );
    });
    it("a running guest whose qemu is not in /proc is unknown; a missing qemu.conf is unknown", () => {
      expect(byId(facts({ domains: [confined({ qemu: null })] })).get("seccomp")?.status).toBe("unknown");
      expect(byId(facts({ qemuConf: null })).get("seccomp")?.status).toBe("unknown");
    });
  });

  describe("remote libvirt", () => {
    it("listen_tcp = 1 fails, naming libvirtd.conf and the key", () => {
      const c = byId(facts({ libvirtdConf: parseLibvirtConf("listen_tls = 0\nlisten_tcp = 1\n") })).get(
        "remote-tls",
      );
      expect(c?.status).toBe("fail");
      expect(c?.found).toBe("/etc/libvirt/libvirtd.conf line 2: listen_tcp = 1 (plain TCP)");
    });
    it("a socket listening on 16509 fails whatever configured it; one on 16514 counts as TLS", () => {
      // /proc/net/tcp and tcp6 as the kernel writes them: 0.0.0.0:16509 and [::]:16514 in LISTEN
      // (0A), a connection to 16509 (01) that is not a listener.
      const tcp = [
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
        "   0: 00000000:407D 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0",
        "   1: 0100007F:9C40 0100007F:407D 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0",
      ].join("\n");
      const tcp6 = [
        "  sl  local_address                         remote_address                        st tx_queue rx_queue",
        "   0: 00000000000000000000000000000000:4082 00000000000000000000000000000000:0000 0A 00000000:00000000",
      ].join("\n");
      const listeners = [...libvirtListeners(tcp), ...libvirtListeners(tcp6)];
      expect(listeners).toEqual([
        { address: "0.0.0.0", port: 16509 },
        { address: "::", port: 16514 },
      ]);
      const c = byId(facts({ listeners })).get("remote-tls");
      expect(c?.status).toBe("fail");
      expect(c?.found).toBe(
        "a socket listens on 0.0.0.0 port 16509, libvirt's plain TCP port (/proc/net/tcp)",
      );
      const tlsOnly = byId(facts({ listeners: listeners.slice(1) })).get("remote-tls");
      expect(tlsOnly).toMatchObject({
        status: "pass",
        found: "TLS only (port 16514 listening), client certificates verified",
      });
    });
    it("an enabled libvirtd-tcp.socket fails, naming the unit's link", () => {
      const c = byId(facts({ sockets: ["libvirtd-tcp.socket", "libvirtd-tls.socket"] })).get("remote-tls");
      expect(c?.status).toBe("fail");
      expect(c?.found).toContain("/etc/systemd/system/sockets.target.wants/libvirtd-tcp.socket");
    });
    it("TLS passes with verified client certificates and its files present; fails without verification or files", () => {
      const files = [
        { path: "/etc/pki/CA/cacert.pem", exists: true },
        { path: "/etc/pki/libvirt/servercert.pem", exists: true },
      ];
      const tls = facts({ sockets: ["libvirtd-tls.socket"], tlsFiles: files });
      expect(byId(tls).get("remote-tls")).toMatchObject({
        status: "pass",
        found: expect.stringMatching(/^TLS only/),
      });
      const noVerify = { ...tls, libvirtdConf: parseLibvirtConf("tls_no_verify_certificate = 1\n") };
      expect(byId(noVerify).get("remote-tls")?.found).toContain(
        "tls_no_verify_certificate = 1: clients need no",
      );
      const missing = { ...tls, tlsFiles: [{ path: "/etc/pki/CA/cacert.pem", exists: false }] };
      expect(byId(missing).get("remote-tls")?.found).toBe("TLS file /etc/pki/CA/cacert.pem is missing");
      // listen_tls = 1 alone does nothing without --listen (socket activation): no listener.
      const flagless = facts({ libvirtdConf: parseLibvirtConf("listen_tls = 1\n") });
      expect(byId(flagless).get("remote-tls")?.found).toBe("no network listener: local UNIX socket only");
    });
  });

  describe("device allow-list", () => {
    it("a PCI device outside the passthrough section, and any USB device, fail naming the domain and address", () => {
      const c = byId(facts({ domains: [confined(), { facts: UNSAFE, running: false, qemu: null }] })).get(
        "hostdev",
      );
      expect(c?.status).toBe("fail");
      expect(c?.found).toContain("domain risky: pci 0000:03:00.1 is not in the allow-list");
      expect(c?.found).toContain("domain risky: usb 0x046d:0xc52b is not in the allow-list");
      expect(c?.found).not.toContain("0000:02:00.0 is not");
    });
    it("an empty passthrough section allows nothing", () => {
      expect(byId(facts({ allowList: [] })).get("hostdev")?.found).toMatch(
        /web: pci 0000:02:00.0 .*allowed: none/,
      );
    });
  });

  describe("VNC and SPICE", () => {
    const unsafe = { facts: UNSAFE, running: false, qemu: null };
    it("VNC on 0.0.0.0 and SPICE on :: without TLS fail, naming the domain", () => {
      const c = byId(facts({ domains: [unsafe] })).get("graphics");
      expect(c?.status).toBe("fail");
      expect(c?.found).toContain("domain risky: VNC on 0.0.0.0 without TLS");
      expect(c?.found).toContain("domain risky: SPICE on :: without TLS");
    });
    it("with vnc_tls = 1 VNC passes; SPICE needs defaultMode='secure' besides spice_tls = 1", () => {
      const qemuConf = parseLibvirtConf("vnc_tls = 1\nspice_tls = 1\n");
      const c = byId(facts({ domains: [unsafe], qemuConf })).get("graphics");
      expect(c?.found).not.toContain("VNC");
      expect(c?.found).toContain("spice_tls = 1 but defaultMode is not 'secure'");
    });
    it("a network listener counts by the address libvirt resolved, not qemu.conf's default", () => {
      const xml = (listen: string) =>
        fixture("running-confined.xml").replace(/<listen type='address' address='127.0.0.1'\/>/, listen);
      const open = parseLibvirtConf('vnc_listen = "0.0.0.0"\n');
      const inactive = domainFactsOf(xml("<listen type='network' network='mgmt'/>"));
      const live = domainFactsOf(xml("<listen type='network' address='0.0.0.0' network='mgmt'/>"));
      const of = (facts: typeof inactive) => byId(hardeningFactsWith(facts, open)).get("graphics")?.status;
      expect(of(inactive)).toBe("pass");
      expect(of(live)).toBe("fail");
    });
    it("a listener without an address takes qemu.conf's vnc_listen", () => {
      const xml = fixture("running-confined.xml").replace(/ listen='127.0.0.1'>\s*<listen[^>]*>/, ">");
      const bare = { facts: domainFactsOf(xml), running: true, qemu: null };
      expect(byId(facts({ domains: [bare] })).get("graphics")?.status).toBe("pass");
      const open = parseLibvirtConf('vnc_listen = "0.0.0.0"\n');
      expect(byId(facts({ domains: [bare], qemuConf: open })).get("graphics")?.status).toBe("fail");
    });
  });

  it("secrets in a domain's XML fail, naming the domain and where, with the libvirt-secret fix", () => {
    const c = byId(facts({ domains: [confined(), { facts: UNSAFE, running: false, qemu: null }] })).get(
      "secrets",
    );
    expect(c?.status).toBe("fail");
    expect(c?.found).toContain("domain risky: <graphics type='vnc'> #1: passwd=");
    expect(c?.where.join(" ")).toMatch(/<secret type='ceph\|iscsi' usage=/);
  });

  it("when libvirt does not answer, the domain checks are unknown (the pools and test VM fail for it)", () => {
    const checks = hardeningChecks(facts({ domains: "other: connect failed" }));
    for (const id of ["hardening.apparmor", "hardening.hostdev", "hardening.graphics", "hardening.secrets"])
      expect(checks.find((c) => c.id === id)?.status, id).toBe("unknown");
  });
});

describe("reading a tree", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it("finds the enabled socket units, libvirtd --listen and the config files under the root", async () => {
    const root = mkdtempSync(path.join(tmpdir(), `kvmstrap-hardening-${process.pid}-`));
    dirs.push(root);
    mkdirSync(path.join(root, "proc"));
    mkdirSync(path.join(root, "sys"));
    mkdirSync(path.join(root, "etc/libvirt"), { recursive: true });
    mkdirSync(path.join(root, "etc/default"), { recursive: true });
    mkdirSync(path.join(root, "etc/systemd/system/sockets.target.wants"), { recursive: true });
    symlinkSync(
      "/lib/systemd/system/libvirtd-tcp.socket",
      path.join(root, "etc/systemd/system/sockets.target.wants/libvirtd-tcp.socket"),
    );
    writeFileSync(path.join(root, "etc/libvirt/qemu.conf"), "seccomp_sandbox = 0\n");
    writeFileSync(path.join(root, "etc/libvirt/libvirtd.conf"), 'ca_file = "/etc/ssl/ca.pem"\n');
    writeFileSync(path.join(root, "etc/default/libvirtd"), 'LIBVIRTD_ARGS="--listen"\n');
    const f = await readHardeningFacts({
      fs: new RootedHostFs(root),
      live: false,
      libvirt: null,
      allowList: [],
    });
    expect(f.sockets).toEqual(["libvirtd-tcp.socket"]);
    expect(f.listenFlag).toBe(true);
    expect(f.tlsFiles[0]).toEqual({ path: "/etc/ssl/ca.pem", exists: false });
    const checks = new Map(hardeningChecks(f).map((c) => [c.id, c]));
    expect(checks.get("hardening.seccomp")?.status).toBe("fail");
    expect(checks.get("hardening.remote-tls")?.found).toContain("libvirtd-tcp.socket is enabled");
    // Live-only: unknown on a tree.
    for (const id of ["hardening.apparmor", "hardening.hostdev", "hardening.graphics", "hardening.secrets"])
      expect(checks.get(id)?.status, id).toBe("unknown");
  });
});
