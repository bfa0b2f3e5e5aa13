// An installed UEFI machine that boots the network first goes on to its disk: `kvmstrap serve --dhcp
// full` sends the installed node its local-boot script, which under UEFI chains the netboot set's
// grub-local.efi (iso-build/grub-local.cfg); GRUB finds the ESP with EFI/debian and chainloads its
// loader. Without it, iPXE's exit sends EDK2 back to PXE (a loop). The guest is OVMF with the NIC
// first and a disk second; the disk's ESP holds, at EFI/debian/grubx64.efi, a GRUB that prints a
// marker and powers off: that marker on the serial console is the proof that the disk's loader ran.
// The node is made "installed" through serve's own node routes with its token, as the appliance does.
// Serial log and events: iso-build/out/test-logs/pxe-uefi-local-*.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NODE_PATHS } from "../../../src/app/node-protocol.js";
import { has, Netns, removeTempDirs, tempDir } from "../dhcp4/netns.js";
import { ensureNetboot, LOG_DIR, NETBOOT, netbootManifest } from "./netboot.js";
import {
  chainUnavailable,
  entered,
  nodeStatus,
  ovmfUnavailable,
  type Serve,
  startGuest,
  startServe,
} from "./rig.js";

const SERVER_IP = "10.83.0.1";
const SERVER = `http://${SERVER_IP}:8080`;
const MAC = "52:54:00:83:00:01";
const EVENTS = "pxe-uefi-local-serve.jsonl";
const SERIAL = path.join(LOG_DIR, "pxe-uefi-local-ovmf.log");
const MARKER = "KVMSTRAP-TEST-DISK-LOADER";
const BOOT_MS = Number(process.env.KVMSTRAP_PXE_FETCH_TIMEOUT ?? 300) * 1000;

const tools = ["grub-mkstandalone", "sfdisk", "mformat", "mcopy", "mmd", "curl"].filter((t) => !has(t));
const why =
  chainUnavailable() ??
  ovmfUnavailable() ??
  (tools.length ? `missing ${tools.join(", ")} (scripts/setup-test-host.sh installs them)` : undefined);

let ns: Netns;
let serve: Serve | undefined;
let missing: string | undefined;

const run = (cmd: string, args: string[], input?: string) => {
  const r = spawnSync(cmd, args, { input, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
};

/** A GPT disk whose ESP holds a GRUB at EFI/debian/grubx64.efi that prints MARKER and powers off. */
function installedDisk(dir: string): string {
  const cfg = path.join(dir, "marker.cfg");
  writeFileSync(cfg, `echo "${MARKER} reached from the disk's ESP"\nsleep 1\nhalt\n`);
  const loader = path.join(dir, "grubx64.efi");
  run("grub-mkstandalone", [
    ...["-O", "x86_64-efi", "--locales=", "--themes=", "--fonts=", "-o", loader],
    `boot/grub/grub.cfg=${cfg}`,
  ]);
  const disk = path.join(dir, "disk.img");
  run("truncate", ["-s", "64M", disk]);
  run("sfdisk", ["-q", disk], "label: gpt\nstart=2048, type=uefi\n");
  const esp = `${disk}@@1M`;
  run("mformat", ["-i", esp, "-F", "::"]);
  run("mmd", ["-i", esp, "::/EFI", "::/EFI/debian"]);
  run("mcopy", ["-i", esp, loader, "::/EFI/debian/grubx64.efi"]);
  return disk;
}

/** What the appliance does: its script gives it a token; it reports up to installed. */
function markInstalled(): void {
  const script = ns.exec("curl", ["-sf", `${SERVER}/boot/${MAC.replaceAll(":", "-")}.ipxe`]);
  const token = /kvmstrap\.token=(\S+)/.exec(script)?.[1];
  expect(token, script).toBeTruthy();
  for (const phase of ["appliance-up", "installing", "installed"]) {
    const body = JSON.stringify({ type: "node", phase, time: new Date().toISOString(), detail: "test" });
    const code = ns.exec("curl", [
      ...["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"],
      ...["-H", `authorization: Bearer ${token}`, "-H", "content-type: application/json"],
      ...["--data", body, `${SERVER}${NODE_PATHS.events(MAC)}`],
    ]);
    expect(code, phase).toBe("204");
  }
}

beforeAll(async () => {
  if (why) return;
  missing = await ensureNetboot();
  if (missing) return;
  if (!(await netbootManifest()).files["grub-local.efi"])
    missing = "the netboot set has no grub-local.efi (rebuild it: npm run image)";
  if (missing) return;
  await mkdir(LOG_DIR, { recursive: true });
  writeFileSync(path.join(LOG_DIR, EVENTS), "");
  writeFileSync(SERIAL, "");
  ns = new Netns(`kvms-ul-${process.pid}`);
  ns.bridge("br0", `${SERVER_IP}/24`);
  ns.tap("tap0", "br0");
  serve = await startServe(
    ns,
    [
      ...["--dhcp", "full", "--dhcp-range", "10.83.0.100-10.83.0.119", "--interface", "br0"],
      ...["--http-port", "8080", "--netboot", NETBOOT, "--state-dir", tempDir("uefi-local-state")],
    ],
    EVENTS,
  );
}, 1_800_000);
afterAll(async () => {
  await serve?.stop();
  ns?.destroy();
  removeTempDirs();
});

describe.skipIf(why)(`UEFI local boot from the network${why ? ` (skipped: ${why})` : ""}`, () => {
  it(
    "OVMF with the network first: the installed node's script chains grub-local.efi, which boots the disk's EFI/debian loader",
    async (ctx) => {
      if (missing) ctx.skip(missing);
      markInstalled();
      const disk = installedDisk(tempDir("uefi-local-disk"));
      const t = Date.now();
      const vm = startGuest(ns, "ovmf", MAC, SERIAL, "tap0", disk);
      const serial = () => (existsSync(SERIAL) ? readFileSync(SERIAL, "latin1") : "");
      try {
        // The marker GRUB powers the guest off; -no-reboot makes QEMU exit then.
        const code = await Promise.race([
          vm.exited,
          new Promise<"timeout">((r) => setTimeout(() => r("timeout"), BOOT_MS)),
        ]);
        const out = serial();
        expect(code, `QEMU: ${vm.stderr()}\nserial tail:\n${out.slice(-3000)}`).toBe(0);
        expect(out).toContain(`kvmstrap: ${MAC} is installed, booting from the local disk`);
        expect(out).toContain("kvmstrap: looking for this machine's installed system (EFI/debian)");
        expect(out).toMatch(
          /kvmstrap: booting the installed system: \(hd\d+,gpt1\)\/EFI\/debian\/grubx64\.efi/,
        );
        expect(out).toContain(`${MARKER} reached from the disk's ESP`);
        console.log(
          `[test:pxe] ovmf ${MAC}: power-on to the disk's loader in ${((Date.now() - t) / 1000).toFixed(0)} s`,
        );
      } finally {
        await vm.stop();
      }
      const node = nodeStatus(ns, SERVER, MAC);
      expect(entered(node, "local-boot")?.detail).toBe("installed: sent to its local disk");
    },
    BOOT_MS + 60_000,
  );
});
