// planHa: the files and commands of HA on a member, each with its inverse, in the order that keeps a
// VM from running twice, and a re-run on a converged host that writes nothing.
import { describe, expect, it } from "vitest";
import { cluster } from "../../src/answer/schema-cluster.js";
import type { Action } from "../../src/plan/actions.js";
import type { PlanContext } from "../../src/plan/context.js";
import { HA_CIB_FILE, planHa } from "../../src/plan/ha-plan.js";
import { haDomainPath, renderCibConfiguration } from "../../src/plan/render/cib.js";
import { COROSYNC_CONF, renderCorosyncConf } from "../../src/plan/render/corosync-conf.js";

const c = cluster.parse({
  name: "rack1",
  members: ["kvm-a", "kvm-b"].map((host, i) => ({
    host,
    address: `192.0.2.${i + 1}`,
    fence: {
      agent: "ipmilan",
      address: `198.51.100.${i + 1}`,
      username: "admin",
      passwordFile: "/root/bmc.pass",
    },
  })),
  networks: { cluster: "192.0.2.0/24" },
  ha: { vms: [{ vm: "db1", prefer: "kvm-a" }] },
});
const DOMAIN = "<domain type='kvm'><name>db1</name></domain>";

function plan(current: Map<string, string | null>, cl = c): Action[] {
  const ctx = { current, actions: [], refusals: [], findings: [] } as unknown as PlanContext;
  planHa(ctx, { cluster: cl, self: "kvm-a", domainXml: new Map([["db1", DOMAIN]]) });
  return ctx.actions;
}

describe("planHa", () => {
  it("writes corosync.conf (keeping the original), the domain XML and the CIB, then enables and starts the stack and loads the CIB", () => {
    const original = "totem { cluster_name: debian }\n";
    const actions = plan(new Map([[COROSYNC_CONF, original]]));
    expect(actions.map((a) => a.id)).toEqual([
      "ha.corosync-conf",
      "ha.domain.db1",
      "ha.no-autostart.db1",
      "ha.cib-file",
      "ha.corosync-enable",
      "ha.corosync",
      "ha.corosync-reload",
      "ha.pacemaker-enable",
      "ha.pacemaker",
      "ha.wait-cib",
      "ha.cib-load",
    ]);
    expect(actions[0]).toMatchObject({ kind: "write-file", path: COROSYNC_CONF, previous: original });
    expect(actions[1]).toMatchObject({ path: haDomainPath("db1"), content: DOMAIN, previous: null });
    expect(actions[3]).toMatchObject({
      path: HA_CIB_FILE,
      content: `${renderCibConfiguration(c)}\n`,
      mode: 0o600,
    });
    const cmd = (id: string) => actions.find((a) => a.id === id) as Extract<Action, { kind: "run-command" }>;
    // Enabled and started apart: undo disables only a unit the run enabled (Debian's packages enable
    // both at install), and stops what it started.
    for (const u of ["corosync", "pacemaker"]) {
      expect(cmd(`ha.${u}-enable`)).toMatchObject({
        argv: ["systemctl", "enable", `${u}.service`],
        undo: ["systemctl", "disable", `${u}.service`],
        check: ["systemctl", "is-enabled", "--quiet", `${u}.service`],
      });
      expect(cmd(`ha.${u}`)).toMatchObject({
        argv: ["systemctl", "start", `${u}.service`],
        undo: ["systemctl", "stop", `${u}.service`],
        check: ["systemctl", "is-active", "--quiet", `${u}.service`],
      });
    }
    expect(cmd("ha.cib-load").argv).toEqual([
      "cibadmin",
      "--replace",
      "--scope",
      "configuration",
      "--xml-file",
      HA_CIB_FILE,
    ]);
    // Undone on one member: standby (its VMs move away), then pacemaker and corosync stop.
    expect(cmd("ha.cib-load").undo).toEqual([
      "crm_attribute",
      "--node",
      "kvm-a",
      "--name",
      "standby",
      "--update",
      "on",
    ]);
    // Autostart is turned off and never back on.
    expect(cmd("ha.no-autostart.db1")).toMatchObject({
      argv: ["virsh", "autostart", "--disable", "db1"],
      undo: null,
    });
  });

  it("a converged host gets no file writes and no corosync reload", () => {
    const current = new Map<string, string | null>([
      [COROSYNC_CONF, renderCorosyncConf(c)],
      [haDomainPath("db1"), DOMAIN],
      [HA_CIB_FILE, `${renderCibConfiguration(c)}\n`],
    ]);
    const actions = plan(current);
    expect(actions.filter((a) => a.kind === "write-file")).toEqual([]);
    expect(actions.map((a) => a.id)).not.toContain("ha.corosync-reload");
  });

  it("plans nothing without ha:", () => {
    expect(plan(new Map(), { ...c, ha: undefined })).toEqual([]);
  });
});
