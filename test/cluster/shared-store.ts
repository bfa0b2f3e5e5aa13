// What the shared-storage cluster tests share: kvmstrap's plan for the cluster's stores carried out on
// a test host, and the counter guest with its disk on a store (cli.ts has virsh, the host report and
// the built `kvmstrap vm migrate`).
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import type { Answer } from "../../src/answer/schema.js";
import type { Cluster as ClusterAnswer } from "../../src/answer/schema-cluster.js";
import type { HostReport } from "../../src/detect/types.js";
import type { PlanContext } from "../../src/plan/context.js";
import { planSharedStorage } from "../../src/plan/shared-storage-plan.js";
import {
  type NetworkDisk,
  type PoolVolumeDisk,
  renderNetworkDiskXml,
  renderPoolVolumeDiskXml,
} from "../../src/vm/network-disk.js";
import type { ClusterHost } from "./hosts.js";

/**
 * planSharedStorage for this member, carried out against its libvirtd: each write-file action's
 * content goes to a file of the test's own (the plan's /etc/kvmstrap paths are the host's), and each
 * virsh command runs as planned, with that file's path, on the member's libvirtd (LIBVIRT_DEFAULT_URI,
 * as a plan's plain `virsh` reaches the local daemon). A command's check skips it when it passes.
 */
export async function applyStorePlan(
  h: ClusterHost,
  cluster: ClusterAnswer,
  report: HostReport,
  dir: string,
): Promise<{ poolTypes: Record<string, string>; planJson: string }> {
  const ctx: PlanContext = {
    report,
    answer: { cluster } as unknown as Answer,
    current: new Map(),
    actions: [],
    refusals: [],
    findings: [],
  };
  planSharedStorage(ctx, h.name);
  const files = new Map<string, string>();
  const poolTypes: Record<string, string> = {};
  const env = { LC_ALL: "C", LIBVIRT_DEFAULT_URI: h.localUri };
  for (const a of ctx.actions) {
    if (a.kind === "write-file") {
      const local = path.join(dir, `${h.name}-${path.basename(a.path)}`);
      await writeFile(local, a.content, { mode: a.mode });
      files.set(a.path, local);
      const pool = /<pool type="([^"]+)">\s*<name>([^<]+)<\/name>/.exec(a.content);
      if (pool) poolTypes[pool[2] as string] = pool[1] as string;
    } else if (a.kind === "run-command") {
      const [cmd, ...args] = a.argv.map((x) => files.get(x) ?? x) as [string, ...string[]];
      if (cmd !== "virsh") throw new Error(`${a.id}: the store plan runs only virsh here, not ${cmd}`);
      if (a.check) {
        const [c0, ...cargs] = a.check as [string, ...string[]];
        if ((await execa(c0, cargs, { reject: false, env })).exitCode === 0) continue;
      }
      const r = await execa(cmd, args, { reject: false, env });
      if (r.exitCode !== 0) throw new Error(`${h.name}: ${a.id} (${a.argv.join(" ")}): ${r.stderr}`);
    } else throw new Error(`${a.id}: unexpected ${a.kind} action in a store plan`);
  }
  return { poolTypes, planJson: JSON.stringify(ctx.actions) };
}

/** The counter guest's domain with its disk on a store (virtio) and no NIC. */
export function sharedDomain(
  counterXml: string,
  disk: Omit<PoolVolumeDisk, "target"> | Omit<NetworkDisk, "target">,
): string {
  const xml =
    "pool" in disk
      ? renderPoolVolumeDiskXml({ ...disk, target: "vda" })
      : renderNetworkDiskXml({ ...disk, target: "vda" });
  return counterXml
    .replace(/ *<disk type='file'[\s\S]*?<\/disk>/, xml)
    .replace(/ *<interface[\s\S]*?<\/interface>\n/, "");
}
