// The TUI's Install screen on a synthetic live system booted from a USB stick: the candidates in
// the rule set's order (blank disk, blank USB disk, data disk, the stick excluded), refusals said on
// the line, a data disk only after w, the serial typed back, and the chosen disk written into the
// draft's install section. ASCII theme (TERM=linux); the 80x24 check of every screen, this one
// included, is test/tui/terminal.test.tsx's (tmux).
import { afterAll, describe, expect, it } from "vitest";
import { SCREENS } from "../../src/tui/screens.js";
import { drive, KEY } from "../tui/helpers.js";
import { BLANK_USB, DATA, liveHost, STICK, TARGET } from "./live-host.js";

const host = liveHost({
  disks: [STICK, DATA, BLANK_USB, TARGET],
  mounts: [["/dev/sdb", "/run/live/medium", "iso9660"]],
});
afterAll(() => host.cleanup());
const at = SCREENS.length; // Install comes after the wizard's screens on a live system

describe("TUI Install screen", () => {
  it("lists the disks in order, refuses the boot medium, asks for the serial and sets install:", async () => {
    const d = await drive(host.root, { start: at });
    const f = await d.waitFor("Install onto");
    const order = ["vda", "sdc", "sda", "sdb"].map((n) => f.indexOf(`${n} (`));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(f).toMatch(/sdb \(.*no: it is the boot medium/);
    expect(f).toMatch(/sdc \(.*usable \(USB\/removable\)/);
    // The stick, last: refused with the reason.
    await d.press(KEY.down, KEY.down, KEY.down);
    expect(await d.press(KEY.enter)).toMatch(/refused: sdb: it is the boot medium/);
    // The data disk: refused until w, then it asks for the serial.
    await d.press(KEY.up);
    expect(await d.press(KEY.enter)).toMatch(/refused: sda holds data/);
    await d.press("w");
    expect(await d.press(KEY.enter)).toMatch(/ERASE sda\? type its serial/);
    await d.type("WRONG");
    expect(await d.press(KEY.enter)).toMatch(/that is not its serial; nothing chosen/);
    // The blank virtio disk, serial typed back: chosen.
    await d.press(KEY.up, KEY.up);
    await d.press(KEY.enter);
    await d.type(TARGET.serial as string);
    expect(await d.press(KEY.enter)).toMatch(/vda chosen/);
    const draft = await d.draftWhere((x) => x.install !== undefined);
    expect(draft.install).toEqual({ disk: { byId: "virtio-DISK_KVMSTRAP-TARGET" }, wipe: false });
    d.unmount();
  });
});
