// The SR-IOV script runs for real against a synthetic sysfs tree (SYSFS_ROOT) with a stub `ip` on PATH
// that records its arguments; there is no SR-IOV hardware (nor netdevsim) in this kernel.
import { readFileSync, statSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  renderSriovScript,
  renderSriovUnit,
  SRIOV_SCRIPT_PATH,
  type SriovPf,
} from "../../../src/plan/render/sriov.js";
import { buildSriovHost, SRIOV, SysfsFixture } from "../../helpers/sysfs-fixture.js";
import { canVerifyUnits, run, tmp, verifyUnit } from "./helpers.js";

let fx: SysfsFixture | undefined;
afterEach(() => fx?.cleanup());

const PF: SriovPf = {
  pfName: SRIOV.pfName,
  pciAddress: SRIOV.pf,
  numVfs: 4,
  vfs: [
    { index: 0, mac: "02:00:00:00:01:00", vlan: 100, trust: true, spoofchk: false },
    { index: 3, mac: "02:00:00:00:01:03" },
    { index: 1 },
  ],
};

function runScript(pfs: SriovPf[]) {
  const f = buildSriovHost(new SysfsFixture(tmp("sriov")));
  fx = f;
  const numvfs = path.join(f.root, f.pciPath(SRIOV.pf), "sriov_numvfs");
  utimesSync(numvfs, 1_000_000, 1_000_000);
  const bin = path.join(f.root, "bin");
  f.file("/bin/ip", '#!/bin/sh\necho "ip $*" >>"$IP_LOG"\n');
  writeFileSync(path.join(f.root, "log"), "");
  writeFileSync(path.join(f.root, "script"), renderSriovScript(pfs));
  run(["chmod", "+x", path.join(bin, "ip")]);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${bin}:${process.env.PATH}`,
    SYSFS_ROOT: path.join(f.root, "sys"),
    KMSG: "/dev/null",
    IP_LOG: path.join(f.root, "log"),
  };
  const r = run(["sh", path.join(f.root, "script")], { env });
  return {
    ...r,
    numvfs: readFileSync(numvfs, "utf8"),
    touched: statSync(numvfs).mtimeMs !== 1_000_000_000,
    ip: readFileSync(path.join(f.root, "log"), "utf8").split("\n").filter(Boolean),
  };
}

describe("renderSriovScript", () => {
  it("is POSIX sh and refuses malformed input", () => {
    expect(run(["sh", "-n", "-c", renderSriovScript([PF])]).code).toBe(0);
    expect(() => renderSriovScript([{ ...PF, pfName: "x; reboot" }])).toThrow();
    expect(() => renderSriovScript([{ ...PF, vfs: [{ index: 4 }] }])).toThrow(/bad VF 4/);
    expect(() => renderSriovScript([{ ...PF, vfs: [{ index: 0, mac: "nope" }] }])).toThrow(/bad MAC/);
  });

  it("changes sriov_numvfs when it differs, then configures each VF with ip link", () => {
    const r = runScript([PF]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.numvfs).toBe("4\n");
    expect(r.touched).toBe(true);
    expect(r.ip).toEqual([
      `ip link set dev ${SRIOV.pfName} vf 0 mac 02:00:00:00:01:00 vlan 100 trust on spoofchk off`,
      `ip link set dev ${SRIOV.pfName} vf 3 mac 02:00:00:00:01:03`,
    ]);
  });

  it("leaves sriov_numvfs alone when it already matches (re-creating VFs would yank them from guests)", () => {
    const r = runScript([{ ...PF, numVfs: 2, vfs: [{ index: 1, trust: false }] }]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.touched).toBe(false);
    expect(r.ip).toEqual([`ip link set dev ${SRIOV.pfName} vf 1 trust off`]);
  });

  it("REFUSES a PF whose netdev name is not at that PCI address: nothing written, exit non-zero", () => {
    const r = runScript([{ ...PF, pfName: "eth9" }]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`REFUSED ${SRIOV.pf}: no netdev eth9 there`);
    expect(r.touched).toBe(false);
    expect(r.ip).toEqual([]);
  });
});

describe("renderSriovUnit", () => {
  const unit = renderSriovUnit();
  it("oneshot before network-pre and libvirtd", () => {
    expect(unit).toMatch(/^Type=oneshot$/m);
    expect(unit).toMatch(/^Before=.*network-pre\.target.*libvirtd\.service/m);
    expect(unit).toContain(`ExecStart=${SRIOV_SCRIPT_PATH}`);
  });
  const ok = canVerifyUnits();
  if (!ok) it.skip("systemd-analyze verify: not usable in this environment", () => {});
  it.skipIf(!ok)("systemd-analyze verify accepts it", () => {
    const r = verifyUnit("kvmstrap-sriov.service", unit, renderSriovScript([PF]));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
  });
});
