import { afterAll, describe, expect, it } from "vitest";
import { detectNics } from "../../src/detect/nic.js";
import { detectPci } from "../../src/detect/pci.js";
import type { DetectContext } from "../../src/detect/sysfs.js";
import type { NicReport } from "../../src/detect/types.js";
import { RootedHostFs } from "../../src/host/fs.js";
import {
  type SharedHost,
  SKIP_REASON,
  sharedHostRoot,
  sharedHostsAvailable,
} from "../helpers/shared-hosts.js";
import {
  buildDmarBridgeHost,
  buildSriovHost,
  DMAR_BRIDGE,
  SRIOV,
  SysfsFixture,
} from "../helpers/sysfs-fixture.js";

async function detectAt(root: string) {
  const ctx: DetectContext = { fs: new RootedHostFs(root), warnings: [] };
  const pci = await detectPci(ctx, null);
  return { ctx, pci, nics: await detectNics(ctx, pci) };
}

const snapshot = (host: SharedHost) => detectAt(sharedHostRoot(host));

function named(nics: NicReport[], name: string): NicReport {
  const n = nics.find((x) => x.name === name);
  if (!n) throw new Error(`no NIC ${name} in [${nics.map((x) => x.name).join(", ")}]`);
  return n;
}

if (!sharedHostsAvailable) {
  it.skip(`real-machine NIC suites: ${SKIP_REASON}`, () => {});
}

describe.skipIf(!sharedHostsAvailable)("NIC detection on real-machine snapshots", () => {
  it("AMD desktop: maps its four netdevs to their PCI functions through the resolved class/net links", async () => {
    const { nics } = await snapshot("amd-ryzen-1600-desktop");
    expect(nics.map((n) => [n.name, n.pciAddress])).toEqual([
      ["enp3s0", "0000:03:00.0"],
      ["enp6s0f0", "0000:06:00.0"],
      ["enp6s0f1", "0000:06:00.1"],
      ["enp8s0", "0000:08:00.0"],
    ]);
    for (const n of nics) {
      // The snapshot's netdev dirs hold only addr_assign_type, and there are no driver links.
      expect(n).toMatchObject({
        kind: "physical",
        virtual: false,
        mac: null,
        driver: null,
        mtu: null,
        management: false,
      });
    }
  });

  it("laptop: reports the iwlwifi card at 0000:00:14.3 as an unnamed wireless NIC", async () => {
    const { nics } = await snapshot("intel-i7-1270p-laptop");
    expect(nics).toHaveLength(1);
    expect(nics[0]).toMatchObject({
      name: null,
      pciAddress: "0000:00:14.3",
      driver: "iwlwifi",
      kind: "wireless",
    });
  });

  it("xeon VM: reports the virtio-net at 0000:01:00.0 although there is no /sys/class/net", async () => {
    const { nics } = await snapshot("intel-xeon-gold-5218r-server");
    expect(nics).toHaveLength(1);
    expect(nics[0]).toMatchObject({
      name: null,
      pciAddress: "0000:01:00.0",
      driver: "virtio-pci",
      kind: "physical",
    });
  });

  it("kvm guest snapshot: reports no NICs", async () => {
    const { nics, ctx } = await snapshot("kvm-guest-skylake-offline-cpus");
    expect(nics).toEqual([]);
    expect(ctx.warnings).toEqual([]);
  });
});

describe("NIC detection on synthetic sysfs trees", () => {
  const fixtures: SysfsFixture[] = [];
  const build = (f: (fx: SysfsFixture) => SysfsFixture) => {
    const fx = f(new SysfsFixture());
    fixtures.push(fx);
    return fx;
  };
  afterAll(() => {
    for (const fx of fixtures) fx.cleanup();
  });

  it("SR-IOV: gives the PF netdev its VF totals and each VF netdev its own PCI function and driver", async () => {
    const fx = build(buildSriovHost);
    const { nics } = await detectAt(fx.root);
    expect(nics.map((n) => n.name)).toEqual([SRIOV.pfName, ...SRIOV.vfNames]);
    const pf = named(nics, SRIOV.pfName);
    expect(pf).toMatchObject({
      pciAddress: SRIOV.pf,
      driver: "igb",
      mac: "a0:36:9f:00:00:01",
      carrier: true,
      speedMbps: 1000,
      operstate: "up",
      mtu: 1500,
      kind: "physical",
      virtual: false,
    });
    expect(pf.sriov).toEqual({ totalVfs: 7, numVfs: 2, vfs: [...SRIOV.vfs] });
    SRIOV.vfNames.forEach((name, i) => {
      expect(named(nics, name)).toMatchObject({ pciAddress: SRIOV.vfs[i], driver: "igbvf", sriov: null });
    });
    expect(pf.sources.driver).toBe(`${fx.pciPath(SRIOV.pf)}/driver`);
    expect(pf.sources.mac).toBe(`${fx.netPath(SRIOV.pfName)}/address`);
  });

  it("management: marks the bridge holding the lowest-metric default route and its enslaved port", async () => {
    const fx = build(buildDmarBridgeHost);
    const { nics } = await detectAt(fx.root);
    expect(nics.map((n) => n.name)).toEqual([DMAR_BRIDGE.bridge, DMAR_BRIDGE.mgmt, DMAR_BRIDGE.other]);
    expect(named(nics, DMAR_BRIDGE.bridge)).toMatchObject({
      kind: "bridge",
      virtual: true,
      pciAddress: null,
      management: true,
      master: null,
    });
    expect(named(nics, DMAR_BRIDGE.mgmt)).toMatchObject({
      kind: "physical",
      master: DMAR_BRIDGE.bridge,
      management: true,
      pciAddress: DMAR_BRIDGE.mgmtPci,
      driver: "e1000e",
    });
    expect(named(nics, DMAR_BRIDGE.other)).toMatchObject({
      management: false,
      operstate: "down",
      carrier: false,
      speedMbps: null,
      master: null,
    });
    expect(named(nics, DMAR_BRIDGE.bridge).sources.management).toBe("/proc/net/route");
  });

  it("a NIC bound to vfio-pci without a netdev is listed by PCI address after the named ones", async () => {
    const fx = build((f) =>
      buildSriovHost(f).pci({
        address: "0000:05:00.0",
        vendor: "8086",
        device: "1572",
        class: "020000",
        driver: "vfio-pci",
        driverOverride: "vfio-pci",
        iommuGroup: 9,
      }),
    );
    const { nics } = await detectAt(fx.root);
    expect(nics).toHaveLength(4);
    expect(nics[3]).toMatchObject({
      name: null,
      pciAddress: "0000:05:00.0",
      driver: "vfio-pci",
      kind: "physical",
    });
  });

  it("takes the name of a netdev found only under the PCI function (virtioN/net/<name>)", async () => {
    const fx = build((f) => {
      f.pci({
        address: "0000:00:03.0",
        vendor: "1af4",
        device: "1000",
        class: "020000",
        driver: "virtio-pci",
      });
      const virtio = `${f.pciPath("0000:00:03.0")}/virtio2`;
      f.dir(`/sys/bus/virtio/drivers/virtio_net`);
      f.link(`${virtio}/driver`, "/sys/bus/virtio/drivers/virtio_net");
      f.file(`${virtio}/net/eth0/address`, "52:54:00:12:34:56\n").file(
        `${virtio}/net/eth0/operstate`,
        "up\n",
      );
      f.link(`${virtio}/net/eth0/device`, virtio);
      return f;
    });
    const { nics } = await detectAt(fx.root);
    expect(nics).toHaveLength(1);
    expect(nics[0]).toMatchObject({
      name: "eth0",
      pciAddress: "0000:00:03.0",
      driver: "virtio_net",
      mac: "52:54:00:12:34:56",
      kind: "physical",
    });
  });

  it("resolves a class/net link into virtioN to the PCI function it sits on", async () => {
    const fx = build((f) => {
      f.pci({
        address: "0000:00:03.0",
        vendor: "1af4",
        device: "1000",
        class: "020000",
        driver: "virtio-pci",
      });
      const virtio = `${f.pciPath("0000:00:03.0")}/virtio2`;
      f.file(`${virtio}/net/eth0/address`, "52:54:00:12:34:56\n");
      f.link(`${virtio}/net/eth0/device`, virtio);
      f.link("/sys/class/net/eth0", `${virtio}/net/eth0`);
      f.link("/sys/class/net/lo", "/sys/devices/virtual/net/lo").file(
        "/sys/devices/virtual/net/lo/address",
        "00:00:00:00:00:00\n",
      );
      return f;
    });
    const { nics } = await detectAt(fx.root);
    expect(nics.map((n) => [n.name, n.pciAddress, n.driver])).toEqual([
      ["eth0", "0000:00:03.0", "virtio-pci"],
    ]);
  });

  it("tells bond, vlan, tun, veth and wireless netdevs apart, and follows a VLAN down to its NIC", async () => {
    const fx = build((f) => {
      f.pci({ address: "0000:00:19.0", vendor: "8086", device: "153a", class: "020000", driver: "e1000e" });
      f.pci({ address: "0000:00:14.3", vendor: "8086", device: "51f0", class: "028000", driver: "iwlwifi" });
      f.netdev({ name: "eno1", pci: "0000:00:19.0" });
      f.netdev({ name: "eno1.100", kind: "vlan", lower: "eno1" });
      f.netdev({ name: "wlp0s20f3", pci: "0000:00:14.3", kind: "wireless" });
      f.netdev({ name: "bond0", kind: "bond" });
      f.netdev({ name: "dummy0", ifindex: 40 }).netdev({ name: "dummy1", ifindex: 41 });
      f.enslave("dummy0", "bond0");
      f.netdev({ name: "tap0", kind: "tun" });
      f.netdev({ name: "veth0", ifindex: 20, iflink: 21 }).netdev({ name: "veth1", ifindex: 21, iflink: 20 });
      f.routes([{ iface: "eno1.100", metric: 0 }]);
      return f;
    });
    const { nics } = await detectAt(fx.root);
    const kinds = Object.fromEntries(nics.map((n) => [n.name, n.kind]));
    expect(kinds).toEqual({
      bond0: "bond",
      dummy0: null,
      dummy1: null,
      eno1: "physical",
      "eno1.100": "vlan",
      tap0: "tun",
      veth0: "veth",
      veth1: "veth",
      wlp0s20f3: "wireless",
    });
    expect(named(nics, "dummy0").master).toBe("bond0");
    expect(nics.filter((n) => n.management).map((n) => n.name)).toEqual(["eno1", "eno1.100"]);
  });

  it("malformed speed and mtu give nulls and warnings naming the files, never a throw", async () => {
    const fx = build((f) => {
      f.pci({ address: "0000:00:19.0", vendor: "8086", device: "153a", class: "020000", driver: "e1000e" });
      f.netdev({ name: "eno1", pci: "0000:00:19.0" });
      const dir = f.netPath("eno1");
      f.file(`${dir}/speed`, "fast\n").file(`${dir}/mtu`, "\n");
      f.remove(`${dir}/device`); // no device link: the path alone gives the PCI address
      f.file("/proc/net/route", "garbage\n");
      return f;
    });
    const { nics, ctx } = await detectAt(fx.root);
    expect(nics).toHaveLength(1);
    const dir = fx.netPath("eno1");
    expect(nics[0]).toMatchObject({
      name: "eno1",
      speedMbps: null,
      mtu: null,
      pciAddress: "0000:00:19.0",
      driver: "e1000e",
    });
    expect(ctx.warnings.map((w) => w.path).sort()).toEqual([`${dir}/mtu`, `${dir}/speed`]);
  });
});
