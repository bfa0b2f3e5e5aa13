// Open vSwitch through ovs-vsctl: the one place that spells its commands. The plan journals them as
// commands with their inverses; the database is the one ovs-vsctl finds by itself (OVS_RUNDIR or
// /run/openvswitch/db.sock), as libvirt's own ovs-vsctl calls do. --timeout keeps a stopped
// ovsdb-server from hanging a run; --may-exist/--if-exists make each command safe to repeat.
import type { CommandRunner } from "./commands.js";

const VSCTL = ["ovs-vsctl", "--timeout=20"];

export type OvsDatapath = "system" | "netdev";

export const ovsArgv = {
  addBridge: (bridge: string, datapath: OvsDatapath) => [
    ...VSCTL,
    "--may-exist",
    "add-br",
    bridge,
    "--",
    "set",
    "bridge",
    bridge,
    `datapath_type=${datapath}`,
  ],
  deleteBridge: (bridge: string) => [...VSCTL, "--if-exists", "del-br", bridge],
  bridgeExists: (bridge: string) => [...VSCTL, "br-exists", bridge],
  /** An uplink: a trunk of every VLAN (no tag, no trunks list). */
  addPort: (bridge: string, port: string) => [...VSCTL, "--may-exist", "add-port", bridge, port],
  deletePort: (bridge: string, port: string) => [...VSCTL, "--if-exists", "del-port", bridge, port],
  /** Exits 0 when the port is on this bridge. */
  portOnBridge: (bridge: string, port: string) => [
    "sh",
    "-c",
    `[ "$(${VSCTL.join(" ")} port-to-br "$1" 2>/dev/null)" = "$2" ]`,
    "ovs-port-check",
    port,
    bridge,
  ],
};

export type OvsPort = { name: string; tag: number | null; trunks: number[] };

/** The ports of a bridge with their VLAN settings (for verification and tests). */
export async function ovsPorts(runner: CommandRunner, bridge: string): Promise<OvsPort[]> {
  const names = await runner.run(VSCTL[0] as string, [...VSCTL.slice(1), "list-ports", bridge]);
  if (names.exitCode !== 0) throw new Error(`ovs-vsctl list-ports ${bridge}: ${names.stderr.trim()}`);
  const out: OvsPort[] = [];
  for (const name of names.stdout.split("\n").filter(Boolean)) {
    const r = await runner.run(VSCTL[0] as string, [
      ...VSCTL.slice(1),
      "--format=json",
      "--columns=tag,trunks",
      "list",
      "port",
      name,
    ]);
    const row = (JSON.parse(r.stdout) as { data: unknown[][] }).data[0] ?? [];
    const tag = typeof row[0] === "number" ? row[0] : null;
    const trunks =
      Array.isArray(row[1]) && row[1][0] === "set"
        ? (row[1][1] as number[])
        : typeof row[1] === "number"
          ? [row[1]]
          : [];
    out.push({ name, tag, trunks });
  }
  return out;
}
