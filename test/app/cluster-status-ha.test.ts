// cluster status's HA view: pacemaker's real crm_mon XML (captured from the cluster tier's HA run,
// test/host/fixtures/crm-mon/) replayed through the CommandRunner port to the app's clusterStatus; the
// parse and everything after it is the shipped code, only the process is replayed. Also: when status
// asks pacemaker at all (the answer's cluster.ha, else kvmstrap's corosync.conf on the host), the
// bound it gives crm_mon, and what a silent or failing crm_mon becomes.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterStatus, HA_TIMEOUT_MS } from "../../src/app/cluster-status.js";
import { haFault } from "../../src/cli/cluster-command.js";
import type { CommandOptions, CommandResult, CommandRunner } from "../../src/host/commands.js";
import { CRM_MON_ARGV, CRM_MON_MAX_BYTES } from "../../src/host/crm-mon.js";
import { CLUSTER_PATHS } from "../../src/plan/cluster-plan.js";
import { COROSYNC_CONF, COROSYNC_CONF_MARK } from "../../src/plan/render/corosync-conf.js";

const FIXTURES = path.join(import.meta.dirname, "../host/fixtures/crm-mon");
let root = "";

/** Replays one capture for crm_mon and records every call; any other program is refused. */
function crmReplay(reply: Partial<CommandResult> | (() => Promise<CommandResult>), onPath = true) {
  const calls: { argv: string[]; options: CommandOptions | undefined }[] = [];
  const runner: CommandRunner = {
    async run(file, args, options) {
      calls.push({ argv: [file, ...args], options });
      if (file !== "crm_mon")
        return { exitCode: 127, stdout: "", stderr: `not replayed: ${file}`, timedOut: false };
      if (typeof reply === "function") return reply();
      return { exitCode: 0, stdout: "", stderr: "", timedOut: false, ...reply };
    },
    which: async (p) => (onPath && p === "crm_mon" ? "/usr/sbin/crm_mon" : null),
  };
  return { runner, calls };
}
const fixture = (name: string) => readFile(path.join(FIXTURES, name), "utf8");

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), `kvmstrap-cluster-ha-${process.pid}-`));
  const state = path.join(root, CLUSTER_PATHS.state);
  await mkdir(path.dirname(state), { recursive: true });
  await writeFile(
    state,
    JSON.stringify({
      cluster: "lab",
      self: { host: "kvmcl-b", address: "192.0.2.12", migrationAddress: "192.0.2.12" },
      members: [],
      caFingerprint256: "",
      updatedAt: "",
    }),
  );
});
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe("cluster status with HA, from real crm_mon output", () => {
  it("after a failover: quorate on B, A offline, the VM on B, A's fence by B in the history", async () => {
    const { runner, calls } = crmReplay({ stdout: await fixture("after-failover.xml") });
    const s = await clusterStatus({ root, members: [], ha: true, runner });
    expect(calls.map((c) => c.argv)).toEqual([[...CRM_MON_ARGV]]);
    expect(calls[0]?.options).toMatchObject({ timeoutMs: HA_TIMEOUT_MS, maxBytes: CRM_MON_MAX_BYTES });
    const ha = s.ha;
    expect(ha?.error).toBeUndefined();
    expect(ha).toMatchObject({ quorate: true, dc: "kvmcl-b", stonithEnabled: true });
    expect(ha?.nodes).toEqual([
      { name: "kvmcl-a", online: false, standby: false, unclean: false },
      { name: "kvmcl-b", online: true, standby: false, unclean: false },
    ]);
    // Only VirtualDomain resources, by VM name; the fence devices are not VMs.
    expect(ha?.vms).toEqual([
      { vm: "ha-6800-3157", role: "Started", nodes: ["kvmcl-b"], failed: false, managed: true },
    ]);
    expect(ha?.fencing).toEqual([
      {
        action: "reboot",
        target: "kvmcl-a",
        status: "success",
        delegate: "kvmcl-b",
        origin: "kvmcl-b",
        completed: "2026-12-06 12:29:29Z",
        exitReason: null,
      },
    ]);
    expect(haFault(ha)).toBe(false);
  });

  it("before it: both online, the VM on A, no fencing", async () => {
    const { runner } = crmReplay({ stdout: await fixture("running-on-a.xml") });
    const ha = (await clusterStatus({ root, members: [], ha: true, runner })).ha;
    expect(ha?.nodes.map((n) => [n.name, n.online])).toEqual([
      ["kvmcl-a", true],
      ["kvmcl-b", true],
    ]);
    expect(ha?.vms.map((v) => [v.vm, v.nodes])).toEqual([["ha-6800-3157", ["kvmcl-a"]]]);
    expect(ha?.fencing).toEqual([]);
  });

  it("a cluster still forming (no DC): quorum unknown, every VM stopped, not a fault by itself", async () => {
    const { runner } = crmReplay({ stdout: await fixture("no-dc-cib-file.xml") });
    const ha = (await clusterStatus({ root, members: [], ha: true, runner })).ha;
    expect(ha).toMatchObject({ quorate: null, dc: null, nodes: [] });
    expect(ha?.vms.map((v) => [v.vm, v.nodes])).toEqual([
      ["db1", []],
      ["web1", []],
    ]);
    expect(haFault(ha)).toBe(false);
  });

  it("a partition without quorum, and a VM pacemaker found on two nodes, are faults", async () => {
    const xml = (await fixture("running-on-a.xml"))
      .replace('with_quorum="true"', 'with_quorum="false"')
      .replace(
        /(<resource id="vm-[^"]*"[^>]*>\s*<node name="kvmcl-a"[^>]*\/>)/,
        '$1<node name="kvmcl-b" id="2"/>',
      );
    const { runner } = crmReplay({ stdout: xml });
    const ha = (await clusterStatus({ root, members: [], ha: true, runner })).ha;
    expect(ha?.quorate).toBe(false);
    expect(ha?.vms[0]?.nodes).toEqual(["kvmcl-a", "kvmcl-b"]);
    expect(haFault(ha)).toBe(true);
    expect(haFault({ ...(ha as NonNullable<typeof ha>), quorate: true })).toBe(true);
  });

  it("crm_mon missing, timing out, or failing: the reason as the view, a fault", async () => {
    const missing = crmReplay({}, false);
    const a = (await clusterStatus({ root, members: [], ha: true, runner: missing.runner })).ha;
    expect(a?.error).toMatch(/crm_mon not found/);
    expect(missing.calls).toEqual([]);
    const slow = crmReplay({ exitCode: undefined, timedOut: true });
    expect((await clusterStatus({ root, members: [], ha: true, runner: slow.runner })).ha?.error).toBe(
      `crm_mon gave no answer in ${HA_TIMEOUT_MS} ms`,
    );
    // crm_mon 2.1 on a host whose pacemaker is not running (captured here): its failure as XML, exit 102.
    const down = crmReplay({ exitCode: 102, stdout: await fixture("not-connected.xml") });
    const c = (await clusterStatus({ root, members: [], ha: true, runner: down.runner })).ha;
    expect(c?.error).toBe("crm_mon failed: Not connected");
    expect(haFault(c)).toBe(true);
    const silent = crmReplay({ exitCode: 1, stderr: "crm_mon: cannot open\nmore" });
    expect((await clusterStatus({ root, members: [], ha: true, runner: silent.runner })).ha?.error).toBe(
      "crm_mon exited 1: crm_mon: cannot open",
    );
  });

  it("asks pacemaker only where the cluster has HA: the answer's word, else kvmstrap's corosync.conf (not a package's)", async () => {
    const r1 = crmReplay({ stdout: await fixture("running-on-a.xml") });
    const none = await clusterStatus({ root, members: [], ha: false, runner: r1.runner });
    expect(none.ha).toBeUndefined();
    expect((await clusterStatus({ root, members: [], runner: r1.runner })).ha).toBeUndefined();
    expect(r1.calls).toEqual([]);
    const conf = path.join(root, COROSYNC_CONF);
    await mkdir(path.dirname(conf), { recursive: true });
    // Debian's corosync package installs a corosync.conf of its own: that one is not kvmstrap's HA.
    await writeFile(conf, "# Please read the corosync.conf.5 manual page\ntotem {}\n");
    try {
      expect((await clusterStatus({ root, members: [], runner: r1.runner })).ha).toBeUndefined();
      expect(r1.calls).toEqual([]);
      await writeFile(conf, `${COROSYNC_CONF_MARK} (rack1); edits are replaced.\ntotem {}\n`);
      expect((await clusterStatus({ root, members: [], runner: r1.runner })).ha?.dc).toBe("kvmcl-a");
      expect(r1.calls).toHaveLength(1);
    } finally {
      await rm(conf);
    }
  });
});
