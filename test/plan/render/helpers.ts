// Shared by the renderer tests: sample resolved network states and a way to run the real tools.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { NetBond, NetBridge, NetVlan, NetworkDesired } from "../../../src/plan/render/types.js";

export const MAC1 = "52:54:00:aa:00:01";
export const MAC2 = "52:54:00:aa:00:02";

/** Runs argv without a shell; never throws. */
export function run(argv: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
  const [cmd = "", ...args] = argv;
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    input: opts.input,
    env: opts.env,
    cwd: opts.cwd,
    timeout: 30_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "", error: r.error };
}

/** True when `cmd` is on PATH (or an absolute path that exists and runs). */
export function has(cmd: string): boolean {
  return run(["sh", "-c", `command -v "$0" >/dev/null`, cmd]).code === 0;
}

export const tmp = (prefix: string) => mkdtempSync(path.join(tmpdir(), `kvmstrap-${prefix}-`));

const br = (b: Partial<NetBridge> & { name: string; ports: string[] }): NetBridge => ({
  stp: false,
  vlanAware: false,
  dhcp: false,
  addresses: [],
  ...b,
});
const noAddr = { dhcp: false, addresses: [] as string[] };

/** The four shapes the renderers must get right. */
export const NETS: Record<string, NetworkDesired> = {
  "bridge over a NIC with DHCP": {
    ports: [{ name: "eno1", mac: MAC1 }],
    bonds: [],
    vlans: [],
    bridges: [br({ name: "br0", ports: ["eno1"], mac: MAC1, dhcp: true })],
  },
  "static bridge with gateway and DNS": {
    ports: [{ name: "eno1", mac: MAC1 }],
    bonds: [],
    vlans: [],
    bridges: [
      br({
        name: "br0",
        ports: ["eno1"],
        mac: MAC1,
        addresses: ["192.0.2.10/24", "2001:db8::10/64"],
        gateway: "192.0.2.1",
        dns: { servers: ["192.0.2.53", "2001:db8::53"], search: ["lab.example"] },
        routes: [{ to: "198.51.100.0/24", via: "192.0.2.254", metric: 50 }],
        mtu: 9000,
      }),
    ],
  },
  "bond under a bridge": {
    ports: [
      { name: "eno1", mac: MAC1 },
      { name: "eno2", mac: MAC2 },
    ],
    bonds: [
      { name: "bond0", interfaces: ["eno1", "eno2"], mode: "active-backup", ...noAddr } satisfies NetBond,
    ],
    vlans: [],
    bridges: [br({ name: "vmbr0", ports: ["bond0"], mac: MAC1, dhcp: true, stp: true })],
  },
  "vlan on a bridge": {
    ports: [{ name: "eno1", mac: MAC1 }],
    bonds: [],
    vlans: [
      { name: "vlan20", id: 20, link: "br0", addresses: ["10.20.0.5/24"], dhcp: false } satisfies NetVlan,
    ],
    bridges: [br({ name: "br0", ports: ["eno1"], mac: MAC1, vlanAware: true, dhcp: true })],
  },
};

/** Minimal INI reader: section -> list of [key, value] (keys may repeat). */
export function parseIni(text: string): Map<string, [string, string][]> {
  const out = new Map<string, [string, string][]>();
  let current: [string, string][] | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec?.[1]) {
      current = out.get(sec[1]) ?? [];
      out.set(sec[1], current);
      continue;
    }
    const eq = line.indexOf("=");
    if (eq <= 0 || !current) throw new Error(`not INI: ${JSON.stringify(raw)}`);
    current.push([line.slice(0, eq), line.slice(eq + 1)]);
  }
  return out;
}

export const iniGet = (ini: Map<string, [string, string][]>, section: string, key: string): string[] =>
  (ini.get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v);

/**
 * `systemd-analyze verify` on a rendered unit. ExecStart is pointed at a temporary copy of the script
 * (verify insists the binary exists); unknown keys are only warnings there, so stderr must be clean too.
 */
export function verifyUnit(unitName: string, unit: string, script: string): { code: number; stderr: string } {
  const dir = tmp("unit");
  try {
    const exe = path.join(dir, "script");
    writeFileSync(exe, script, { mode: 0o755 });
    const file = path.join(dir, unitName);
    writeFileSync(file, unit.replace(/^ExecStart=.*$/m, `ExecStart=${exe}`));
    const r = run(["systemd-analyze", "verify", file]);
    return { code: r.code, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether `systemd-analyze verify` works here (it needs no running systemd, but check once). */
export function canVerifyUnits(): boolean {
  if (!has("systemd-analyze")) return false;
  return (
    verifyUnit("probe.service", "[Service]\nType=oneshot\nExecStart=/bin/true\n", "#!/bin/sh\n").code === 0
  );
}
