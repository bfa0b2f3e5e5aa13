// Seed documents: built as objects and serialised, so values cannot inject YAML; the instance-id
// follows the content; validated structurally and by the real `cloud-init schema` when installed.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { InputError } from "../../src/cli/errors.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { renderSeed, type SeedInput, validateSeed } from "../../src/vm/cloud-init.js";

const base: SeedInput = {
  hostname: "web1.example.org",
  user: { name: "ops", sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@laptop"], sudo: true },
  packages: ["nginx"],
  runcmd: [["systemctl", "enable", "--now", "nginx"]],
  phoneHomeUrl: "http://192.0.2.1:8080/phone-home",
};
const y11 = (s: string) => parse(s, { version: "1.1" }) as Record<string, unknown>;
const hasCloudInit = (() => {
  try {
    execFileSync("cloud-init", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

describe("renderSeed", () => {
  it("builds user-data, meta-data and network-config over the static templates", () => {
    const s = renderSeed(base);
    expect(s.userData.startsWith("#cloud-config\n")).toBe(true);
    const ud = y11(s.userData);
    expect(ud).toMatchObject({
      ssh_pwauth: false, // from templates/cloud-init/user-data.yaml
      hostname: "web1",
      fqdn: "web1.example.org",
      users: [
        {
          name: "ops",
          sudo: "ALL=(ALL) NOPASSWD:ALL",
          lock_passwd: true,
          ssh_authorized_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@laptop"],
        },
      ],
      packages: ["nginx"],
      runcmd: [["systemctl", "enable", "--now", "nginx"]],
      phone_home: { url: "http://192.0.2.1:8080/phone-home", post: ["instance_id", "hostname"], tries: 10 },
    });
    expect(y11(s.metaData)).toEqual({ "instance-id": s.instanceId, "local-hostname": "web1" });
    expect(s.networkConfig).toBe("{}\n"); // no input: cloud-init's fallback (DHCP on the first NIC)
  });

  it("renders static addressing as network-config v2 matched by MAC", () => {
    const s = renderSeed({
      ...base,
      network: {
        macAddress: "52:54:00:AA:BB:01",
        addresses: ["192.0.2.10/24", "2001:db8::10/64"],
        gateway: "192.0.2.1",
        dns: ["192.0.2.53"],
        search: ["example.org"],
      },
    });
    expect(y11(s.networkConfig)).toEqual({
      version: 2,
      ethernets: {
        eth0: {
          match: { macaddress: "52:54:00:aa:bb:01" },
          addresses: ["192.0.2.10/24", "2001:db8::10/64"],
          routes: [{ to: "0.0.0.0/0", via: "192.0.2.1" }],
          nameservers: { addresses: ["192.0.2.53"], search: ["example.org"] },
        },
      },
    });
    const dhcp = renderSeed({ ...base, network: { dhcp: true, interface: "enp1s0" } });
    expect(y11(dhcp.networkConfig)).toEqual({ version: 2, ethernets: { enp1s0: { dhcp4: true } } });
    expect(() => renderSeed({ ...base, network: { dhcp: true, addresses: ["10.0.0.2/8"] } })).toThrow(/dhcp/);
    expect(() => renderSeed({ ...base, network: { addresses: ["10.0.0.2"] } })).toThrow(/prefix length/);
  });

  it("derives the instance-id from the content: same input, same id; any change, a new id", () => {
    const a = renderSeed(base);
    expect(renderSeed(structuredClone(base)).instanceId).toBe(a.instanceId);
    expect(a.instanceId).toMatch(/^iid-kvmstrap-[0-9a-f]{24}$/);
    const changes: SeedInput[] = [
      { ...base, runcmd: [["true"]] },
      { ...base, packages: [] },
      { ...base, hostname: "web2.example.org" },
      { ...base, network: { dhcp: true } },
      { ...base, user: { ...base.user, sudo: false } },
    ];
    const ids = changes.map((c) => renderSeed(c).instanceId);
    expect(new Set([a.instanceId, ...ids]).size).toBe(changes.length + 1);
    expect(renderSeed({ ...base, instanceId: "fixed-1" }).instanceId).toBe("fixed-1");
  });

  it("rejects host names and keys that could break out of their value", () => {
    for (const hostname of ["web1\nruncmd: [reboot]", "web1: x", "a b", "-lead", ""]) {
      expect(() => renderSeed({ ...base, hostname })).toThrow(InputError);
      expect(() => renderSeed({ ...base, hostname })).toThrow(/^seed: hostname: /);
    }
    const key = "ssh-ed25519 AAAA x\nruncmd: [reboot]";
    expect(() => renderSeed({ ...base, user: { ...base.user, sshKeys: [key] } })).toThrow(/user\.sshKeys\.0/);
    expect(() => renderSeed({ ...base, user: { ...base.user, passwordHash: "hunter2" } })).toThrow(/crypt/);
    expect(() => renderSeed({ ...base, packages: ["nginx; reboot"] })).toThrow(/packages\.0/);
  });

  it("quotes free-form values so they read back exactly (YAML 1.1, as PyYAML reads them)", () => {
    const tricky = "echo 'a: b' # not a comment\n- not: a list\n---\n...";
    const s = renderSeed({
      ...base,
      hostname: "on", // a YAML 1.1 boolean when unquoted
      packages: ["yes"],
      runcmd: [tricky, ["sh", "-c", "x: {y}"]],
      writeFiles: [{ path: "/etc/motd", content: "key: value\n&anchor *alias\n", permissions: "0600" }],
    });
    const ud = y11(s.userData);
    expect(ud.hostname).toBe("on");
    expect(ud.packages).toEqual(["yes"]);
    expect(ud.runcmd).toEqual([tricky, ["sh", "-c", "x: {y}"]]);
    expect(ud.write_files).toEqual([
      { path: "/etc/motd", content: "key: value\n&anchor *alias\n", permissions: "0600" },
    ]);
    expect(Object.keys(ud).sort()).toEqual(
      [
        "disable_root",
        "final_message",
        "hostname",
        "manage_etc_hosts",
        "packages",
        "runcmd",
        "ssh_genkeytypes",
        "ssh_pwauth",
        "users",
        "write_files",
        "phone_home",
      ].sort(),
    );
    expect(y11(s.metaData)["local-hostname"]).toBe("on");
  });
});

describe("validateSeed", () => {
  const runner = new ExecaRunner();
  const noCloudInit = { run: runner.run.bind(runner), which: async () => null };

  it("checks the structure without cloud-init", async () => {
    const ok = await validateSeed(renderSeed(base), noCloudInit);
    expect(ok).toEqual({ ok: true, issues: [], checkedBy: ["structure"] });
    const bad = await validateSeed(
      {
        userData: "users: 5\nruncmd: x\n",
        metaData: "local-hostname: [1]\n",
        networkConfig: "version: 3\n",
        instanceId: "",
      },
      noCloudInit,
    );
    expect(bad.ok).toBe(false);
    expect(bad.issues).toEqual([
      "user-data: must start with #cloud-config",
      "meta-data: instance-id: required",
      "meta-data: local-hostname: must be a string",
      "user-data: users: must be a list",
      "user-data: runcmd: must be a list",
      "network-config: version: must be 1 or 2",
    ]);
  });

  it.skipIf(!hasCloudInit)("passes the real `cloud-init schema` and reports what it rejects", async () => {
    const seed = renderSeed({ ...base, writeFiles: [{ path: "/etc/x", content: "y\n" }] });
    const ok = await validateSeed(seed, runner);
    expect(ok).toEqual({ ok: true, issues: [], checkedBy: ["structure", "cloud-init schema"] });
    // Structurally fine, but cloud-init's schema knows package_update is a boolean.
    const bad = await validateSeed({ ...seed, userData: `${seed.userData}package_update: 5\n` }, runner);
    expect(bad.ok).toBe(false);
    expect(bad.checkedBy).toContain("cloud-init schema");
    expect(bad.issues.join("\n")).toMatch(/package_update: 5 is not of type 'boolean'/);
  });
});
