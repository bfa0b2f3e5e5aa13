// Boots the built appliance under QEMU TCG with real firmware, one guest after another, and waits
// for the live console's marker and then the TUI's title on the serial console (ttyS0): the ISO as a
// CD under SeaBIOS. The raw-disk (USB stick) boot, and a site's Secure Boot ISO (made by `kvmstrap iso
// prepare`, its answer fetched by URL) under OVMF with Secure Boot enforcing, are in
// install.image.test.ts, one boot each; the netboot set (PXE, live-boot fetching the squashfs over HTTP) boots in the
// fleet tier's rack rollout (test/fleet/rollout/rack.fleet.test.ts), under SeaBIOS and OVMF.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootUntil, isoPath, LIVE_MARKER, manifest, TUI_TITLE } from "./image.js";

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
});
