// The managed block both the consoles and the hardening plans write into qemu.conf: two owners in
// one file, each putting back exactly what it commented out and leaving the other's block alone.
import { describe, expect, it } from "vitest";
import { type ConfSetting, managedBlock, withManagedBlock } from "../../src/plan/managed-conf-block.js";

const CONSOLES = managedBlock("consoles", "#kvmstrap-replaced# ");
const HARDENING = managedBlock("hardening", "#kvmstrap-hardening# ");

// An operator's qemu.conf: comments, a blank line, assignments both blocks will take over, and one
// neither touches.
const ORIGINAL = [
  "# qemu.conf, edited by hand",
  'vnc_listen = "0.0.0.0"',
  "",
  "  seccomp_sandbox = 0",
  'user = "libvirt-qemu"',
  "",
].join("\n");
const VNC: ConfSetting[] = [
  ["vnc_listen", "192.0.2.10"],
  ["vnc_tls", 1],
];
const SECCOMP: ConfSetting[] = [["seccomp_sandbox", 1]];

describe("withManagedBlock", () => {
  it("writes the block at the end, quoting strings, and comments out the keys it takes over", () => {
    const out = withManagedBlock(CONSOLES, ORIGINAL, VNC);
    expect(out).toBe(
      [
        "# qemu.conf, edited by hand",
        '#kvmstrap-replaced# vnc_listen = "0.0.0.0"',
        "",
        "  seccomp_sandbox = 0",
        'user = "libvirt-qemu"',
        "",
        CONSOLES.begin,
        'vnc_listen = "192.0.2.10"',
        "vnc_tls = 1",
        CONSOLES.end,
        "",
      ].join("\n"),
    );
    expect(withManagedBlock(CONSOLES, out, VNC)).toBe(out); // a second apply changes nothing
  });

  it("keeps two owners' blocks in one file and undoes either first, byte for byte", () => {
    const both = withManagedBlock(HARDENING, withManagedBlock(CONSOLES, ORIGINAL, VNC), SECCOMP);
    expect(both).toContain(`${CONSOLES.begin}\n`);
    expect(both).toContain(`${HARDENING.begin}\nseccomp_sandbox = 1\n${HARDENING.end}\n`);
    expect(both).toContain("#kvmstrap-hardening#   seccomp_sandbox = 0\n");

    // Undo consoles first: its line comes back, the hardening block and its comment-out stay.
    const noConsoles = withManagedBlock(CONSOLES, both, []);
    expect(noConsoles).not.toContain("kvmstrap consoles");
    expect(noConsoles).toContain('\nvnc_listen = "0.0.0.0"\n');
    expect(noConsoles).toContain(`${HARDENING.begin}\nseccomp_sandbox = 1\n${HARDENING.end}\n`);
    expect(noConsoles).toContain("#kvmstrap-hardening#   seccomp_sandbox = 0\n");
    expect(withManagedBlock(HARDENING, noConsoles, [])).toBe(ORIGINAL);

    // Undo hardening first: the indented assignment is restored as written, the consoles block stays.
    const noHardening = withManagedBlock(HARDENING, both, []);
    expect(noHardening).not.toContain("kvmstrap hardening");
    expect(noHardening).toContain("\n  seccomp_sandbox = 0\n");
    expect(noHardening).toContain(
      `${CONSOLES.begin}\nvnc_listen = "192.0.2.10"\nvnc_tls = 1\n${CONSOLES.end}\n`,
    );
    expect(withManagedBlock(CONSOLES, noHardening, [])).toBe(ORIGINAL);
  });

  it("restores a key that leaves the block and comments out one that joins it", () => {
    const first = withManagedBlock(CONSOLES, ORIGINAL, VNC);
    const next = withManagedBlock(CONSOLES, first, [["user", "qemu"]]);
    expect(next).toContain('\nvnc_listen = "0.0.0.0"\n');
    expect(next).toContain('#kvmstrap-replaced# user = "libvirt-qemu"\n');
    expect(next).not.toContain("vnc_tls");
    expect(withManagedBlock(CONSOLES, next, [])).toBe(ORIGINAL);
  });

  it("leaves a line another owner commented out to that owner", () => {
    const hardened = withManagedBlock(HARDENING, ORIGINAL, SECCOMP);
    // The consoles owner takes no seccomp key, so it neither restores nor re-prefixes that line.
    const both = withManagedBlock(CONSOLES, hardened, VNC);
    expect(both).toContain("#kvmstrap-hardening#   seccomp_sandbox = 0\n");
    expect(both.split("\n").filter((l) => l.includes("seccomp_sandbox")).length).toBe(2);
  });
});
