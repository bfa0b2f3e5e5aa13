// The test VM's boot sector: the embedded bytes are what verify-vm-boot.S assembles to, and the disk
// image carries this run's marker where the code reads it, with the boot signature. That the guest
// really prints the marker under libvirt is the e2e tier's test (test/e2e/verify.e2e.test.ts).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { bridgesInFiles } from "../../src/app/verify-promises.js";
import {
  TESTVM_CODE_BASE64,
  TESTVM_DISK_BYTES,
  TESTVM_MARKER,
  testVmDisk,
} from "../../src/app/verify-vm-boot.js";
import type { Action } from "../../src/plan/actions.js";
import { renderIfupdown2 } from "../../src/plan/render/ifupdown2.js";
import { renderNetplan } from "../../src/plan/render/netplan.js";
import { renderNetworkd } from "../../src/plan/render/networkd.js";
import { renderNmKeyfiles } from "../../src/plan/render/networkmanager.js";
import type { NetworkDesired } from "../../src/plan/render/types.js";
import { projectRoot } from "../helpers/shared-hosts.js";

const hasBinutils = (() => {
  try {
    execFileSync("as", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

describe("the test VM's boot sector", () => {
  it.skipIf(!hasBinutils)("is exactly what verify-vm-boot.S assembles to", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-as-"));
    try {
      execFileSync("as", ["--32", "-o", `${dir}/v.o`, path.join(projectRoot, "src/app/verify-vm-boot.S")]);
      execFileSync("ld", [
        "-m",
        "elf_i386",
        "-Ttext",
        "0x7c00",
        "--oformat",
        "binary",
        "-o",
        `${dir}/v.bin`,
        `${dir}/v.o`,
      ]);
      expect(readFileSync(`${dir}/v.bin`).equals(Buffer.from(TESTVM_CODE_BASE64, "base64"))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  if (!hasBinutils)
    it.skip("re-assembly skipped: GNU as is not installed (apt-get install binutils)", () => {});

  it("carries the marker with the nonce right after the code, NUL-terminated, and the boot signature", () => {
    const disk = testVmDisk("abc-123");
    const code = Buffer.from(TESTVM_CODE_BASE64, "base64");
    expect(disk.length).toBe(TESTVM_DISK_BYTES);
    expect(disk.subarray(0, code.length).equals(code)).toBe(true);
    const message = `\r\n${TESTVM_MARKER} abc-123\r\n\0`;
    expect(disk.subarray(code.length, code.length + message.length).toString("latin1")).toBe(message);
    expect([disk[510], disk[511]]).toEqual([0x55, 0xaa]);
    // The code loads the message from 0x7c00 + its own length (mov $msg,%si).
    expect(code.readUInt16LE(code.indexOf(Buffer.from([0xbe])) + 1)).toBe(0x7c00 + code.length);
  });

  it("refuses a nonce that is not a plain word", () => {
    expect(() => testVmDisk("a b")).toThrow(/nonce/);
    expect(() => testVmDisk("x".repeat(65))).toThrow(/nonce/);
  });
});

describe("bridges read back from the network files a plan writes", () => {
  const desired: NetworkDesired = {
    bridges: [
      { name: "br0", ports: ["eno1"], stp: false, vlanAware: false, dhcp: true, addresses: [] },
      { name: "br1", ports: [], stp: true, vlanAware: false, dhcp: false, addresses: ["192.0.2.1/24"] },
    ],
    bonds: [
      { name: "bond0", interfaces: ["eno2", "eno3"], mode: "active-backup", dhcp: true, addresses: [] },
    ],
    vlans: [],
    ports: [{ name: "eno1" }, { name: "eno2" }, { name: "eno3" }],
  };
  const action = (p: string, content: string): Action => ({
    kind: "write-file",
    id: `network.file.${p}`,
    path: p,
    content,
    mode: 0o644,
    previous: null,
    effect: "network",
    summary: "",
  });
  const stacks: Record<string, Action[]> = {
    netplan: [action("/etc/netplan/60-kvmstrap.yaml", renderNetplan(desired))],
    networkd: renderNetworkd(desired).map((f) => action(f.path, f.content)),
    ifupdown2: [action("/etc/network/interfaces.d/kvmstrap", renderIfupdown2(desired))],
    networkmanager: renderNmKeyfiles(desired).map((f) => action(f.path, f.content)),
  };
  for (const [stack, actions] of Object.entries(stacks)) {
    it(`${stack}: the bridges, not the bond or the ports`, () => {
      expect(bridgesInFiles(actions).sort()).toEqual(["br0", "br1"]);
    });
  }
});
