// A snapshot records the guest's addresses: chosen from `virsh domifaddr` output captured from a real
// libvirtd (test/vm/fixtures/virsh: the agent's view of a Debian guest, a DHCP lease, no lease),
// kept in the snapshot's description and read back by list. The real path (create then list on a
// running guest) is in test/e2e/backup.e2e.test.ts.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { type AddressSource, type DomainInterface, LibvirtError } from "../../src/vm/libvirt.js";
import {
  addressesOf,
  guestAddresses,
  parseSnapshotXml,
  snapshotDescription,
  snapshotXmlFor,
} from "../../src/vm/snapshot.js";
import { parseDomIfAddr } from "../../src/vm/virsh-parse.js";
import { FakeLibvirt } from "./fake-libvirt.js";

const captured = (f: string) =>
  parseDomIfAddr(readFileSync(path.join(import.meta.dirname, "fixtures/virsh", f), "utf8"));

/** domifaddr per source as the captured virsh printed it; a source left out fails as libvirt does. */
class Domifaddr extends FakeLibvirt {
  constructor(private readonly by: Partial<Record<AddressSource, DomainInterface[]>>) {
    super();
  }
  override async ifAddresses(_name: string, source: AddressSource): Promise<DomainInterface[]> {
    this.calls.push(`ifAddresses:${source}`);
    const r = this.by[source];
    if (!r) throw new LibvirtError("agent", `no ${source} addresses (injected)`);
    return r;
  }
}

describe("the addresses a snapshot records", () => {
  it("the guest agent's view when it answers: loopback left out, IPv4 and IPv6 of the NIC kept", async () => {
    const lv = new Domifaddr({
      agent: captured("domifaddr-agent.txt"),
      lease: captured("domifaddr-lease.txt"),
    });
    const a = await guestAddresses(lv, "web", true);
    expect(a).toEqual({
      source: "agent",
      interfaces: [
        {
          iface: "enp1s0",
          mac: "52:54:00:5e:a1:01",
          addrs: [
            { family: "ipv4", address: "192.168.150.171", prefix: 24 },
            { family: "ipv6", address: "fe80::5054:ff:fe5e:a101", prefix: 64 },
          ],
        },
      ],
    });
    expect(lv.calls).toEqual(["ifAddresses:agent"]);
  });

  it("without the agent: libvirt's DHCP lease; with no lease either: the host's ARP table, then none", async () => {
    const lease = captured("domifaddr-lease.txt");
    const lv = new Domifaddr({ agent: captured("domifaddr-agent.txt"), lease });
    expect(await guestAddresses(lv, "web", false)).toEqual({ source: "lease", interfaces: lease });
    expect(lv.calls).toEqual(["ifAddresses:lease"]); // the agent is not asked when it did not answer the ping

    const arp = new Domifaddr({ lease: captured("domifaddr-lease-none.txt"), arp: lease });
    expect((await guestAddresses(arp, "web", false))?.source).toBe("arp");

    const none = new Domifaddr({ lease: captured("domifaddr-lease-none.txt") });
    expect(await guestAddresses(none, "web", true)).toBeNull();
    expect(none.calls).toEqual(["ifAddresses:agent", "ifAddresses:lease", "ifAddresses:arp"]);
  });

  it("kept in the snapshot's description and read back from libvirt's snapshot-dumpxml", async () => {
    const addresses = await guestAddresses(
      new Domifaddr({ agent: captured("domifaddr-agent.txt") }),
      "web",
      true,
    );
    const ours = snapshotXmlFor("s1", [], addresses);
    expect(ours).toContain(
      "<description>kvmstrap vm snapshot\naddresses: {&quot;source&quot;:&quot;agent&quot;",
    );
    // As libvirt prints it back: its own elements around the description it stored, quotes escaped.
    const description = /<description>([\s\S]*?)<\/description>/.exec(ours)?.[1] ?? "";
    const dumped = `<domainsnapshot>
  <name>s1</name>
  <description>${description}</description>
  <state>running</state>
  <creationTime>1796558400</creationTime>
  <memory snapshot='no'/>
  <disks>
    <disk name='vda' snapshot='external' type='file'>
      <driver type='qcow2'/>
      <source file='/var/lib/kvmstrap/vms/web/web.s1.qcow2'/>
    </disk>
  </disks>
  <domain type='kvm'><name>web</name></domain>
</domainsnapshot>
`;
    const info = parseSnapshotXml(dumped);
    expect(info.addresses).toEqual(addresses);
    expect(info.disks).toEqual([{ target: "vda", file: "/var/lib/kvmstrap/vms/web/web.s1.qcow2" }]);
  });

  it("a snapshot another tool (or an older kvmstrap) made has no addresses, and a bad line is ignored", () => {
    expect(addressesOf("kvmstrap vm snapshot")).toBeNull();
    expect(addressesOf("before the upgrade")).toBeNull();
    expect(addressesOf('kvmstrap vm snapshot\naddresses: {"source":"agent"')).toBeNull();
    expect(addressesOf('kvmstrap vm snapshot\naddresses: {"source":"dns","interfaces":[]}')).toBeNull();
    expect(snapshotDescription(null)).toBe("kvmstrap vm snapshot");
    const bare = parseSnapshotXml("<domainsnapshot><name>x</name><state>shutoff</state></domainsnapshot>");
    expect(bare.addresses).toBeNull();
  });
});
