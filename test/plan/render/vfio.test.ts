// The bind script runs for real against a synthetic sysfs tree (SYSFS_ROOT), laid out as the kernel
// documents it; writes to sysfs attributes land in plain files there and are read back.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  renderVfioBindScript,
  renderVfioBindUnit,
  VFIO_BIND_SCRIPT_PATH,
} from "../../../src/plan/render/vfio.js";
import { buildVfioGpuHost, SysfsFixture, VFIO } from "../../helpers/sysfs-fixture.js";
import { canVerifyUnits, has, run, tmp, verifyUnit } from "./helpers.js";

const GPU = { address: VFIO.gpu, vendorId: "10de", deviceId: "1b80" };
const AUDIO = { address: VFIO.audio, vendorId: "10DE", deviceId: "10f0" };

let fx: SysfsFixture | undefined;
afterEach(() => fx?.cleanup());

/** The GTX 1080 host, with the GPU back on nouveau and no override, as after a fresh boot. */
function host(): SysfsFixture {
  fx = buildVfioGpuHost(new SysfsFixture(tmp("vfio")));
  fx.bindDriver(VFIO.gpu, "nouveau");
  fx.file(`${fx.pciPath(VFIO.gpu)}/driver_override`, "(null)\n");
  return fx;
}

function runScript(f: SysfsFixture, devices: Parameters<typeof renderVfioBindScript>[0]) {
  const script = path.join(f.root, "vfio-bind"); // beside sys/, not inside it
  writeFileSync(script, renderVfioBindScript(devices));
  return run(["sh", script], {
    env: { ...process.env, SYSFS_ROOT: path.join(f.root, "sys"), KMSG: "/dev/null" },
  });
}

const read = (f: SysfsFixture, p: string) => readFileSync(path.join(f.root, p), "utf8");

describe("renderVfioBindScript", () => {
  it("is POSIX sh, never uses vfio-pci.ids, and refuses malformed input", () => {
    const text = renderVfioBindScript([GPU, AUDIO]);
    expect(run(["sh", "-n", "-c", text]).code).toBe(0);
    if (has("dash")) expect(run(["dash", "-n", "-c", text]).code).toBe(0);
    expect(text).not.toContain("vfio-pci.ids");
    expect(text).toContain("bind 0000:01:00.1 0x10de 0x10f0");
    expect(() => renderVfioBindScript([{ ...GPU, address: "01:00.0; reboot" }])).toThrow();
    expect(() => renderVfioBindScript([{ ...GPU, vendorId: "10de$(x)" }])).toThrow();
  });

  it("ids match: writes vfio-pci to driver_override, unbinds from nouveau, probes", () => {
    const f = host();
    const r = runScript(f, [GPU]);
    expect(r.code, r.stderr).toBe(0);
    const dev = f.pciPath(VFIO.gpu);
    expect(read(f, `${dev}/driver_override`)).toBe("vfio-pci\n");
    expect(read(f, "/sys/bus/pci/drivers/nouveau/unbind")).toBe(`${VFIO.gpu}\n`);
    expect(read(f, "/sys/bus/pci/drivers_probe")).toBe(`${VFIO.gpu}\n`);
    expect(r.stderr).toContain("bound to vfio-pci");
  });

  it("a device already on vfio-pci is left bound (no unbind, no probe)", () => {
    const f = host();
    const r = runScript(f, [AUDIO]);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(path.join(f.root, "sys/bus/pci/drivers/vfio-pci/unbind"))).toBe(false);
    expect(existsSync(path.join(f.root, "sys/bus/pci/drivers_probe"))).toBe(false);
  });

  it("REFUSES when the vendor:device at the address differs: touches nothing, logs, exits non-zero", () => {
    const f = host();
    const r = runScript(f, [
      { ...GPU, deviceId: "1b81" },
      { address: "0000:09:00.0", vendorId: "10de", deviceId: "1b80" },
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`REFUSED ${VFIO.gpu}: found 0x10de:0x1b80, expected 0x10de:0x1b81`);
    expect(r.stderr).toContain("REFUSED 0000:09:00.0: no such PCI device");
    expect(read(f, `${f.pciPath(VFIO.gpu)}/driver_override`)).toBe("(null)\n");
    expect(existsSync(path.join(f.root, "sys/bus/pci/drivers/nouveau/unbind"))).toBe(false);
    expect(existsSync(path.join(f.root, "sys/bus/pci/drivers_probe"))).toBe(false);
  });

  it("one refused device does not stop the others", () => {
    const f = host();
    const r = runScript(f, [{ ...AUDIO, deviceId: "ffff" }, GPU]);
    expect(r.code).toBe(1);
    expect(read(f, `${f.pciPath(VFIO.gpu)}/driver_override`)).toBe("vfio-pci\n");
  });
});

describe("renderVfioBindUnit", () => {
  const unit = renderVfioBindUnit();
  it("oneshot, after modules-load, before libvirtd and network-pre, runs the script", () => {
    expect(unit).toMatch(/^Type=oneshot$/m);
    expect(unit).toMatch(/^After=.*systemd-modules-load\.service/m);
    expect(unit).toMatch(/^Before=.*network-pre\.target.*libvirtd\.service/m);
    expect(unit).toContain(`ExecStart=${VFIO_BIND_SCRIPT_PATH}`);
  });
  const ok = canVerifyUnits();
  if (!ok) it.skip("systemd-analyze verify: not usable in this environment", () => {});
  it.skipIf(!ok)("systemd-analyze verify accepts it", () => {
    const r = verifyUnit("kvmstrap-vfio-bind.service", unit, renderVfioBindScript([GPU]));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
  });
});
