// The unattended install, end to end on the built appliance: the ISO boots as a CD under SeaBIOS
// with a blank virtio disk and a second, USB disk holding a copy of the ISO (what an operator's
// stick looks like); over the serial console `kvmstrap install --answer FILE --yes` installs onto the
// disk the answer names; the stick's sha256 must not change. Then the installed disk boots alone,
// under SeaBIOS until the first-boot unit prints KVMSTRAP-VERIFY: PASS on the serial console, then
// under OVMF (no boot entries: the removable path) up to a login prompt. Guests run one after another (TCG, 2 cores).
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The install copies the whole live root under TCG: the boot that runs it gets a longer bound.
process.env.KVMSTRAP_IMAGE_BOOT_TIMEOUT ??= "2400";
const image = await import("./image.js");

const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const SERIAL = "KVMSTRAP-TARGET";
const ANSWER = `version: 1\\ninstall:\\n  disk:\\n    serial: ${SERIAL}\\n`;
const UP = /login: |KVMSTRAP-VERIFY: (PASS|FAIL)/;
/** The first-boot unit's verdict (units/): apply --resume, then kvmstrap verify --console. */
const VERDICT = /KVMSTRAP-VERIFY: (PASS|FAIL)/;

let scratch = "";
let disk = "";
let stick = "";
const sha256 = (file: string) =>
  new Promise<string>((resolve, reject) => {
    const h = createHash("sha256");
    createReadStream(file)
      .on("data", (c) => h.update(c))
      .on("end", () => resolve(h.digest("hex")))
      .on("error", reject);
  });
const target = () => [
  "-drive",
  `if=none,id=target,format=raw,file=${disk}`,
  "-device",
  `virtio-blk-pci,drive=target,serial=${SERIAL}`,
];

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), `kvmstrap-install-image-${process.pid}-`));
  // Raw, not qcow2: the guest is killed once the install has synced, and raw writes are already in
  // the host file by then (a qcow2 keeps metadata in qemu until it flushes).
  disk = path.join(scratch, "target.raw");
  stick = path.join(scratch, "stick.raw");
  await execa("truncate", ["-s", "12G", disk]);
  await copyFile(await image.isoPath(), stick);
});
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

function report(name: string, seen: Record<string, number>): void {
  console.log(
    `[test:image] ${name}: ${Object.entries(seen)
      .map(([k, s]) => `"${k}" at ${s.toFixed(0)} s`)
      .join(", ")}`,
  );
}

describe("kvmstrap install onto a virtual disk, then the installed disk boots alone", () => {
  it("installs unattended from the CD onto the disk the answer names; the USB stick is not touched", async () => {
    const before = await sha256(stick);
    const r = await image.bootUntil(
      "install-seabios",
      ["-M", "pc", "-cdrom", await image.isoPath(), "-boot", "d", ...target()].concat([
        "-device",
        "qemu-xhci,id=xhci",
        "-drive",
        `if=none,id=stick,format=raw,file=${stick}`,
        "-device",
        "usb-storage,bus=xhci.0,drive=stick,serial=USBSTICK42",
      ]),
      [
        image.LIVE_MARKER,
        image.TUI_TITLE,
        { send: "q", every: 5000 },
        "This is a root shell",
        { send: `\x15printf '${ANSWER}' >/tmp/answer.yaml; kvmstrap install --list\r` },
        /install: (yes|no)/,
        { send: 'kvmstrap install --answer /tmp/answer.yaml --yes; echo "INSTALL-RC=$?"\r' },
        /INSTALL-RC=(\d+)/,
      ],
    );
    report("install-seabios", r.seen);
    const rc = /INSTALL-RC=(\d+)/.exec(r.log)?.[1];
    expect(rc, `install failed; serial log ${r.logFile}`).toBe("0");
    // The steps ran through the engine, the guard first; the stick was listed and refused.
    expect(r.log).toMatch(/\[done\] install\.guard/);
    expect(r.log).toMatch(/\[done\] install\.grub\.removable/);
    expect(r.log).toMatch(/install: no: it is the boot medium/);
    expect(await sha256(stick)).toBe(before);
  }, 2_700_000);

  it("the installed disk boots alone under SeaBIOS, and its first boot verifies the host", async () => {
    const r = await image.bootUntil("installed-seabios", ["-M", "pc", ...target(), "-boot", "c"], [VERDICT]);
    report("installed-seabios", r.seen);
    expect(r.log).not.toMatch(/KVMSTRAP-LIVE/);
    expect(VERDICT.exec(r.log)?.[0]).toBe("KVMSTRAP-VERIFY: PASS");
  }, 1_200_000);

  it("the installed disk boots alone under OVMF through the removable path", async () => {
    const vars = path.join(scratch, "OVMF_VARS.fd");
    await copyFile(OVMF_VARS, vars);
    const r = await image.bootUntil(
      "installed-ovmf",
      [
        "-M",
        "q35",
        "-drive",
        `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`,
        "-drive",
        `if=pflash,format=raw,file=${vars}`,
        ...target(),
      ],
      [UP],
    );
    report("installed-ovmf", r.seen);
    expect(r.log).not.toMatch(/KVMSTRAP-LIVE/);
  }, 600_000);
});
