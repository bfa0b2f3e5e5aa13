// The unattended install, end to end on the built appliance, as a site does it: `kvmstrap iso
// prepare` (the app layer the CLI calls) makes the site's ISO, with the answer embedded (SeaBIOS) or
// fetched over HTTP from this test at boot (OVMF with Secure Boot enforcing booting the site's Secure
// Boot ISO, QEMU's user network: 10.0.2.2 is this host), and
// kvmstrap.auto=install on the default entry. Nothing is typed. Under SeaBIOS the firmware boots the
// USB stick holding the prepared ISO (the written-USB path, a raw disk: the boot medium the install
// must not touch). The boot agent installs onto the blank virtio disk the answer names and reboots,
// which ends QEMU (-no-reboot). The stick's sha256 must not change; the installed root must have been
// closed cleanly (no journal to replay) with the install's logs in /var/log/kvmstrap; then the
// installed disk boots alone until its first-boot unit prints KVMSTRAP-VERIFY: PASS on the serial
// console. Under OVMF the Secure Boot ISO boots as a CD (shim and the signed GRUB accept the
// configuration prepare rewrote) and fetches its answer from the URL prepare put on its
// command line, checks its sha256 and starts the install (the UEFI install to its end is the fleet
// tier's rack rollout). Guests run one after another (TCG, 2 cores). boot.image.test.ts keeps the
// SeaBIOS CD with the TUI.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepareIso } from "../../src/app/iso-prepare.js";

// The install copies the whole live root under TCG: the boots that run it get a longer bound.
process.env.KVMSTRAP_IMAGE_BOOT_TIMEOUT ??= "2400";
const image = await import("./image.js");

const OVMF_CODE_SECBOOT = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
const OVMF_VARS_MS = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"; // Microsoft keys enrolled, Secure Boot on
const SERIAL = "KVMSTRAP-TARGET";
const ANSWER = `version: 1\ninstall:\n  disk:\n    serial: ${SERIAL}\n`;
/** The first-boot unit's verdict (units/): apply --resume, then kvmstrap verify --console. */
const VERDICT = /KVMSTRAP-VERIFY: (PASS|FAIL)/;
/** What the boot agent says when the unattended install cannot go on (it then stays up). */
const AGENT_FAILED = /KVMSTRAP-AGENT: (?:answer|install): FAILED[^\n]*/;

let scratch = "";
const sha256 = (file: string) =>
  new Promise<string>((resolve, reject) => {
    const h = createHash("sha256");
    createReadStream(file)
      .on("data", (c) => h.update(c))
      .on("end", () => resolve(h.digest("hex")))
      .on("error", reject);
  });

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), `kvmstrap-install-image-${process.pid}-`));
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

/** A blank 12 GiB disk (raw: the guest's writes are in the file once QEMU exits) and its QEMU args. */
async function blankDisk(name: string): Promise<{ file: string; args: string[] }> {
  const file = path.join(scratch, `${name}.raw`);
  await execa("truncate", ["-s", "12G", file]);
  return {
    file,
    args: [
      "-drive",
      `if=none,id=target,format=raw,file=${file}`,
      "-device",
      `virtio-blk-pci,drive=target,serial=${SERIAL}`,
    ],
  };
}

/** A USB disk holding a copy of `iso`, as an operator's stick; `boot`: the firmware boots from it. */
async function stickOf(iso: string, name: string, boot = false): Promise<{ file: string; args: string[] }> {
  const file = path.join(scratch, `${name}-stick.raw`);
  await copyFile(iso, file);
  return {
    file,
    args: [
      "-device",
      "qemu-xhci,id=xhci",
      "-drive",
      `if=none,id=stick,format=raw,file=${file}`,
      "-device",
      `usb-storage,bus=xhci.0,drive=stick,serial=USBSTICK42${boot ? ",bootindex=1" : ""}`,
    ],
  };
}

/** OVMF with Microsoft's keys enrolled and Secure Boot enforcing (SMM, a secure flash). */
async function ovmfSecureBoot(name: string): Promise<string[]> {
  const vars = path.join(scratch, `${name}-OVMF_VARS.ms.fd`);
  await copyFile(OVMF_VARS_MS, vars);
  return ["-M", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"]
    .concat(["-drive", `if=pflash,format=raw,readonly=on,file=${OVMF_CODE_SECBOOT}`])
    .concat(["-drive", `if=pflash,format=raw,file=${vars}`]);
}

/**
 * The installed root, read from the disk image on this host: closed cleanly (ext4 keeps
 * needs_recovery while mounted anywhere) and holding the install's logs.
 */
async function inspectInstalled(disk: string): Promise<{ features: string; logs: string[] }> {
  // The root partition (3) by its offset: partition device nodes of a loop device need udev,
  // which a CI container may not run.
  const part = (await execa("partx", ["-g", "-b", "-o", "START,SECTORS", "--nr", "3", disk])).stdout.trim();
  const [start, sectors] = part.split(/\s+/).map(Number);
  const loop = (
    await execa("losetup", [
      "--find",
      "--show",
      "--read-only",
      "--offset",
      String((start ?? 0) * 512),
      "--sizelimit",
      String((sectors ?? 0) * 512),
      disk,
    ])
  ).stdout.trim();
  const mnt = path.join(scratch, "mnt");
  await mkdir(mnt, { recursive: true });
  try {
    const features = (await execa("dumpe2fs", ["-h", loop])).stdout;
    await execa("mount", ["-o", "ro,noload", loop, mnt]);
    try {
      const logs = (await execa("find", [path.join(mnt, "var/log/kvmstrap"), "-type", "f"])).stdout
        .split("\n")
        .map((f) => path.relative(path.join(mnt, "var/log/kvmstrap"), f));
      return { features, logs };
    } finally {
      await execa("umount", [mnt]);
    }
  } finally {
    await execa("losetup", ["-d", loop]);
  }
}

/**
 * Boots the prepared ISO until the agent has installed and rebooted; checks the stick and the disk.
 * `from`: the ISO as a CD beside the stick, or the stick itself (the ISO written to USB, a raw
 * disk): then the boot medium is the stick, which the install must leave alone.
 */
async function installUnattended(
  name: string,
  firmware: string[],
  iso: string,
  from: "cd" | "stick",
  extra: string[] = [],
): Promise<{ disk: { file: string; args: string[] }; log: string }> {
  const disk = await blankDisk(name);
  const stick = await stickOf(iso, name, from === "stick");
  const before = await sha256(stick.file);
  const medium = from === "cd" ? ["-cdrom", iso, "-boot", "d"] : [];
  const r = await image.bootUntil(
    `install-${name}`,
    [...firmware, ...medium, ...disk.args, ...stick.args, ...extra],
    [image.LIVE_MARKER, "KVMSTRAP-AGENT: installing", /KVMSTRAP-AGENT: installed/, image.EXIT],
    { failOn: AGENT_FAILED },
  );
  report(`install-${name}`, r.seen);
  expect(r.log).toMatch(/KVMSTRAP-AGENT: network: /);
  expect(r.log).toMatch(/KVMSTRAP-AGENT: rebooting/);
  expect(await sha256(stick.file), "the USB stick was written").toBe(before);
  const installed = await inspectInstalled(disk.file);
  expect(installed.features).toMatch(/^Filesystem features:/m);
  expect(installed.features, "the installed root was not unmounted cleanly").not.toMatch(
    /^Filesystem features:.*needs_recovery/m,
  );
  expect(installed.logs).toEqual(
    expect.arrayContaining([
      expect.stringMatching(/^install\/runs\/.+\.json$/),
      "install/log/install-events.jsonl",
    ]),
  );
  return { disk, log: r.log };
}

async function firstBoot(name: string, firmware: string[], disk: string[]): Promise<void> {
  const r = await image.bootUntil(`installed-${name}`, [...firmware, ...disk], [VERDICT]);
  report(`installed-${name}`, r.seen);
  expect(r.log).not.toMatch(/KVMSTRAP-LIVE/);
  expect(r.log, "the first boot replayed the root's journal").not.toMatch(/recovering journal/);
  expect(VERDICT.exec(r.log)?.[0]).toBe("KVMSTRAP-VERIFY: PASS");
}

describe("unattended install from a prepared ISO, then the installed disk boots alone to KVMSTRAP-VERIFY: PASS", () => {
  it("SeaBIOS, booted from the USB stick (the ISO written to it): the answer embedded in the ISO", async () => {
    const answer = path.join(scratch, "answer.yaml");
    await writeFile(answer, ANSWER);
    const iso = path.join(scratch, "site-embedded.iso");
    const prepared = await prepareIso({
      input: await image.isoPath(),
      output: iso,
      answerFile: answer,
      auto: true,
    });
    expect(prepared.defaultEntry.cmdline).toMatch(/kvmstrap\.auto=install/);
    const { disk, log } = await installUnattended("seabios", ["-M", "pc"], iso, "stick");
    expect(log).toMatch(/KVMSTRAP-LIVE: READY on ttyS0 \(.*secureboot=bios\)/);
    await firstBoot("seabios", ["-M", "pc", "-boot", "c"], disk.args);
  }, 3_600_000);

  it("OVMF with Secure Boot enforcing, a site's Secure Boot ISO as a CD: the answer fetched over HTTP at boot (kvmstrap.answer= with its sha256), and the install under way", async () => {
    const body = Buffer.from(ANSWER);
    const requests: string[] = [];
    const server: Server = createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      if (req.url !== "/answer.yaml") return void res.writeHead(404).end();
      res.writeHead(200, { "content-type": "application/yaml", "content-length": body.length }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const port = (server.address() as AddressInfo).port;
      const iso = path.join(scratch, "site-url.iso");
      // `kvmstrap iso prepare` rewrites GRUB's configuration: shim and the signed GRUB must still
      // boot the Secure Boot ISO it makes.
      await prepareIso({
        input: await image.secureBootIsoPath(),
        output: iso,
        answerUrl: `http://10.0.2.2:${port}/answer.yaml`,
        answerSha256: createHash("sha256").update(body).digest("hex"),
        auto: true,
      });
      // The UEFI install and its first boot run to the end in the fleet tier's rack rollout (an
      // OVMF node installed over PXE, booted from its disk by the removable path); here the CD boot,
      // the answer URL and its sha256 are what is new, so the guest stops once the install started.
      const disk = await blankDisk("ovmf");
      const net = ["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"];
      const r = await image.bootUntil(
        "install-ovmf-cd",
        [...(await ovmfSecureBoot("install")), "-cdrom", iso, "-boot", "d", ...disk.args, ...net],
        [
          image.LIVE_MARKER,
          /KVMSTRAP-AGENT: answer-fetched from \S+ \(sha256 [0-9a-f]{16}/,
          "KVMSTRAP-AGENT: installing",
        ],
        { failOn: AGENT_FAILED },
      );
      report("install-ovmf-cd", r.seen);
      // shim, GRUB and the kernel passed the firmware's and shim's signature checks to get here.
      expect(r.log).toMatch(/KVMSTRAP-LIVE: READY on ttyS0 \(.*secureboot=on\)/);
      expect(requests).toContain("GET /answer.yaml");
    } finally {
      await new Promise((r) => server.close(r));
    }
  }, 3_600_000);
});
