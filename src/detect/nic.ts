// Network interfaces: every netdev in /sys/class/net except lo, plus every PCI network function (class
// 02xx) that has no netdev there, so a NIC bound to vfio-pci, a wifi card in a snapshot without netdevs
// or a VM's virtio-net still shows up with its PCI address. Kind, master, SR-IOV and the management role
// (carries the default route) are what the bridge/bond/VFIO planning needs to stay off the operator's link.
// An SR-IOV virtual function (its device has a physfn link) is kind "vf", never a physical NIC; with no
// route table captured, whether a NIC carries the default route is "unknown", never "no".
import { PCI_ADDRESS } from "./pci.js";
import {
  basename,
  compareNatural,
  type DetectContext,
  intOrWarn,
  parseIntStrict,
  parseKeyValues,
  readAttr,
} from "./sysfs.js";
import type { NicReport, PciDevice, Sources } from "./types.js";

const CLASS_NET = "/sys/class/net";

interface Netdev {
  report: NicReport;
  dir: string; // resolved /sys/devices/... directory of the netdev
  entries: Set<string>;
}

export async function detectNics(ctx: DetectContext, pci: PciDevice[]): Promise<NicReport[]> {
  const byAddress = new Map(pci.map((d) => [d.address, d]));
  const names = ((await ctx.fs.readDir(CLASS_NET)) ?? []).filter((n) => n !== "lo");
  const [netdevs, route] = await Promise.all([
    Promise.all(names.map((n) => readNetdev(ctx, n, `${CLASS_NET}/${n}`, byAddress))),
    readDefaultRoute(ctx),
  ]);

  // PCI network functions that no entry of /sys/class/net points at.
  const seenNames = new Set(names);
  const covered = new Set(netdevs.map((n) => n.report.pciAddress));
  const unnamed: NicReport[] = [];
  for (const dev of pci) {
    if (!dev.classId?.startsWith("02") || covered.has(dev.address)) continue;
    const found = await netdevsUnder(ctx, dev.address);
    const extra = found.filter((f) => !seenNames.has(f.name));
    if (extra.length === 0) {
      unnamed.push(unnamedNic(dev));
      continue;
    }
    for (const f of extra) {
      seenNames.add(f.name);
      netdevs.push(await readNetdev(ctx, f.name, f.dir, byAddress));
    }
  }

  markManagement(netdevs, route);
  const routeKnown = route !== null;
  for (const n of netdevs)
    n.report.defaultRoute = !routeKnown ? "unknown" : n.report.management ? "yes" : "no";
  for (const n of unnamed) n.defaultRoute = routeKnown ? "no" : "unknown";
  if (!routeKnown && netdevs.length + unnamed.length > 0)
    ctx.warnings.push({
      path: "/proc/net/route",
      message: "no route table captured: which NIC carries the default route is unknown",
    });

  const named = netdevs.map((n) => n.report).sort((a, b) => collate(a.name ?? "", b.name ?? ""));
  unnamed.sort((a, b) => collate(a.pciAddress ?? "", b.pciAddress ?? ""));
  return [...named, ...unnamed];
}

const collate = compareNatural;

async function readNetdev(
  ctx: DetectContext,
  name: string,
  path: string,
  byAddress: Map<string, PciDevice>,
): Promise<Netdev> {
  const fs = ctx.fs;
  const sources: Sources = {};
  const dir = (await fs.readLink(path)) ?? path;
  const entries = new Set((await fs.readDir(dir)) ?? []);
  const attr = (field: string, file: string) =>
    entries.has(file) ? readAttr(ctx, sources, field, `${dir}/${file}`) : Promise.resolve(null);

  const [mac, operstate, mtuText, ueventText, ifindexText, iflinkText] = await Promise.all([
    attr("mac", "address"),
    attr("operstate", "operstate"),
    attr("mtu", "mtu"),
    entries.has("uevent") ? fs.readText(`${dir}/uevent`) : Promise.resolve(null),
    entries.has("ifindex") ? fs.readText(`${dir}/ifindex`) : Promise.resolve(null),
    entries.has("iflink") ? fs.readText(`${dir}/iflink`) : Promise.resolve(null),
  ]);
  // carrier and speed fail with EINVAL while an interface is down; there is no carrier then by definition.
  const down = operstate === "down";
  const [carrierText, speedText] = down
    ? [null, null]
    : await Promise.all([attr("carrier", "carrier"), attr("speedMbps", "speed")]);

  let carrier: boolean | null = null;
  if (down) {
    carrier = false;
    sources.carrier = `${dir}/operstate`;
  } else if (carrierText !== null) {
    const c = intOrWarn(ctx, `${dir}/carrier`, carrierText);
    carrier = c === null ? null : c !== 0;
  }
  const speed = intOrWarn(ctx, `${dir}/speed`, speedText);
  // -1 (and its unsigned form on old kernels) means unknown; so does 0.
  const speedMbps = speed === null || speed <= 0 || speed >= 0xffffffff ? null : speed;
  if (speedMbps === null) delete sources.speedMbps;
  const mtu = intOrWarn(ctx, `${dir}/mtu`, mtuText);

  const virtual = dir.startsWith("/sys/devices/virtual/");

  // The device behind the netdev: its `device` link, else the directory holding net/<name>.
  const deviceLink = entries.has("device") ? await fs.readLink(`${dir}/device`) : null;
  const netParent = dir.endsWith(`/net/${name}`) ? dir.slice(0, -`/net/${name}`.length) : null;
  let pciAddress: string | null = null;
  for (const [candidate, source] of [
    [deviceLink, `${dir}/device`],
    [netParent, dir],
  ] as const) {
    const addr = candidate === null ? null : pciAddressOf(candidate);
    if (addr !== null) {
      pciAddress = addr;
      sources.pciAddress = source;
      break;
    }
  }
  const pciDev = pciAddress === null ? undefined : byAddress.get(pciAddress);

  let driver: string | null = null;
  const driverLink = deviceLink === null ? null : await fs.readLink(`${deviceLink}/driver`);
  if (driverLink !== null && (await fs.exists(driverLink))) {
    driver = basename(driverLink);
    sources.driver = `${deviceLink}/driver`;
  } else if (pciDev?.driver) {
    driver = pciDev.driver;
    if (pciDev.sources.driver) sources.driver = pciDev.sources.driver;
  }

  const master = entries.has("master") ? await fs.readLink(`${dir}/master`) : null;
  if (master !== null) sources.master = `${dir}/master`;

  const uevent = parseKeyValues(ueventText);
  const kind = await netdevKind(ctx, name, dir, entries, {
    devtype: uevent.DEVTYPE ?? null,
    driver,
    virtual,
    pciBacked: pciAddress !== null,
    hasDevice: deviceLink !== null,
    ifindex: parseIntStrict(ifindexText),
    iflink: parseIntStrict(iflinkText),
    sources,
  });

  if (pciDev?.sriov)
    sources.sriov = pciDev.sources["sriov.totalVfs"] ?? `/sys/bus/pci/devices/${pciDev.address}`;
  const physfn = pciDev?.physfn ?? null;
  const vf = physfn !== null && (kind === "physical" || kind === null);
  if (vf) sources.kind = pciDev?.sources.physfn ?? `/sys/bus/pci/devices/${pciAddress}/physfn`;
  return {
    dir,
    entries,
    report: {
      name,
      mac: mac || null,
      pciAddress,
      driver,
      carrier,
      speedMbps,
      operstate,
      mtu,
      virtual,
      kind: vf ? "vf" : kind,
      master: master === null ? null : basename(master),
      sriov: pciDev?.sriov ?? null,
      management: false,
      physfn,
      sources,
    },
  };
}

/** The PCI address of a device path: itself, or the PCI function a virtioN device sits on. */
function pciAddressOf(devicePath: string): string | null {
  let p = devicePath;
  if (/^virtio\d+$/.test(basename(p))) p = p.slice(0, p.lastIndexOf("/"));
  const b = basename(p);
  return PCI_ADDRESS.test(b) ? b : null;
}

interface KindFacts {
  devtype: string | null;
  driver: string | null;
  virtual: boolean;
  pciBacked: boolean;
  hasDevice: boolean;
  ifindex: number | null;
  iflink: number | null;
  sources: Sources;
}

async function netdevKind(
  ctx: DetectContext,
  name: string,
  dir: string,
  entries: Set<string>,
  f: KindFacts,
): Promise<string | null> {
  const found = (kind: string, source: string) => {
    f.sources.kind = source;
    return kind;
  };
  if (entries.has("bridge")) return found("bridge", `${dir}/bridge`);
  if (entries.has("bonding")) return found("bond", `${dir}/bonding`);
  if (await ctx.fs.exists(`/proc/net/vlan/${name}`)) return found("vlan", `/proc/net/vlan/${name}`);
  if (entries.has("wireless")) return found("wireless", `${dir}/wireless`);
  if (entries.has("phy80211")) return found("wireless", `${dir}/phy80211`);
  if (entries.has("tun_flags")) return found("tun", `${dir}/tun_flags`);
  const devtype = f.devtype === "wlan" ? "wireless" : f.devtype;
  if (devtype) return found(devtype, `${dir}/uevent`);
  if (f.driver === "veth") return found("veth", f.sources.driver ?? dir);
  // The kernel gives veth no DEVTYPE and no driver link. What marks it: a virtual netdev whose iflink
  // names another interface (its peer) while it has no lower device (which macvlan/ipvlan would have).
  const hasLower = [...entries].some((e) => e.startsWith("lower_"));
  if (
    f.virtual &&
    !hasLower &&
    f.ifindex !== null &&
    f.iflink !== null &&
    f.iflink > 0 &&
    f.iflink !== f.ifindex
  ) {
    return found("veth", `${dir}/iflink`);
  }
  if (f.pciBacked || (!f.virtual && f.hasDevice))
    return found("physical", f.hasDevice ? `${dir}/device` : dir);
  return null;
}

/** Netdevs that sit under a PCI function: <dev>/net/<name>, or <dev>/virtioN/net/<name> for virtio-net. */
async function netdevsUnder(ctx: DetectContext, address: string): Promise<{ name: string; dir: string }[]> {
  const link = `/sys/bus/pci/devices/${address}`;
  const dev = (await ctx.fs.readLink(link)) ?? link;
  const out: { name: string; dir: string }[] = [];
  const holders = [
    dev,
    ...((await ctx.fs.readDir(dev)) ?? []).filter((e) => /^virtio\d+$/.test(e)).map((e) => `${dev}/${e}`),
  ];
  for (const h of holders) {
    for (const name of (await ctx.fs.readDir(`${h}/net`)) ?? []) out.push({ name, dir: `${h}/net/${name}` });
  }
  return out;
}

function unnamedNic(dev: PciDevice): NicReport {
  const sources: Sources = { pciAddress: `/sys/bus/pci/devices/${dev.address}` };
  if (dev.sources.driver) sources.driver = dev.sources.driver;
  if (dev.sources.classId) sources.kind = dev.sources.classId;
  if (dev.physfn !== null) sources.kind = dev.sources.physfn ?? `/sys/bus/pci/devices/${dev.address}/physfn`;
  if (dev.sriov) sources.sriov = dev.sources["sriov.totalVfs"] ?? `/sys/bus/pci/devices/${dev.address}`;
  return {
    name: null,
    mac: null,
    pciAddress: dev.address,
    driver: dev.driver,
    carrier: null,
    speedMbps: null,
    operstate: null,
    mtu: null,
    virtual: false,
    // Class 0280 ("Network controller") is where wifi cards live; the rest of 02xx is wired.
    kind: dev.physfn !== null ? "vf" : dev.classId?.startsWith("0280") ? "wireless" : "physical",
    master: null,
    sriov: dev.sriov,
    management: false,
    physfn: dev.physfn,
    sources,
  };
}

/** A captured route table and the interface of its default route (null: the table has none). */
export type DefaultRoute = { iface: string | null; source: string };

/**
 * The interface of the default route with the lowest metric: IPv4 from /proc/net/route, else IPv6
 * from /proc/net/ipv6_route. Null when neither table was captured (then nothing is known).
 */
export async function readDefaultRoute(ctx: DetectContext): Promise<DefaultRoute | null> {
  const v4 = await ctx.fs.readText("/proc/net/route");
  const best4 = v4 === null ? null : defaultOfV4(v4);
  if (best4 !== null) return { iface: best4, source: "/proc/net/route" };
  // IPv6 only when IPv4 has no default route: most hosts answer from the first file.
  const v6 = await ctx.fs.readText("/proc/net/ipv6_route");
  if (v4 === null && v6 === null) return null;
  const best6 = v6 === null ? null : defaultOfV6(v6);
  if (best6 !== null) return { iface: best6, source: "/proc/net/ipv6_route" };
  return { iface: null, source: v4 !== null ? "/proc/net/route" : "/proc/net/ipv6_route" };
}

function defaultOfV4(text: string): string | null {
  let best: { iface: string; metric: number } | null = null;
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [iface, destination, , flagsText, , , metricText, mask] = f;
    if (!iface || destination !== "00000000" || mask !== "00000000") continue;
    const flags = parseIntStrict(flagsText ?? null, 16);
    if (flags === null || (flags & 0x1) === 0) continue; // RTF_UP
    const metric = parseIntStrict(metricText ?? null);
    if (metric === null) continue;
    if (best === null || metric < best.metric) best = { iface, metric };
  }
  return best?.iface ?? null;
}

/** ipv6_route: dest, dest prefix, src, src prefix, next hop, metric, refcnt, use, flags, iface. */
function defaultOfV6(text: string): string | null {
  let best: { iface: string; metric: number } | null = null;
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [dest, prefix, , , , metricText, , , flagsText, iface] = f;
    if (!iface || iface === "lo" || !/^0{32}$/.test(dest ?? "") || prefix !== "00") continue;
    const flags = parseIntStrict(flagsText ?? null, 16);
    if (flags === null || (flags & 0x1) === 0 || (flags & 0x200) !== 0) continue; // RTF_UP, not RTF_REJECT
    const metric = parseIntStrict(metricText ?? null, 16);
    if (metric === null) continue;
    if (best === null || metric < best.metric) best = { iface, metric };
  }
  return best?.iface ?? null;
}

/**
 * The interface carrying the default route is the management interface; so are the devices under it
 * (the ports of that bridge or bond, the parent of that VLAN), found through the kernel's lower_<dev>
 * links and each port's master link: those are the links that must not be reconfigured blindly.
 */
function markManagement(netdevs: Netdev[], route: DefaultRoute | null): void {
  if (route?.iface == null) return;
  const carrying = new Set([route.iface]);
  for (let changed = true; changed; ) {
    changed = false;
    for (const n of netdevs) {
      const name = n.report.name;
      if (name === null || !carrying.has(name)) {
        const underCarrier = n.report.master !== null && carrying.has(n.report.master);
        if (name !== null && underCarrier) {
          carrying.add(name);
          changed = true;
        }
        continue;
      }
      for (const e of n.entries) {
        const lower = e.startsWith("lower_") ? e.slice("lower_".length) : null;
        if (lower !== null && !carrying.has(lower)) {
          carrying.add(lower);
          changed = true;
        }
      }
    }
  }
  for (const n of netdevs) {
    if (n.report.name !== null && carrying.has(n.report.name)) {
      n.report.management = true;
      n.report.sources.management = route.source;
    }
  }
}
