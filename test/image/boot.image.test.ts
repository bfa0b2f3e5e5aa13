// Boots the built appliance under QEMU TCG with real firmware, one guest after another, and waits
// for the live console's marker and then the TUI's title on the serial console (ttyS0): the ISO as a
// CD under SeaBIOS, and a site's Secure Boot ISO (made by `kvmstrap iso prepare`) under OVMF with
// Secure Boot enforcing. The raw-disk (USB stick) boot and the OVMF CD boot with an answer URL are in
// install.image.test.ts; the netboot set (PXE, live-boot fetching the squashfs over HTTP) boots in the
// fleet tier's rack rollout (test/fleet/rollout/rack.fleet.test.ts), under SeaBIOS and OVMF.
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepareIso } from "../../src/app/iso-prepare.js";
import { bootUntil, isoPath, LIVE_MARKER, manifest, secureBootIsoPath, TUI_TITLE } from "./image.js";

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
});
