// kvmstrap cluster status's HA part as the command prints it: the text of a real crm_mon snapshot
// (after a failover, through the app with the process replayed), and the command itself on a machine
// root: an answer with cluster.ha asks for pacemaker's view (here none: no crm_mon inside that root,
// said as the reason, exit 1), an answer without it shows no HA part.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { clusterStatus } from "../../src/app/cluster-status.js";
import { clusterCommand, formatHa } from "../../src/cli/cluster-command.js";
import { EXIT } from "../../src/cli/errors.js";
import type { CommandRunner } from "../../src/host/commands.js";
import { CLUSTER_PATHS } from "../../src/plan/cluster-plan.js";

let dir = "";
const root = () => path.join(dir, "root");
const answer = (ha: boolean) =>
  [
    "version: 1",
    "cluster:",
    "  name: lab",
    "  networks: { cluster: 127.0.0.0/8 }",
    "  members:",
    // Nothing listens on 16514 on loopback here: each member probe is refused at once.
    "    - { host: kvm-a, address: 127.0.0.1 }",
    "    - { host: kvm-b, address: 127.0.0.2 }",
    ...(ha ? ["  ha:", "    vms: []"] : []),
    "",
  ].join("\n");

async function run(argv: string[]): Promise<{ code: number; stdout: string }> {
  let stdout = "";
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((c) => {
    stdout += String(c);
    return true;
  });
  try {
    return { code: await clusterCommand(argv), stdout };
  } finally {
    spy.mockRestore();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), `kvmstrap-cluster-status-cli-${process.pid}-`));
  const state = path.join(root(), CLUSTER_PATHS.state);
  await mkdir(path.dirname(state), { recursive: true });
  await writeFile(
    state,
    JSON.stringify({
      cluster: "lab",
      self: { host: "kvm-a", address: "127.0.0.1", migrationAddress: "127.0.0.1" },
      members: [{ host: "kvm-a", address: "127.0.0.1" }],
      caFingerprint256: "",
      updatedAt: "",
    }),
  );
  await writeFile(path.join(dir, "ha.yaml"), answer(true));
  await writeFile(path.join(dir, "plain.yaml"), answer(false));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("cluster status: the HA part", () => {
  it("prints quorum, each node, where each HA VM runs and the fencing history", async () => {
    const xml = await readFile(
      path.join(import.meta.dirname, "../host/fixtures/crm-mon/after-failover.xml"),
      "utf8",
    );
    const runner: CommandRunner = {
      run: async () => ({ exitCode: 0, stdout: xml, stderr: "", timedOut: false }),
      which: async (p) => `/usr/sbin/${p}`,
    };
    const s = await clusterStatus({ root: root(), members: [], ha: true, runner });
    const text = formatHa(s.ha ?? ({} as never)).replace(/\(\d+ ms\)/, "(N ms)");
    expect(text).toBe(
      [
        "ha: quorate, DC kvmcl-b (N ms)",
        "  node  kvmcl-a: OFFLINE",
        "  node  kvmcl-b: online (DC)",
        "  vm    ha-6800-3157: running on kvmcl-b (Started)",
        "  fence reboot kvmcl-a: success by kvmcl-b for kvmcl-b at 2026-12-06 12:29:29Z",
        "",
      ].join("\n"),
    );
    for (const line of text.split("\n")) expect(line.length).toBeLessThanOrEqual(80);
  });

  it("with cluster.ha in the answer, the command asks for pacemaker's view and says why there is none", async () => {
    const text = await run(["status", "--root", root(), "--answer", path.join(dir, "ha.yaml")]);
    expect(text.stdout).toMatch(/^ha: no view: crm_mon not found: install pacemaker-cli-utils/m);
    expect(text.code).toBe(EXIT.failed);
    const json = await run(["status", "--root", root(), "--answer", path.join(dir, "ha.yaml"), "--json"]);
    expect(JSON.parse(json.stdout).ha).toMatchObject({ error: expect.stringMatching(/crm_mon not found/) });
  });

  it("without cluster.ha (and no corosync.conf in the root), no HA part", async () => {
    const r = await run(["status", "--root", root(), "--answer", path.join(dir, "plain.yaml"), "--json"]);
    expect(JSON.parse(r.stdout)).not.toHaveProperty("ha");
    expect((await run(["status", "--root", root()])).stdout).not.toMatch(/^ha:/m);
  });
});
