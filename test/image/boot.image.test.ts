// Boots the built appliance under QEMU TCG with real firmware, one guest after another, and waits
// for the live console's marker and then the TUI's title on the serial console (ttyS0): the ISO as a
// CD under SeaBIOS, a site's Secure Boot ISO (made by `kvmstrap iso prepare`) under OVMF with Secure
// Boot enforcing, and the netboot set by
// direct kernel boot with live-boot fetching the squashfs from a local HTTP server. The OVMF CD boot
// and the raw-disk (USB stick) boot are the first halves of install.image.test.ts's two installs.
import { createReadStream } from "node:fs";
import { copyFile, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepareIso } from "../../src/app/iso-prepare.js";
import { bootUntil, isoPath, LIVE_MARKER, manifest, NETBOOT, secureBootIsoPath, TUI_TITLE } from "./image.js";

const OVMF_CODE_SECBOOT = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
const OVMF_VARS_MS = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"; // Microsoft keys enrolled, Secure Boot on
const EXPECT = [LIVE_MARKER, TUI_TITLE];

let iso = "";
let scratch = "";
beforeAll(async () => {
  iso = await isoPath();
  scratch = await mkdtemp(path.join(tmpdir(), "kvmstrap-image-"));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

function report(name: string, seen: Record<string, number>): void {
  console.log(
    `[test:image] ${name}: ${Object.entries(seen)
      .map(([k, s]) => `"${k}" at ${s.toFixed(0)} s`)
      .join(", ")}`,
  );
}

describe("the appliance boots to the kvmstrap TUI on the serial console", () => {
  it("as a CD under SeaBIOS (BIOS El Torito); q leaves the TUI for a shell where kvmstrap detect runs", async () => {
    const r = await bootUntil(
      "seabios-cd",
      ["-M", "pc", "-cdrom", iso, "-boot", "d"],
      [
        ...EXPECT,
        { send: "q", every: 5000 }, // until the TUI takes keys (it may still be detecting)
        "This is a root shell",
        // Ctrl-U first: the q's typed while the TUI was busy wait in the shell's line.
        {
          send: '\x15kvmstrap detect --json >/tmp/d.json; echo "DETECT-RC=$? BYTES=$(wc -c </tmp/d.json)"\r',
        },
        /DETECT-RC=(\d+) BYTES=(\d+)/,
      ],
    );
    report("seabios-cd", r.seen);
    // The marker carries `kvmstrap --version` as run on the live system: the bundled node works there.
    expect(r.log).toContain(`${LIVE_MARKER} (${(await manifest()).version}, secureboot=bios)`);
    // detect on the live system: exit 0 (ready) or 1 (not ready: TCG guest), and a JSON report.
    const [, rc, bytes] = /DETECT-RC=(\d+) BYTES=(\d+)/.exec(r.log) ?? [];
    expect(["0", "1"]).toContain(rc);
    expect(Number(bytes)).toBeGreaterThan(1000);
  });

  it("a site's Secure Boot ISO (iso prepare, answer embedded) as a CD under OVMF with Secure Boot enforcing", async () => {
    // `kvmstrap iso prepare` rewrites GRUB's configuration and adds the answer; shim and the signed
    // GRUB must still boot it, and the agent must find the answer in the image.
    const answer = path.join(scratch, "answer.yaml");
    await writeFile(answer, "version: 1\ninstall:\n  disk:\n    serial: SB-TARGET\n");
    const site = path.join(scratch, "site-secureboot.iso");
    await prepareIso({ input: await secureBootIsoPath(), output: site, answerFile: answer, auto: false });
    const vars = path.join(scratch, "OVMF_VARS.ms.fd");
    await copyFile(OVMF_VARS_MS, vars);
    const r = await bootUntil(
      "ovmf-secureboot-cd",
      ["-M", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"]
        .concat(["-drive", `if=pflash,format=raw,readonly=on,file=${OVMF_CODE_SECBOOT}`])
        .concat(["-drive", `if=pflash,format=raw,file=${vars}`, "-cdrom", site]),
      // The agent's lines, not the TUI's title: the two start together, in either order.
      [LIVE_MARKER, /KVMSTRAP-AGENT: answer-fetched from \S+/, /no unattended install/],
    );
    report("ovmf-secureboot-cd", r.seen);
    // shim, GRUB and the kernel passed the firmware's and shim's signature checks to get here.
    expect(r.log).toContain(`${LIVE_MARKER} (${(await manifest()).version}, secureboot=on)`);
    // No kvmstrap.auto=install: the answer waits for the operator at the console.
    expect(r.log).toMatch(/kvmstrap\.auto=install is not on the command line/);
  });

  describe("netboot", () => {
    let server: Server;
    let requests: string[] = [];
    beforeAll(async () => {
      server = createServer((req, res) => {
        const name = path.basename(req.url ?? "");
        requests.push(name);
        const file = path.join(NETBOOT, name);
        stat(file).then(
          (s) => {
            res.writeHead(200, { "content-length": s.size });
            createReadStream(file).pipe(res);
          },
          () => res.writeHead(404).end(),
        );
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      requests = [];
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it("by direct kernel boot with the manifest's command line, live-boot fetching the squashfs over HTTP", async () => {
      const m = await manifest();
      const port = (server.address() as AddressInfo).port;
      // QEMU's user network reaches the host's loopback at 10.0.2.2.
      const append = m.cmdline.replace("@BASE@", `http://10.0.2.2:${port}`);
      expect(append).toContain(`fetch=http://10.0.2.2:${port}/filesystem.squashfs`);
      const r = await bootUntil(
        "netboot-direct",
        [
          "-M",
          "pc",
          "-kernel",
          path.join(NETBOOT, "vmlinuz"),
          "-initrd",
          path.join(NETBOOT, "initrd.img"),
        ].concat(["-append", append, "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"]),
        EXPECT,
      );
      report("netboot-direct", r.seen);
      expect(requests).toContain("filesystem.squashfs");
    });
  });
});
