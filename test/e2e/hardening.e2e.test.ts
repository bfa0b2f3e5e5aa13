// `kvmstrap verify`'s hardening checks against a test-owned libvirtd and a running qemu: the built
// CLI reads the daemon's own qemu.conf/libvirtd.conf (--libvirt-etc) and its domains (--connect), and
// finds each guest's qemu in /proc. The guest is a boot sector that halts for good (cli; hlt), so it
// runs as long as the test needs, under TCG, at no CPU cost.
// - the seccomp sandbox on (the test daemon's default): hardening.seccomp PASS with Seccomp: 2;
// - a daemon restarted with seccomp_sandbox = 0 and the guest started again: FAIL, naming qemu.conf's
//   line and the guest's qemu (Seccomp: 0); still FAIL for that guest once qemu.conf is fixed;
// - a defined (not running) domain with a <hostdev> outside the answer's passthrough section and a VNC
//   listener on 0.0.0.0 without vnc_tls and a console password: hardening.hostdev, hardening.graphics
//   and hardening.secrets FAIL, naming it (never the password);
// - listen_tcp = 1 in the daemon's libvirtd.conf: hardening.remote-tls FAIL, naming the file and key;
// - AppArmor: PASS only where the kernel has it; without it, a visible skip (unknown) with the reason;
// - a daemon started with --listen and listen_tcp = 1: FAIL from the config and from the socket on
//   16509 (verify run in the daemon's network namespace), which virsh reaches with no credential;
// - TLS only with certificates from `kvmstrap pki init`: PASS; virsh with a client certificate from
//   another CA is refused, with the host's own it connects.
import { existsSync } from "node:fs";
import { appendFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type VerifyCheck, verifyResultSchema } from "../../src/app/verify-result.js";
import { renderDomainXml } from "../../src/vm/domain-xml.js";
import { projectRoot } from "../helpers/shared-hosts.js";
import { startTestLibvirtd, type TestLibvirtd } from "./libvirtd.js";

let daemon: TestLibvirtd | undefined;
let work = "";
const IDLE = "hardening-idle";
const EXPOSED = "hardening-exposed";

beforeAll(async () => {
  work = await mkdtemp(path.join("/var/tmp", `kvmstrap-hardening-e2e-${process.pid}-`));
  // 512 bytes: cli; hlt; jmp back to hlt; the boot signature. The guest never leaves hlt.
  const sector = Buffer.alloc(512);
  Buffer.from([0xfa, 0xf4, 0xeb, 0xfd]).copy(sector);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  await writeFile(path.join(work, "idle.img"), sector);
  await writeFile(path.join(work, "answer.yaml"), "version: 1\n");
  daemon = await startTestLibvirtd();
  await startIdle();
});
afterAll(async () => {
  await daemon?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const need = () => {
  if (!daemon) throw new Error("no test libvirtd");
  return daemon;
};
const virsh = (...args: string[]) => execa("virsh", ["-c", need().uri, ...args], { env: { LC_ALL: "C" } });

function domainXml(name: string, extraDevices = ""): string {
  const xml = renderDomainXml({
    name,
    domainType: "qemu",
    vcpus: 1,
    memoryMiB: 32,
    disk: { path: path.join(work, "idle.img"), format: "raw" },
    nics: [],
    serialLog: path.join(work, `${name}.log`),
    vhostNet: false,
  });
  return xml.replace("</devices>", `${extraDevices}</devices>`);
}

async function startIdle(): Promise<void> {
  const file = path.join(work, `${IDLE}.xml`);
  await writeFile(file, domainXml(IDLE));
  await virsh("define", file);
  await virsh("start", IDLE);
}

/** The built verify; inNetns: inside the daemon's network namespace, where its TCP listeners are. */
async function verify(
  inNetns = false,
): Promise<{ code: number; stderr: string; byId: Map<string, VerifyCheck> }> {
  const d = need();
  const netns = inNetns ? ["nsenter", "-t", String(d.pid), "-n", process.execPath] : [process.execPath];
  const r = await execa(
    netns[0] ?? process.execPath,
    [
      ...netns.slice(1),
      path.join(projectRoot, "bin/kvmstrap.js"),
      "verify",
      path.join(work, "answer.yaml"),
      "--connect",
      d.uri,
      "--libvirt-etc",
      d.dirs.etc,
      "--no-vm",
      "--state-dir",
      path.join(work, "state"),
      "--json",
    ],
    { reject: false, env: { LC_ALL: "C" } },
  );
  const result = verifyResultSchema.parse(JSON.parse(r.stdout));
  return { code: r.exitCode ?? -1, stderr: r.stderr, byId: new Map(result.checks.map((c) => [c.id, c])) };
}

describe("kvmstrap verify's hardening checks on a real libvirtd and qemu", () => {
  it("seccomp sandbox on: PASS; AppArmor a visible skip without it; nothing else fails", async () => {
    const t0 = Date.now();
    const { byId, stderr } = await verify();
    const seccomp = byId.get("hardening.seccomp");
    expect(seccomp?.status, `${seccomp?.found}\n${stderr}`).toBe("pass");
    expect(seccomp?.found).toMatch(/1 running guest\(s\) sandboxed \(Seccomp: 2\)/);
    for (const id of ["hardening.remote-tls", "hardening.hostdev", "hardening.graphics", "hardening.secrets"])
      expect(byId.get(id)?.status, `${id}: ${byId.get(id)?.found}`).toBe("pass");
    const apparmor = byId.get("hardening.apparmor");
    if (existsSync("/sys/kernel/security/apparmor")) {
      // The test daemon runs qemu with security_driver = "none": sVirt is off, and that must fail.
      expect(apparmor?.status).toBe("fail");
      expect(apparmor?.found).toContain("security_driver = none");
    } else {
      expect(apparmor?.status).toBe("unknown");
      expect(apparmor?.found).toMatch(/^skipped: this kernel has no AppArmor/);
      console.log(`AppArmor check skipped here: ${apparmor?.found}`);
    }
    console.log(`kvmstrap verify --no-vm with one running guest: ${Date.now() - t0} ms`);
  });

  it("a domain with a hostdev outside the passthrough section, VNC on 0.0.0.0 without TLS and a console password: FAIL, naming it", async () => {
    const file = path.join(work, `${EXPOSED}.xml`);
    const hostdev = `<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x3e' slot='0x00' function='0x1'/></source></hostdev>`;
    const vnc = `<graphics type='vnc' port='-1' autoport='yes' passwd='hunter2x'><listen type='address' address='0.0.0.0'/></graphics>`;
    await writeFile(file, domainXml(EXPOSED, `${hostdev}${vnc}`));
    await virsh("define", file);
    const { code, byId } = await verify();
    expect(code).toBe(1);
    expect(byId.get("hardening.hostdev")).toMatchObject({
      status: "fail",
      found: expect.stringContaining(`domain ${EXPOSED}: pci 0000:3e:00.1 is not in the allow-list`),
    });
    expect(byId.get("hardening.graphics")).toMatchObject({
      status: "fail",
      found: expect.stringContaining(`domain ${EXPOSED}: VNC on 0.0.0.0 without TLS`),
    });
    // virsh dumpxml hides passwd= unless asked (--security-info): verify asks, and names it without its value.
    expect(byId.get("hardening.secrets")).toMatchObject({
      status: "fail",
      found: `domain ${EXPOSED}: <graphics type='vnc'> #1: passwd=`,
    });
    expect(JSON.stringify([...byId.values()])).not.toContain("hunter2x");
    await virsh("undefine", EXPOSED);
  });

  it("listen_tcp = 1 in libvirtd.conf: FAIL naming the file and key", async () => {
    const conf = path.join(need().dirs.etc, "libvirtd.conf");
    const before = await readFile(conf, "utf8");
    await appendFile(conf, "listen_tcp = 1\n");
    const { byId } = await verify();
    await writeFile(conf, before);
    expect(byId.get("hardening.remote-tls")).toMatchObject({
      status: "fail",
      found: expect.stringMatching(new RegExp(`^${conf} line \\d+: listen_tcp = 1 \\(plain TCP\\)$`)),
    });
  });

  it("restarted with seccomp_sandbox = 0 and the guest started again: FAIL, until the guest restarts", async () => {
    await need().stop();
    daemon = await startTestLibvirtd({ qemuConf: "seccomp_sandbox = 0" });
    await startIdle();
    const off = await verify();
    const seccomp = off.byId.get("hardening.seccomp");
    expect(off.code).toBe(1);
    expect(seccomp?.status).toBe("fail");
    expect(seccomp?.found).toMatch(
      /qemu\.conf line \d+: seccomp_sandbox = 0: guests start without the sandbox/,
    );
    expect(seccomp?.found).toMatch(new RegExp(`${IDLE}: qemu pid \\d+ has Seccomp: 0`));
    // qemu.conf fixed, the guest still running unsandboxed: its qemu alone fails the check.
    const qemuConf = path.join(need().dirs.etc, "qemu.conf");
    await writeFile(qemuConf, (await readFile(qemuConf, "utf8")).replace(/^seccomp_sandbox = 0$/m, ""));
    const stale = await verify();
    expect(stale.byId.get("hardening.seccomp")?.found).toMatch(
      new RegExp(`^${IDLE}: qemu pid \\d+ has Seccomp: 0 \\(no filter\\)$`),
    );
  });

  it("a libvirtd really listening on plain TCP: FAIL from the socket itself, even once the config says otherwise", async () => {
    await need().stop();
    daemon = await startTestLibvirtd({
      listen: true,
      libvirtdConf: 'listen_tls = 0\nlisten_tcp = 1\nauth_tcp = "none"',
    });
    // The hole is real: anyone reaching port 16509 drives libvirt, no credential asked.
    expect(await need().nsExec("virsh", ["-c", "qemu+tcp://127.0.0.1/system", "uri"])).toContain(
      "qemu+tcp://",
    );
    const tcp = await verify(true);
    const found = tcp.byId.get("hardening.remote-tls")?.found ?? "";
    expect(tcp.byId.get("hardening.remote-tls")?.status).toBe("fail");
    expect(found).toMatch(/libvirtd\.conf line \d+: listen_tcp = 1 \(plain TCP\)/);
    expect(found).toMatch(/a socket listens on (0\.0\.0\.0|::) port 16509, libvirt's plain TCP port/);
    // listen_tcp taken out of the file, the daemon not restarted: its socket alone fails the check.
    const conf = path.join(need().dirs.etc, "libvirtd.conf");
    await writeFile(conf, (await readFile(conf, "utf8")).replace(/^listen_tcp = 1$/m, ""));
    const stale = await verify(true);
    expect(stale.byId.get("hardening.remote-tls")?.found).toMatch(/^a socket listens on .* port 16509/);
  });

  it("TLS with the host's PKI: PASS; a client certificate from another CA is refused, the host's accepted", async () => {
    const pki = path.join(work, "pki");
    const other = path.join(work, "pki-other");
    for (const root of [pki, other]) {
      await mkdir(path.join(root, "etc"), { recursive: true });
      await writeFile(path.join(root, "etc/hostname"), "kvmstrap-hardening\n");
      await execa(process.execPath, [
        path.join(projectRoot, "bin/kvmstrap.js"),
        "pki",
        "init",
        "--root",
        root,
        "--address",
        "127.0.0.1",
      ]);
    }
    await need().stop();
    const at = (p: string) => JSON.stringify(path.join(pki, p));
    daemon = await startTestLibvirtd({
      listen: true,
      libvirtdConf: [
        "listen_tls = 1",
        "listen_tcp = 0",
        `ca_file = ${at("etc/pki/CA/cacert.pem")}`,
        `cert_file = ${at("etc/pki/libvirt/servercert.pem")}`,
        `key_file = ${at("etc/pki/libvirt/private/serverkey.pem")}`,
      ].join("\n"),
    });
    const tls = await verify(true);
    expect(tls.byId.get("hardening.remote-tls")).toMatchObject({
      status: "pass",
      found: "TLS only (port 16514 listening), client certificates verified",
    });
    // virsh's pkipath: the CA that signed the server, and a client certificate and key.
    const client = async (name: string, from: string) => {
      const dir = path.join(work, name);
      await mkdir(dir, { recursive: true });
      // Both CAs in the client's trust: virsh checks its own certificate before it connects, so
      // the refusal below is the server's, not the client's.
      const cas = [pki, from].map((r) => path.join(r, "etc/pki/CA/cacert.pem"));
      const pem = await Promise.all([...new Set(cas)].map((f) => readFile(f, "utf8")));
      await writeFile(path.join(dir, "cacert.pem"), pem.join(""));
      await cp(path.join(from, "etc/pki/libvirt/clientcert.pem"), path.join(dir, "clientcert.pem"));
      await cp(path.join(from, "etc/pki/libvirt/private/clientkey.pem"), path.join(dir, "clientkey.pem"));
      return need()
        .nsExec("virsh", ["-c", `qemu+tls://127.0.0.1/system?pkipath=${dir}`, "uri"])
        .then(
          (out) => ({ ok: true, out }),
          (e: Error) => ({ ok: false, out: e.message }),
        );
    };
    const foreign = await client("client-foreign", other);
    expect(foreign.ok, foreign.out).toBe(false);
    // The server checked the certificate and closed the connection instead of confirming the session.
    expect(foreign.out).toContain("Unable to read TLS confirmation");
    const own = await client("client-own", pki);
    expect(own, own.out).toMatchObject({
      ok: true,
      out: expect.stringContaining("qemu+tls://127.0.0.1/system"),
    });
  });
});
