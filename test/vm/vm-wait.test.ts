// `vm deploy --wait` follows the README's readiness stages, phone_home included: the CLI starts the
// phone_home server where the VM's network reaches the host, puts its URL in the seed and waits for
// the post. And a libvirt failure (here the captured "vhost-net ... unavailable") prints as libvirt's
// reason with a fix, exit 1, never as "internal error". Fake libvirt; real qemu-img, seed and HTTP.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { vmCommand } from "../../src/cli/vm-command.js";
import type { HostReport } from "../../src/detect/types.js";
import { LibvirtError } from "../../src/vm/libvirt.js";
import { classifyVirshError, virshErrorMessage } from "../../src/vm/libvirt-error.js";
import { PHONE_HOME_PORT, phoneHomeAddress, startPhoneHomeFor } from "../../src/vm/phone-home.js";
import { labReport } from "../answer/hosts.js";
import { captureCli } from "../helpers/capture-cli.js";
import { FakeLibvirt } from "./fake-libvirt.js";

const hasQemuImg = spawnSync("qemu-img", ["--version"]).status === 0;
let report: HostReport; // a synthetic lab host (test/answer/hosts.ts): vm deploy validates against it
const NET_XML = `<network>
  <name>lo-net</name>
  <bridge name='kvst-nobr0' stp='on' delay='0'/>
  <ip address='127.0.0.1' netmask='255.0.0.0'/>
</network>
`;

let root: string;
let base: string;
const fake = () => {
  const lv = new FakeLibvirt();
  lv.networks.set("lo-net", { name: "lo-net", active: true, autostart: true, persistent: true });
  lv.networkXmls.set("lo-net", NET_XML);
  return lv;
};

beforeAll(async () => {
  report = await labReport();
  root = mkdtempSync(path.join(tmpdir(), "kvmstrap-vm-wait-"));
  base = path.join(root, "base.qcow2");
  if (hasQemuImg) execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", base, "64M"]);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("the phone_home address", () => {
  it("is the host's address on the VM's libvirt network, a bridge's own address, or none with a reason", async () => {
    const lv = fake();
    expect(await phoneHomeAddress([{ kind: "network", network: "lo-net" }], lv)).toEqual({
      address: "127.0.0.1",
    });
    // The definition a real libvirtd gives back (net-dumpxml, captured): the host's address on it.
    lv.networkXmls.set(
      "kvmstrap-test",
      readFileSync(path.join(import.meta.dirname, "fixtures/virsh/net-dumpxml.txt"), "utf8"),
    );
    expect(await phoneHomeAddress([{ kind: "network", network: "kvmstrap-test" }], lv)).toEqual({
      address: "192.168.150.1",
    });
    const ifs = { br0: [{ family: "IPv4", address: "10.0.0.5", internal: false }] } as never;
    expect(await phoneHomeAddress([{ kind: "bridge", bridge: "br0" }], lv, ifs)).toEqual({
      address: "10.0.0.5",
    });
    expect(await phoneHomeAddress([{ kind: "bridge", bridge: "br1" }], lv, ifs)).toEqual({
      address: null,
      reason: "bridge br1 has no IPv4 address on this host",
    });
    const none = await startPhoneHomeFor(
      [{ name: "t", nics: [{ kind: "macvtap", dev: "eth0", mode: "bridge" }] }],
      lv,
    );
    expect(none).toEqual({
      server: null,
      note: "the wait skips phone_home: t: a macvtap NIC cannot reach its own host",
    });
    // An answer's VMs share one server, so they must reach the host at one address.
    const split = await startPhoneHomeFor(
      [
        { name: "a", nics: [{ kind: "network", network: "lo-net" }] },
        { name: "b", nics: [{ kind: "network", network: "kvmstrap-test" }] },
      ],
      lv,
    );
    expect(split.note).toBe(
      "the wait skips phone_home: the VMs reach this host at different addresses (a at 127.0.0.1; b at 192.168.150.1)",
    );
  });
});

describe.skipIf(!hasQemuImg)("vm deploy --wait (skipped without qemu-img)", () => {
  it("waits for phone_home between the address and cloud-init, from the URL it put in the seed", async () => {
    const lv = fake();
    const dir = path.join(root, "vms-wait");
    lv.addresses.web = [
      {
        iface: "vnet0",
        mac: "52:54:00:00:00:01",
        addrs: [{ family: "ipv4", address: "192.0.2.10", prefix: 24 }],
      },
    ];
    lv.agentUp.add("web");
    // The guest: once the record names its instance-id, post to the URL the seed carries.
    const guest = (async () => {
      for (let i = 0; i < 200; i++) {
        const text = await readFile(path.join(dir, "web", "vm.json"), "utf8").catch(() => "");
        if (text && lv.domains.get("web")?.state === "running") {
          const id = JSON.parse(text).instanceId as string;
          const r = await fetch(`http://127.0.0.1:${PHONE_HOME_PORT}/phone-home/${id}`, {
            method: "POST",
            body: new URLSearchParams({ instance_id: id, hostname: "web" }),
          });
          return r.status;
        }
        await sleep(50);
      }
      return 0;
    })();
    const r = await captureCli(() =>
      vmCommand(
        [
          "deploy",
          "--name",
          "web",
          "--image",
          base,
          "--network",
          "lo-net",
          "--disk",
          "1",
          "--vcpus",
          "1",
          "--memory",
          "256",
          "--dir",
          dir,
          "--state-dir",
          path.join(dir, ".journal"),
          "--wait",
          "15",
        ],
        { libvirt: lv, report },
      ),
    );
    expect(await guest).toBe(200);
    expect(r.stderr).not.toMatch(/skips phone_home/);
    expect(r.code).toBe(0);
    const stages = [...r.stdout.matchAll(/^ {2}(\S+)\s+\+/gm)].map((m) => m[1]);
    expect(stages).toEqual(["defined", "started", "address", "phone-home", "cloud-init"]);
    expect(r.stdout).toMatch(/phone-home\s+\+[\d.]+ s from 127\.0\.0\.1 \(web\)/);
    const seed = readFileSync(path.join(dir, "web", "seed.iso")).toString("latin1");
    expect(seed).toContain(`http://127.0.0.1:${PHONE_HOME_PORT}/phone-home/$INSTANCE_ID`);
  });

  it("--answer --wait: the VMs of the file share one phone_home server and each waits for its post", async () => {
    const lv = fake();
    const dir = path.join(root, "vms-answer");
    const names = ["a1", "a2"];
    for (const [i, name] of names.entries()) {
      lv.addresses[name] = [
        {
          iface: "vnet0",
          mac: `52:54:00:00:00:0${i}`,
          addrs: [{ family: "ipv4", address: `192.0.2.${10 + i}`, prefix: 24 }],
        },
      ];
      lv.agentUp.add(name);
    }
    const key =
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@kvmstrap";
    const file = path.join(root, "answer.yaml");
    writeFileSync(
      file,
      ["version: 1", "vms:"]
        .concat(
          ...names.map((name) => [
            `  - name: ${name}`,
            `    image: ${base}`,
            "    vcpus: 1",
            "    memoryMiB: 256",
            "    diskGiB: 1",
            "    user:",
            "      name: debian",
            `      sshKeys: ["${key}"]`,
            "    nics: [{ network: lo-net }]",
          ]),
        )
        .join("\n"),
    );
    const guests = names.map(async (name) => {
      for (let i = 0; i < 200; i++) {
        const text = await readFile(path.join(dir, name, "vm.json"), "utf8").catch(() => "");
        if (text && lv.domains.get(name)?.state === "running") {
          const id = JSON.parse(text).instanceId as string;
          const r = await fetch(`http://127.0.0.1:${PHONE_HOME_PORT}/phone-home/${id}`, {
            method: "POST",
            body: new URLSearchParams({ instance_id: id, hostname: name }),
          });
          return r.status;
        }
        await sleep(50);
      }
      return 0;
    });
    const r = await captureCli(() =>
      vmCommand(
        [
          "deploy",
          "--answer",
          file,
          "--dir",
          dir,
          "--state-dir",
          path.join(dir, ".journal"),
          "--wait",
          "15",
          "--json",
        ],
        {
          libvirt: lv,
          report,
        },
      ),
    );
    expect(await Promise.all(guests)).toEqual([200, 200]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{\n  "type": "result"')));
    for (const d of out.deploys) {
      expect(d.ready.timeline.map((t: { stage: string }) => t.stage)).toEqual([
        "defined",
        "started",
        "address",
        "phone-home",
        "cloud-init",
      ]);
    }
  });

  it("prints libvirt's reason and a fix (exit 1) for a start the host cannot do, not 'internal error'", async () => {
    const lv = fake();
    const captured = readFileSync(path.join(import.meta.dirname, "fixtures/virsh/err-vhost-net.txt"), "utf8");
    lv.start = async () => {
      throw new LibvirtError(
        classifyVirshError(captured),
        virshErrorMessage(captured),
        ["virsh", "start"],
        captured,
        1,
      );
    };
    const r = await captureCli(() =>
      vmCommand(
        [
          "deploy",
          "--name",
          "web",
          "--image",
          base,
          "--network",
          "lo-net",
          "--disk",
          "1",
          "--dir",
          path.join(root, "vms-fail"),
          "--state-dir",
          path.join(root, "vms-fail", ".journal"),
        ],
        { libvirt: lv, report },
      ),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.stderr).toMatch(
      /kvmstrap: libvirt: Failed to start domain 'kvst-vhost': vhost-net was requested for an interface, but is unavailable\n {2}fix: .*modprobe vhost_net/,
    );
  });
});
