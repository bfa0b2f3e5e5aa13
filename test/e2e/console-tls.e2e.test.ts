// TLS consoles with real parts: kvmstrap's PKI (certtool) and its qemu.conf settings
// (consoleQemuSettings + withQemuSettings, the plan's own) given to the test libvirtd, a domain from
// renderDomainXml with the answer's <graphics> (VNC and SPICE on a "management" address inside
// libvirtd's network namespace), then:
// - VNC (vnc_tls=1, vnc_tls_x509_verify=1): gvnccapture (gtk-vnc, VeNCrypt x509) without a client
//   certificate, and with one from another CA, is refused; with kvmstrap's client certificate it
//   completes the RFB security handshake and takes a screenshot of the guest;
// - SPICE (spice_tls=1): its TLS port verifies against the host's CA with gnutls-cli, and does not
//   against another CA;
// - both listen on the management address only, never a wildcard;
// - the built CLI's `vm console --spice` .vv (ports, CA, host-subject) reaches and verifies SPICE, and
//   `--vnc --json` names the VNC port.
// - a console deployed locked (consoles.tickets) refuses every VNC client until the built CLI's
//   `vm console --ticket --ttl N` sets a one-time password: gvnccapture with the client certificate
//   and a wrong password is refused, with the ticket it captures the screen, after the TTL the same
//   ticket is refused; the ticket is in no file of libvirtd's (definition, logs) and not in
//   `dumpxml --inactive`; an unlocked console refuses --ticket (exit 2). SPICE's ticket is enforced
//   by spice-server: its link handshake (spice-link.mjs) is denied while locked and with a wrong
//   ticket, and accepted with the one `vm console --spice --ticket` set.
// The guest is a diskless-by-content machine: SeaBIOS finds nothing to boot on an empty disk and
// keeps running (and keeps drawing its VGA text screen), which is all a console needs.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExecaRunner } from "../../src/host/commands.js";
import { CA_CERT, clientDir, consoleCertDir } from "../../src/host/pki/layout.js";
import { initPki } from "../../src/host/pki/pki.js";
import { consoleQemuSettings, withQemuSettings } from "../../src/plan/console-plan.js";
import { renderDomainXml } from "../../src/vm/domain-xml.js";
import { startTestLibvirtd, type TestLibvirtd } from "./libvirtd.js";

const MGMT = "192.0.2.10";
const NAME = `kvmstrap-console-${process.pid}`;
const LOCKED = `kvmstrap-locked-${process.pid}`;
const runner = new ExecaRunner();
const tools = await Promise.all(
  ["certtool", "gvnccapture", "gnutls-cli", "virsh", "qemu-system-x86_64"].map((t) => runner.which(t)),
);
const missing = ["certtool", "gvnccapture", "gnutls-cli", "virsh", "qemu-system-x86_64"].filter(
  (_, i) => !tools[i],
);
const isRoot = process.getuid?.() === 0;

describe.skipIf(missing.length > 0 || !isRoot)(
  `TLS consoles (VNC with client certificates, SPICE)${missing.length ? ` [skipped: missing ${missing.join(", ")}]` : isRoot ? "" : " [skipped: needs root]"}`,
  () => {
    let lv: TestLibvirtd;
    let work: string;
    let pki: string;
    let otherPki: string;
    let vncPort = 0;
    let spiceTlsPort = 0;
    let lockedVncPort = 0;
    let lockedSpiceTlsPort = 0;
    const started = Date.now();
    const virsh = (...args: string[]) => execa("virsh", ["-c", lv.uri, ...args], { env: { LC_ALL: "C" } });
    /** A program in libvirtd's network namespace (where the management address is). */
    const inNet = (file: string, args: string[], timeout = 20_000) =>
      execa("nsenter", ["-t", String(lv.pid), "-n", file, ...args], {
        env: { LC_ALL: "C" },
        reject: false,
        timeout,
        input: "",
        all: true, // gtk-vnc's --debug lines go to stdout, its errors to stderr
      });

    /**
     * A home where gtk-vnc finds a CA and, optionally, a client certificate and key: it looks in
     * /etc/pki and in the passwd entry's home (not $HOME), ~/.pki/CA/cacert.pem and
     * ~/.pki/CLIENTNAME/{clientcert.pem,private/clientkey.pem}, CLIENTNAME "gvnccapture". So the client
     * runs in its own mount namespace with this directory bound over /root.
     */
    async function vncHome(name: string, caFrom: string, clientFrom: string | null): Promise<string> {
      const home = path.join(work, name);
      await mkdir(path.join(home, ".pki/CA"), { recursive: true });
      await writeFile(path.join(home, ".pki/CA/cacert.pem"), await readFile(path.join(caFrom, CA_CERT)));
      if (clientFrom) {
        const dir = path.join(clientFrom, clientDir("admin"));
        await mkdir(path.join(home, ".pki/gvnccapture/private"), { recursive: true });
        await writeFile(
          path.join(home, ".pki/gvnccapture/clientcert.pem"),
          await readFile(`${dir}/client-cert.pem`),
        );
        await writeFile(
          path.join(home, ".pki/gvnccapture/private/clientkey.pem"),
          await readFile(`${dir}/client-key.pem`),
          { mode: 0o600 },
        );
      }
      return home;
    }

    const gvnccapture = (home: string, out: string, port: number) => [
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      'mount --bind "$0" /root && exec "$@"',
      home,
      "gvnccapture",
      "--debug",
      `${MGMT}:${port - 5900}`,
      path.join(work, out),
    ];
    const capture = (home: string, out: string) => {
      const [file, ...args] = gvnccapture(home, out, vncPort);
      return inNet(file ?? "", args);
    };

    /**
     * gvnccapture reads a password only from a terminal (it turns echo off first, and flushes what
     * was typed before): run it under script(1) and type the password once it asks.
     */
    const captureWithPassword = async (home: string, out: string, password: string) => {
      const q = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
      const cmd = gvnccapture(home, out, lockedVncPort).map(q).join(" ");
      const child = execa("nsenter", ["-t", String(lv.pid), "-n", "script", "-qefc", cmd, "/dev/null"], {
        env: { LC_ALL: "C" },
        reject: false,
        timeout: 20_000,
        all: true,
      });
      let asked = false;
      child.all?.on("data", (d: Buffer) => {
        if (asked || !String(d).includes("Password:")) return;
        asked = true;
        setTimeout(() => child.stdin?.write(`${password}\n`), 300);
      });
      const r = await child;
      return { ...r, asked };
    };

    beforeAll(async () => {
      work = await mkdtemp(path.join(tmpdir(), `kvmstrap-console-e2e-${process.pid}-`));
      pki = path.join(work, "pki");
      otherPki = path.join(work, "other-pki");
      const id = { hostname: "kvmstrap-console-test", addresses: [MGMT] };
      await initPki(id, { runner, root: pki });
      await initPki(id, { runner, root: otherPki });
      const consoles = { vnc: true, spice: true, listen: MGMT, tls: true, verifyClients: true };
      const qemuConf = withQemuSettings(
        "",
        consoleQemuSettings(consoles, (k) => path.join(pki, consoleCertDir(k))),
      );
      lv = await startTestLibvirtd({ qemuConf });
      const mgmt = `kvmc${(process.pid % 0xffff).toString(16)}`;
      await lv.nsExec("ip", ["link", "add", mgmt, "type", "bridge"]); // no dummy module here; an empty bridge holds an address as well
      await lv.nsExec("ip", ["addr", "add", `${MGMT}/24`, "dev", mgmt]);
      await lv.nsExec("ip", ["link", "set", mgmt, "up"]);
      const disk = path.join(work, "empty.raw");
      await writeFile(disk, Buffer.alloc(1024 * 1024));
      const xml = renderDomainXml({
        name: NAME,
        domainType: "qemu",
        vcpus: 1,
        memoryMiB: 64,
        disk: { path: disk, format: "raw" },
        nics: [],
        serialLog: path.join(work, "serial.log"),
        vhostNet: false,
        graphics: { ...consoles },
      });
      await writeFile(path.join(work, "domain.xml"), xml);
      await virsh("define", path.join(work, "domain.xml"));
      await virsh("start", NAME);
      const lockedDisk = path.join(work, "locked.raw");
      await writeFile(lockedDisk, Buffer.alloc(1024 * 1024));
      const lockedXml = renderDomainXml({
        name: LOCKED,
        domainType: "qemu",
        vcpus: 1,
        memoryMiB: 64,
        disk: { path: lockedDisk, format: "raw" },
        nics: [],
        serialLog: path.join(work, "locked-serial.log"),
        vhostNet: false,
        graphics: { ...consoles, tickets: true },
      });
      await writeFile(path.join(work, "locked.xml"), lockedXml);
      await virsh("define", path.join(work, "locked.xml"));
      await virsh("start", LOCKED);
      const lockedLive = (await virsh("dumpxml", LOCKED)).stdout;
      lockedVncPort = Number(/<graphics type='vnc' port='(\d+)'/.exec(lockedLive)?.[1]);
      lockedSpiceTlsPort = Number(/<graphics type='spice'[^>]*tlsPort='(\d+)'/.exec(lockedLive)?.[1]);
      const live = (await virsh("dumpxml", NAME)).stdout;
      vncPort = Number(/<graphics type='vnc' port='(\d+)'/.exec(live)?.[1]);
      spiceTlsPort = Number(/<graphics type='spice'[^>]*tlsPort='(\d+)'/.exec(live)?.[1]);
      if (!vncPort || !spiceTlsPort)
        throw new Error(`no VNC port or SPICE TLS port in the live XML:\n${live}`);
    });

    afterAll(async () => {
      console.log(`console TLS test: ${((Date.now() - started) / 1000).toFixed(1)} s`);
      if (lv) await lv.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    it("VNC and SPICE listen on the management address only", async () => {
      const listening = await lv.nsExec("ss", ["-ltnH"]);
      const ours = listening
        .split("\n")
        .filter((l) => l.includes(`:${vncPort} `) || l.includes(`:${spiceTlsPort} `));
      expect(ours).toHaveLength(2);
      for (const l of ours) expect(l).toContain(`${MGMT}:`);
      expect(listening).not.toMatch(
        new RegExp(`(0\\.0\\.0\\.0|\\*|\\[::\\]):(${vncPort}|${spiceTlsPort})\\b`),
      );
    });

    it("a TLS VNC client without a client certificate is refused", async () => {
      const r = await capture(await vncHome("no-cert", pki, null), "no-cert.png");
      expect(r.exitCode, r.all).not.toBe(0);
      // The client trusted the server (the host's CA) and finished TLS: the server refused it.
      expect(r.all).toContain("Certificate is valid");
      expect(r.all).not.toContain("Saved display");
      await expect(readFile(path.join(work, "no-cert.png"))).rejects.toThrow(/ENOENT/);
    });

    it("a client certificate from another CA is refused too", async () => {
      const r = await capture(await vncHome("other-ca", pki, otherPki), "other-ca.png");
      expect(r.exitCode, r.all).not.toBe(0);
      expect(r.all).toContain("Certificate is valid");
      expect(r.all).not.toContain("Saved display");
      await expect(readFile(path.join(work, "other-ca.png"))).rejects.toThrow(/ENOENT/);
    });

    it("with kvmstrap's client certificate the VeNCrypt x509 handshake completes and the screen is captured", async () => {
      const t0 = Date.now();
      const r = await capture(await vncHome("admin", pki, pki), "admin.png");
      expect(r.exitCode, r.all?.slice(-3000)).toBe(0);
      expect(r.all).toContain("Completed TLS setup, do subauth 260"); // VeNCrypt X509None
      const png = await readFile(path.join(work, "admin.png"));
      expect(png.subarray(1, 4).toString()).toBe("PNG");
      const [width, height] = [png.readUInt32BE(16), png.readUInt32BE(20)];
      console.log(`gvnccapture over TLS: ${width}x${height} in ${Date.now() - t0} ms`);
      expect(width).toBeGreaterThanOrEqual(320);
      expect(height).toBeGreaterThanOrEqual(200);
    });

    it("a locked console: refused until vm console --ticket, accepted with the ticket, refused with a wrong one and after its TTL", async () => {
      const home = await vncHome("ticket", pki, pki);
      const before = await captureWithPassword(home, "locked-none.png", "guess123");
      expect(before.exitCode, before.all).not.toBe(0);
      expect(before.all).toContain("Certificate is valid"); // TLS and the client certificate were fine
      expect(before.asked).toBe(true); // VeNCrypt x509 with VNC password auth on top
      const cli = (...args: string[]) =>
        execa("node", ["bin/kvmstrap.js", "vm", "console", ...args, "--connect", lv.uri, "--pki-root", pki], {
          reject: false,
          env: { LC_ALL: "C" },
        });
      const TTL = 12;
      const t0 = Date.now();
      const r = await cli(LOCKED, "--vnc", "--ticket", "--ttl", String(TTL), "--json");
      expect(r.exitCode, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout);
      const ticket: string = out.password;
      expect(ticket).toMatch(/^[A-Za-z0-9]{8}$/);
      expect(out.vv).toContain(`password=${ticket}`);
      expect(out.uri).toBe(`vnc://${MGMT}:${lockedVncPort}?VncPassword=${ticket}`);
      // Valid TTL seconds from when it was set (within the CLI's run), rounded up to the second.
      const expires = Date.parse(out.ticketExpiresAt);
      expect(expires - t0).toBeGreaterThanOrEqual(TTL * 1000);
      expect(expires - Date.now()).toBeLessThanOrEqual((TTL + 1) * 1000);
      expect(r.stderr).not.toContain(ticket);
      // Never in the definition: not in dumpxml --inactive (even with --security-info), nor in any
      // file libvirtd keeps under /etc/libvirt, nor in its logs.
      const inactive = (await virsh("dumpxml", LOCKED, "--inactive", "--security-info")).stdout;
      expect(inactive).not.toContain(ticket);
      expect(inactive).toContain("passwdValidTo='1970-01-01T00:00:00'"); // the lock, an empty expired password
      const grep = await execa("grep", ["-rl", ticket, lv.dirs.etc, lv.dirs.log], { reject: false });
      expect(grep.stdout).toBe("");
      expect((await virsh("dumpxml", LOCKED)).stdout).not.toContain(ticket); // hidden without --security-info

      const wrong = await captureWithPassword(home, "locked-wrong.png", "wrong123");
      expect(wrong.exitCode, wrong.all).not.toBe(0);
      expect(wrong.all).not.toContain("Saved display");
      const right = await captureWithPassword(home, "locked-right.png", ticket);
      expect(right.exitCode, right.all?.slice(-3000)).toBe(0);
      expect((await readFile(path.join(work, "locked-right.png"))).subarray(1, 4).toString()).toBe("PNG");
      console.log(`ticket accepted ${((Date.now() - t0) / 1000).toFixed(1)} s after it was set`);

      const wait = Date.parse(out.ticketExpiresAt) + 1500 - Date.now();
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      const expired = await captureWithPassword(home, "locked-expired.png", ticket);
      expect(expired.exitCode, expired.all).not.toBe(0);
      expect(expired.all).not.toContain("Saved display");

      // SPICE takes a ticket too (24 characters), in the .vv, and spice-server enforces it: the link
      // handshake (test/e2e/spice-link.mjs, over TLS verified against the host's CA) is denied (7)
      // while locked and with a wrong ticket, and accepted (0) with the ticket.
      const spiceAuth = async (password: string) => {
        const r = await execa(
          "nsenter",
          [
            "-t",
            String(lv.pid),
            "-n",
            "node",
            path.join(import.meta.dirname, "spice-link.mjs"),
            MGMT,
            String(lockedSpiceTlsPort),
            path.join(pki, consoleCertDir("spice"), "ca-cert.pem"),
          ],
          { input: password, reject: false, timeout: 20_000, env: { LC_ALL: "C" } },
        );
        expect(r.exitCode, r.stderr).toBe(0);
        return JSON.parse(r.stdout) as { linkError: number; authResult: number | null };
      };
      expect(await spiceAuth("guess123")).toEqual({ linkError: 0, authResult: 7 });
      const spice = await cli(LOCKED, "--spice", "--ticket", "--ttl", "30");
      expect(spice.exitCode, spice.stderr).toBe(0);
      const spiceTicket = /^password=([A-Za-z0-9]{24})$/m.exec(spice.stdout)?.[1] ?? "";
      expect(spiceTicket).not.toBe("");
      expect(await spiceAuth("wrong-ticket-0123456789ab")).toEqual({ linkError: 0, authResult: 7 });
      expect(await spiceAuth(spiceTicket)).toEqual({ linkError: 0, authResult: 0 });
      // An unlocked console would take the password and never ask for it: refused.
      const open = await cli(NAME, "--vnc", "--ticket");
      expect(open.exitCode).toBe(2);
      expect(open.stderr).toContain("not started locked for tickets");
    });

    it("SPICE's TLS port presents a certificate that verifies against the host's CA, and not against another", async () => {
      const good = await inNet("gnutls-cli", [
        "--x509cafile",
        path.join(pki, consoleCertDir("spice"), "ca-cert.pem"),
        "--port",
        String(spiceTlsPort),
        MGMT,
      ]);
      expect(good.stdout).toContain("The certificate is trusted");
      expect(good.stdout).toContain("Handshake was completed");
      const bad = await inNet("gnutls-cli", [
        "--x509cafile",
        path.join(otherPki, CA_CERT),
        "--port",
        String(spiceTlsPort),
        MGMT,
      ]);
      expect(bad.exitCode).not.toBe(0);
      expect(`${bad.stdout}\n${bad.stderr}`).toMatch(/NOT trusted|signer not found|verification failed/i);
    });

    it("kvmstrap vm console --spice prints a .vv whose ports, CA and host-subject reach and verify the console", async () => {
      const cli = (...args: string[]) =>
        execa(
          "node",
          ["bin/kvmstrap.js", "vm", "console", NAME, ...args, "--connect", lv.uri, "--pki-root", pki],
          {
            reject: false,
            env: { LC_ALL: "C" },
          },
        );
      const spice = await cli("--spice");
      expect(spice.exitCode, spice.stderr).toBe(0);
      const vv = Object.fromEntries(
        spice.stdout
          .split("\n")
          .filter((l) => l.includes("="))
          .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
      );
      expect(vv).toMatchObject({
        type: "spice",
        host: MGMT,
        "tls-port": String(spiceTlsPort),
        "secure-channels": "all",
      });
      expect(vv.port).toBeUndefined();
      const caFile = path.join(work, "vv-ca.pem");
      await writeFile(caFile, String(vv.ca).replace(/\\n/g, "\n"));
      const r = await inNet("gnutls-cli", [
        "--x509cafile",
        caFile,
        "--port",
        String(vv["tls-port"]),
        String(vv.host),
      ]);
      expect(r.stdout).toContain("The certificate is trusted");
      // host-subject names the certificate the server presented.
      for (const part of String(vv["host-subject"]).split(",")) expect(r.stdout).toContain(part);
      const vnc = await cli("--vnc", "--json");
      expect(vnc.exitCode, vnc.stderr).toBe(0);
      expect(JSON.parse(vnc.stdout)).toMatchObject({
        type: "vnc",
        host: MGMT,
        port: vncPort,
        uri: `vnc://${MGMT}:${vncPort}`,
      });
      const missing = await execa(
        "node",
        ["bin/kvmstrap.js", "vm", "console", "no-such-vm", "--vnc", "--connect", lv.uri],
        {
          reject: false,
        },
      );
      expect(missing.exitCode).toBe(2);
      expect(missing.stderr).toContain('no VM named "no-such-vm"');
    });
  },
);
