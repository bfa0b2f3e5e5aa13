// What the shared-storage cluster tests share: kvmstrap's plan for the cluster's stores applied on a
// test host by the built CLI, and the counter guest with its disk on a store (cli.ts has virsh, the
// host report, `kvmstrap apply --plan` in a host's namespaces and the built `kvmstrap vm migrate`).
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
import { applyPlanOn, planOf } from "./cli.js";
import type { ClusterHost } from "./hosts.js";

/**
 * planSharedStorage for this member, written as a plan file and applied by the built `kvmstrap apply
 * --plan` inside the member's namespaces (applyPlanOn: its journal in `dir`/HOST-store-state).
 * poolTypes: each planned pool's type, from its XML; texts: the plan, apply's output and its state
 * files (journal, event log), for the tests' secret checks.
 */
export async function applyStorePlan(
  h: ClusterHost,
  cluster: ClusterAnswer,
  report: HostReport,
  dir: string,
): Promise<{ poolTypes: Record<string, string>; planJson: string; texts: string[] }> {
  const ctx: PlanContext = {
    report,
    answer: { cluster } as unknown as Answer,
    current: new Map(),
    actions: [],
    refusals: [],
    findings: [],
  };
  planSharedStorage(ctx, h.name);
  const poolTypes: Record<string, string> = {};
  for (const a of ctx.actions) {
    const pool = a.kind === "write-file" && /<pool type="([^"]+)">\s*<name>([^<]+)<\/name>/.exec(a.content);
    if (pool) poolTypes[pool[2] as string] = pool[1] as string;
  }
  const applied = await applyPlanOn(h, planOf(ctx.actions), dir, "store-state");
  return { poolTypes, planJson: applied.planText, texts: applied.texts };
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
