// corosync.conf and the CIB rendered from the answer's cluster: section, held to reviewed goldens
// (test/plan/golden-ha/CASE/), and the CIB checked by pacemaker's own crm_verify where it is installed.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { type Cluster, cluster } from "../../src/answer/schema-cluster.js";
import { renderCib } from "../../src/plan/render/cib.js";
import { renderCorosyncConf } from "../../src/plan/render/corosync-conf.js";
import { has, run, tmp } from "./render/helpers.js";

const GOLDEN = path.join(import.meta.dirname, "golden-ha");
const UPDATE = process.env.UPDATE_GOLDEN === "1";

const HA_CASES: Record<string, unknown> = {
  "two-members-ipmi-redfish": {
    name: "rack1",
    members: [
      {
        host: "kvm-a",
        address: "192.0.2.11",
        fence: {
          agent: "ipmilan",
          address: "198.51.100.11",
          username: "admin",
          passwordFile: "/root/bmc-a.pass",
        },
      },
      {
        host: "kvm-b",
        address: "192.0.2.12",
        fence: {
          agent: "redfish",
          address: "198.51.100.12",
          username: "root",
          passwordFile: "/root/bmc b's.pass".replace(" ", "-"),
          systemId: "/redfish/v1/Systems/1",
        },
      },
    ],
    networks: { cluster: "192.0.2.0/24" },
    ha: {
      vms: [
        { vm: "db1", prefer: "kvm-a" },
        { vm: "web1", policy: "restart" },
      ],
    },
  },
  "three-members-other-agent": {
    name: "lab",
    members: ["n1", "n2", "n3"].map((h, i) => ({
      host: h,
      address: `10.0.0.${i + 1}`,
      fence: {
        agent: "other",
        name: "fence_apc",
        options: { ip: "10.9.9.9", plug: String(i + 1), username: "apc" },
        passwordFile: "/etc/kvmstrap/secrets/apc",
      },
    })),
    networks: { cluster: "10.0.0.0/24" },
    ha: { vms: [{ vm: "dns1", prefer: "n3" }] },
  },
  "three-members-two-node-forced-no-ha-vms": {
    name: "pair",
    members: [
      {
        host: "x1",
        address: "fd00::1",
        fence: { agent: "ipmilan", address: "fd01::1", username: "u", passwordFile: "/p1", lanplus: false },
      },
      {
        host: "x2",
        address: "fd00::2",
        fence: { agent: "ipmilan", address: "fd01::2", username: "u", passwordFile: "/p2" },
      },
      { host: "x3", address: "fd00::3" },
    ],
    networks: { cluster: "fd00::/64" },
    ha: { twoNode: true },
  },
};

const cases = Object.entries(HA_CASES).map(([name, raw]) => [name, cluster.parse(raw)] as [string, Cluster]);

function golden(dir: string, file: string, actual: string): void {
  const p = path.join(GOLDEN, dir, file);
  if (UPDATE || !existsSync(p)) {
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, actual);
  }
  expect(actual).toBe(readFileSync(p, "utf8"));
}

describe("HA renderers", () => {
  it.each(cases)("%s: corosync.conf and CIB match their goldens", (name, c) => {
    golden(name, "corosync.conf", renderCorosyncConf(c));
    golden(name, "cib.xml", renderCib(c));
  });

  it("two_node and wait_for_all exactly when two members or twoNode", () => {
    const [two, three, forced] = cases.map(([, c]) => renderCorosyncConf(c));
    expect(two).toMatch(/two_node: 1\n\twait_for_all: 1/);
    expect(three).not.toMatch(/two_node/);
    expect(forced).toMatch(/two_node: 1/);
  });

  it("a VM with policy migrate migrates over TLS (qemu.conf's migrate_tls_force refuses it otherwise)", () => {
    const cib = renderCib(cases[0]?.[1] as Cluster);
    expect(cib).toContain(
      '<nvpair id="vm-db1-params-migrate_options" name="migrate_options" value="--p2p --tls"/>',
    );
    expect(cib).toContain('<nvpair id="vm-db1-meta-allow-migrate" name="allow-migrate" value="true"/>');
    // policy restart: no migration, so no options for one.
    expect(cib).not.toContain("vm-web1-params-migrate_options");
  });

  it("no fence password in the CIB: password_script reads the answer's file", () => {
    const cib = renderCib(cases[0]?.[1] as Cluster);
    expect(cib).not.toMatch(/name="password"/);
    const scripts = [...cib.matchAll(/name="password_script" value="([^"]*)"/g)].map((m) =>
      (m[1] ?? "").replaceAll("&apos;", "'"),
    );
    expect(scripts).toEqual(["cat '/root/bmc-a.pass'", "cat '/root/bmc-b'\\''s.pass'"]);
  });

  it.skipIf(!has("crm_verify"))("crm_verify accepts every rendered CIB (pacemaker-cli-utils)", () => {
    const dir = tmp("cib");
    for (const [name, c] of cases) {
      const file = path.join(dir, `${name}.xml`);
      writeFileSync(file, renderCib(c));
      const r = run(["crm_verify", "--xml-file", file, "-V"], { env: { ...process.env, LC_ALL: "C" } });
      expect({ name, code: r.code, out: r.stdout + r.stderr }).toEqual({
        name,
        code: 0,
        out: expect.any(String),
      });
      // The configuration has no errors or warnings worth the operator's attention.
      expect(r.stderr, name).not.toMatch(/error|warning/i);
    }
  });

  it.skipIf(!has("crm_verify"))(
    "crm_verify refuses a CIB with HA VMs and no fence device (why ha: needs fence)",
    () => {
      const c = cluster.parse({
        name: "nofence",
        members: [
          { host: "m1", address: "10.0.0.1" },
          { host: "m2", address: "10.0.0.2" },
        ],
        networks: { cluster: "10.0.0.0/24" },
        ha: { vms: [{ vm: "db1" }] },
      });
      const file = path.join(tmp("cib"), "nofence.xml");
      writeFileSync(file, renderCib(c));
      const r = run(["crm_verify", "--xml-file", file, "-V"], { env: { ...process.env, LC_ALL: "C" } });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/no STONITH resources have been defined/);
    },
  );
});
