// libvirt storage pools: a directory, an LVM thin pool on chosen disks, or ZFS where the host has
// it. Which disks a pool may take or wipe is decided by the rule set (src/answer/rules/storage.ts);
// a refused pool is not planned. wipefs leaves ZFS labels behind (util-linux#1177), so zpool
// labelclear runs first where a zfs_member is seen.
import { matchDisks } from "../answer/match.js";
import type { Pool } from "../answer/schema.js";
import type { DiskReport } from "../detect/types.js";
import type { PlanContext } from "./context.js";
import { isRefused, planCommand, planFile } from "./context.js";
import { renderDefaultNetworkXml, renderPoolXml } from "./render/libvirt-xml.js";

export const poolXmlPath = (name: string) => `/etc/kvmstrap/libvirt/pool-${name}.xml`;

const devPath = (d: DiskReport) => d.byId[0] ?? d.path;

/** The pool's disks; whether each may be used or wiped is the rule set's decision (rules/storage.ts). */
function resolveDisks(ctx: PlanContext, pool: Pool): DiskReport[] {
  return (pool.disks ?? []).flatMap((rule) => matchDisks(rule, ctx.report).chosen);
}

function planWipe(ctx: PlanContext, pool: Pool, disks: DiskReport[]): void {
  if (!pool.wipe) return;
  for (const d of disks) {
    if (d.signatures.includes("zfs_member")) {
      planCommand(ctx, {
        id: `storage.${pool.name}.zfs-labelclear.${d.name}`,
        argv: ["zpool", "labelclear", "-f", devPath(d)],
        effect: "none",
        summary: `clear ZFS labels on ${d.name} (${d.serial ?? "no serial"}) — wipefs leaves them`,
      });
    }
    planCommand(ctx, {
      id: `storage.${pool.name}.wipe.${d.name}`,
      argv: ["wipefs", "--all", devPath(d)],
      effect: "none",
      summary: `ERASE signatures on ${d.name} (${d.model ?? "disk"}, serial ${d.serial ?? "unknown"})`,
    });
  }
}

export function planStorage(ctx: PlanContext): void {
  for (const [i, pool] of (ctx.answer.storage?.pools ?? []).entries()) {
    if (isRefused(ctx, `storage.pools[${i}]`)) continue;
    let xml: string;
    if (pool.type === "dir") {
      if (!pool.path) continue;
      xml = renderPoolXml({ name: pool.name, type: "dir", path: pool.path });
    } else {
      const disks = resolveDisks(ctx, pool);
      if (!disks.length) continue;
      planWipe(ctx, pool, disks);
      const devices = disks.map(devPath);
      if (pool.type === "lvm-thin") {
        const vg = `vg-${pool.name}`;
        planCommand(ctx, {
          id: `storage.${pool.name}.vgcreate`,
          argv: ["vgcreate", vg, ...devices],
          undo: ["vgremove", "--force", vg],
          check: ["vgs", vg],
          effect: "none",
          summary: `LVM volume group ${vg} on ${disks.map((d) => d.name).join(", ")}`,
        });
        planCommand(ctx, {
          id: `storage.${pool.name}.thinpool`,
          argv: ["lvcreate", "--type", "thin-pool", "--extents", "95%FREE", "--name", "thin", vg],
          undo: ["lvremove", "--force", `${vg}/thin`],
          check: ["lvs", `${vg}/thin`],
          effect: "none",
          summary: `thin pool ${vg}/thin`,
        });
        xml = renderPoolXml({ name: pool.name, type: "logical", vgName: vg, sourceDevices: devices });
      } else {
        planCommand(ctx, {
          id: `storage.${pool.name}.zpool`,
          argv: ["zpool", "create", "-o", "ashift=12", pool.name, ...devices],
          undo: ["zpool", "destroy", pool.name],
          check: ["zpool", "list", pool.name],
          effect: "none",
          summary: `ZFS pool ${pool.name} on ${disks.map((d) => d.name).join(", ")}`,
        });
        xml = renderPoolXml({ name: pool.name, type: "zfs", sourceDevices: devices });
      }
    }
    const path = poolXmlPath(pool.name);
    planFile(ctx, {
      id: `storage.${pool.name}.xml`,
      path,
      content: xml,
      effect: "none",
      summary: `libvirt pool ${pool.name} (${pool.type})`,
    });
    const virsh = (
      id: string,
      args: string[],
      undo: string[] | null,
      summary: string,
      check: string[] | null = null,
    ) =>
      planCommand(ctx, {
        id: `storage.${pool.name}.${id}`,
        argv: ["virsh", ...args],
        undo,
        check,
        effect: "none",
        summary,
      });
    virsh(
      "define",
      ["pool-define", path],
      ["virsh", "pool-undefine", pool.name],
      `define pool ${pool.name}`,
      ["virsh", "pool-info", pool.name],
    );
    if (pool.type === "dir") virsh("build", ["pool-build", pool.name], null, `create ${pool.path}`);
    virsh(
      "start",
      ["pool-start", pool.name],
      ["virsh", "pool-destroy", pool.name],
      `start pool ${pool.name}`,
    );
    if (pool.autostart) {
      virsh(
        "autostart",
        ["pool-autostart", pool.name],
        ["virsh", "pool-autostart", "--disable", pool.name],
        `autostart pool ${pool.name}`,
      );
    }
  }
}

export const natNetworkXmlPath = (name: string) => `/etc/kvmstrap/libvirt/network-${name}.xml`;

/** The libvirt NAT network guests start on (what libvirt's packages call "default"). */
export function planLibvirtNat(ctx: PlanContext): void {
  const nat = ctx.answer.network?.libvirtNat;
  if (!nat) return;
  const path = natNetworkXmlPath(nat.name);
  const changed = planFile(ctx, {
    id: `libvirt.network.${nat.name}`,
    path,
    content: renderDefaultNetworkXml(nat),
    effect: "none",
    summary: `libvirt NAT network ${nat.name} on ${nat.bridge} (${nat.subnet})`,
  });
  if (!changed) return;
  const virsh = (id: string, args: string[], undo: string[] | null, summary: string) =>
    planCommand(ctx, {
      id: `libvirt.network.${nat.name}.${id}`,
      argv: ["virsh", ...args],
      undo,
      effect: "none",
      summary,
    });
  virsh("define", ["net-define", path], ["virsh", "net-undefine", nat.name], `define network ${nat.name}`);
  virsh(
    "autostart",
    ["net-autostart", nat.name],
    ["virsh", "net-autostart", "--disable", nat.name],
    `autostart network ${nat.name}`,
  );
  virsh("start", ["net-start", nat.name], ["virsh", "net-destroy", nat.name], `start network ${nat.name}`);
}
