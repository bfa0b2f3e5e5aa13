// PCI functions from /sys/bus/pci/devices: ids, names, class, driver binding, NUMA node, IOMMU group,
// reset methods, SR-IOV and the upstream bridge. Snapshots are often partial (no driver links, dangling
// iommu_group links, modalias without subsystem files), so every attribute is optional: what cannot be
// read is null, what is malformed is null plus a warning naming the file. Nothing here throws.
import type { PciIds } from "../host/pci-ids.js";
import { basename, compareText, type DetectContext, hexId, intOrWarn, readAttr } from "./sysfs.js";
import type { PciDevice, Sources, SriovInfo } from "./types.js";

export const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
const PCI_DEVICES = "/sys/bus/pci/devices";

/** Fills vendor, device and class names from pci.ids (kept apart so sysfs reads need not wait for it). */
export function nameDevices(devices: PciDevice[], ids: PciIds | null): PciDevice[] {
  if (!ids) return devices;
  for (const d of devices) {
    d.vendorName = d.vendorId ? ids.vendor(d.vendorId) : null;
    d.deviceName = d.vendorId && d.deviceId ? ids.device(d.vendorId, d.deviceId) : null;
    d.className = d.classId ? ids.className(d.classId) : null;
  }
  return devices;
}

export async function detectPci(ctx: DetectContext, ids: PciIds | null): Promise<PciDevice[]> {
  const found = await listPciFunctions(ctx);
  const devices = await Promise.all(
    found.map(({ address, path }) => readPciFunction(ctx, ids, address, path)),
  );
  return devices.sort((a, b) => compareText(a.address, b.address));
}

/** Address and resolved /sys/devices path of every PCI function. */
async function listPciFunctions(ctx: DetectContext): Promise<{ address: string; path: string }[]> {
  const entries = await ctx.fs.readDir(PCI_DEVICES);
  if (entries !== null) {
    const addrs = entries.filter((e) => PCI_ADDRESS.test(e));
    return Promise.all(
      addrs.map(async (address) => {
        const link = `${PCI_DEVICES}/${address}`;
        return { address, path: (await ctx.fs.readLink(link)) ?? link };
      }),
    );
  }
  // No bus view in this snapshot: walk the device tree under /sys/devices/pci* instead.
  const roots = ((await ctx.fs.readDir("/sys/devices")) ?? []).filter((e) =>
    /^pci[0-9a-f]{4}:[0-9a-f]{2}$/.test(e),
  );
  const out: { address: string; path: string }[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (depth > 16) return;
    const children = ((await ctx.fs.readDir(dir)) ?? []).filter((e) => PCI_ADDRESS.test(e));
    await Promise.all(
      children.map(async (c) => {
        const p = `${dir}/${c}`;
        if ((await ctx.fs.readLink(p)) !== null) return; // virtfnN-style links, not the device itself
        out.push({ address: c, path: p });
        await walk(p, depth + 1);
      }),
    );
  };
  await Promise.all(roots.map((r) => walk(`/sys/devices/${r}`, 0)));
  return out;
}

interface Modalias {
  vendor: string;
  device: string;
  subsystemVendor: string;
  subsystemDevice: string;
  classId: string;
}

/** pci:v00008086d00001521sv0000FFFFsd00000000bc02sc00i00 -> ids; null when it does not parse. */
export function parseModalias(text: string | null): Modalias | null {
  if (text === null) return null;
  const m =
    /^pci:v([0-9A-F]{8})d([0-9A-F]{8})sv([0-9A-F]{8})sd([0-9A-F]{8})bc([0-9A-F]{2})sc([0-9A-F]{2})i([0-9A-F]{2})$/i.exec(
      text.trim(),
    );
  if (!m) return null;
  const id = (s: string | undefined) => (s ?? "").slice(-4).toLowerCase();
  return {
    vendor: id(m[1]),
    device: id(m[2]),
    subsystemVendor: id(m[3]),
    subsystemDevice: id(m[4]),
    classId: `${m[5]}${m[6]}${m[7]}`.toLowerCase(),
  };
}

async function readPciFunction(
  ctx: DetectContext,
  ids: PciIds | null,
  address: string,
  dev: string,
): Promise<PciDevice> {
  const sources: Sources = {};
  const has = new Set((await ctx.fs.readDir(dev)) ?? []);
  const attr = (field: string, file: string) =>
    has.has(file) ? readAttr(ctx, sources, field, `${dev}/${file}`) : Promise.resolve(null);
  const link = (file: string) => (has.has(file) ? ctx.fs.readLink(`${dev}/${file}`) : Promise.resolve(null));

  // One batch: every read of this function at once (each sequential await is a thread-pool round trip).
  // modalias carries vendor, device, subsystem and class in one file; the separate id files are read
  // only when it is missing or malformed, which halves the reads on a large host.
  const [modaliasText, [overrideText, numaText, bootVgaText, resetText, totalVfsText, numVfsText], links] =
    await Promise.all([
      has.has("modalias") ? ctx.fs.readText(`${dev}/modalias`) : Promise.resolve(null),
      Promise.all([
        attr("driverOverride", "driver_override"),
        attr("numaNode", "numa_node"),
        attr("bootVga", "boot_vga"),
        attr("resetMethods", "reset_method"),
        attr("sriov.totalVfs", "sriov_totalvfs"),
        attr("sriov.numVfs", "sriov_numvfs"),
      ]),
      Promise.all([link("driver"), link("iommu_group"), link("physfn")]),
    ]);
  const [driverLink, groupLink, physfnLink] = links;
  const modalias = parseModalias(modaliasText);
  if (modaliasText !== null && modalias === null)
    warn(ctx, `${dev}/modalias`, "not a PCI modalias", modaliasText);
  const [vendorText, deviceText, subVText, subDText, classText] = modalias
    ? [null, null, null, null, null]
    : await Promise.all([
        attr("vendorId", "vendor"),
        attr("deviceId", "device"),
        attr("subsystemVendorId", "subsystem_vendor"),
        attr("subsystemDeviceId", "subsystem_device"),
        attr("classId", "class"),
      ]);

  /** A hex id from its own file, else from modalias (recording that source), else null with a warning. */
  const pick = (
    field: string,
    file: string,
    text: string | null,
    width: number,
    fallback: string | undefined,
  ) => {
    const fromFile = hexId(text, width);
    if (fromFile !== null) return fromFile;
    if (text !== null) {
      warn(ctx, `${dev}/${file}`, "expected a hex id", text);
      delete sources[field];
    }
    if (fallback !== undefined) {
      sources[field] = `${dev}/modalias`;
      return fallback;
    }
    return null;
  };
  const vendorId = pick("vendorId", "vendor", vendorText, 4, modalias?.vendor);
  const deviceId = pick("deviceId", "device", deviceText, 4, modalias?.device);
  const subsystemVendorId = pick(
    "subsystemVendorId",
    "subsystem_vendor",
    subVText,
    4,
    modalias?.subsystemVendor,
  );
  const subsystemDeviceId = pick(
    "subsystemDeviceId",
    "subsystem_device",
    subDText,
    4,
    modalias?.subsystemDevice,
  );
  const classId = pick("classId", "class", classText, 6, modalias?.classId);
  if (vendorId === null && vendorText === null)
    warn(ctx, `${dev}/vendor`, "missing (and no modalias): vendor unknown");
  if (deviceId === null && deviceText === null)
    warn(ctx, `${dev}/device`, "missing (and no modalias): device unknown");
  if (classId === null && classText === null)
    warn(ctx, `${dev}/class`, "missing (and no modalias): class unknown");

  // driver: a link to /sys/bus/pci/drivers/<name>. A link whose target is gone is reported, not trusted.
  let driver: string | null = null;
  if (driverLink !== null) {
    if (await ctx.fs.exists(driverLink)) {
      driver = basename(driverLink);
      sources.driver = `${dev}/driver`;
    } else {
      warn(ctx, `${dev}/driver`, `dangling link to ${driverLink}: driver unknown`);
    }
  }

  // iommu_group: only the target's name matters (snapshots often lack /sys/kernel, so it may dangle).
  let iommuGroup: number | null = null;
  if (groupLink !== null) {
    iommuGroup = intOrWarn(ctx, `${dev}/iommu_group`, basename(groupLink));
    if (iommuGroup !== null) sources.iommuGroup = `${dev}/iommu_group`;
  }

  const numa = intOrWarn(ctx, `${dev}/numa_node`, numaText);
  const numaNode = numa === null || numa < 0 ? null : numa;

  let bootVga: boolean | null = null;
  if (bootVgaText !== null) {
    if (bootVgaText === "0" || bootVgaText === "1") bootVga = bootVgaText === "1";
    else warn(ctx, `${dev}/boot_vga`, "expected 0 or 1", bootVgaText);
  }

  const resetMethods = resetText === null ? null : resetText.split(/\s+/).filter(Boolean);
  const driverOverride =
    overrideText === null || overrideText === "" || overrideText === "(null)" ? null : overrideText;

  const sriov = await readSriov(ctx, dev, has, totalVfsText, numVfsText, sources);

  const physfn = physfnLink !== null && PCI_ADDRESS.test(basename(physfnLink)) ? basename(physfnLink) : null;
  if (physfn !== null) sources.physfn = `${dev}/physfn`;

  // The parent directory of the resolved device path is the upstream bridge, or the root bus pciDDDD:BB.
  const parentDir = basename(dev.slice(0, Math.max(0, dev.lastIndexOf("/"))));
  const parent = PCI_ADDRESS.test(parentDir) ? parentDir : null;
  if (parent !== null) sources.parent = dev;

  return {
    address,
    vendorId,
    deviceId,
    subsystemVendorId,
    subsystemDeviceId,
    vendorName: ids && vendorId ? ids.vendor(vendorId) : null,
    deviceName: ids && vendorId && deviceId ? ids.device(vendorId, deviceId) : null,
    classId,
    className: ids && classId ? ids.className(classId) : null,
    driver,
    driverOverride,
    numaNode,
    iommuGroup,
    bootVga,
    resetMethods,
    sriov,
    physfn,
    parent,
    sources,
  };
}

async function readSriov(
  ctx: DetectContext,
  dev: string,
  has: Set<string>,
  totalText: string | null,
  numText: string | null,
  sources: Sources,
): Promise<SriovInfo | null> {
  const virtfns = [...has]
    .map((e) => /^virtfn(\d+)$/.exec(e))
    .filter((m): m is RegExpExecArray => m !== null)
    .sort((a, b) => Number(a[1]) - Number(b[1]));
  // VFs in plain view prove the function is SR-IOV capable even when sriov_totalvfs was not captured.
  const totalVfs = totalText === null ? null : intOrWarn(ctx, `${dev}/sriov_totalvfs`, totalText);
  if (totalVfs === null && virtfns.length === 0) return null;
  const numVfs = intOrWarn(ctx, `${dev}/sriov_numvfs`, numText) ?? virtfns.length;
  const vfs: string[] = [];
  for (const m of virtfns) {
    const target = await ctx.fs.readLink(`${dev}/${m[0]}`);
    if (target !== null && PCI_ADDRESS.test(basename(target))) vfs.push(basename(target));
  }
  if (virtfns.length > 0) sources["sriov.vfs"] = `${dev}/virtfn*`;
  if (totalVfs === null) {
    ctx.warnings.push({
      path: `${dev}/sriov_totalvfs`,
      message: `not captured: SR-IOV capable (${virtfns.length} VFs visible), how many VFs it supports is unknown`,
    });
    return { totalVfs: virtfns.length, numVfs, vfs, totalVfsKnown: false };
  }
  return { totalVfs, numVfs, vfs };
}

function warn(ctx: DetectContext, path: string, message: string, content?: string): void {
  ctx.warnings.push({
    path,
    message: content === undefined ? message : `${message}, found ${JSON.stringify(content.slice(0, 40))}`,
  });
}
