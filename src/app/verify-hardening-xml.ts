// What the hardening checks of `kvmstrap verify` need from one libvirt domain XML (virsh dumpxml
// --security-info: the live XML of a running domain, the persistent one otherwise): its sVirt label,
// its <hostdev> devices, its graphics listeners and any secret written into it. Pure. Parsed with
// fast-xml-parser rather than regular expressions: libvirt may order attributes and nest <listen>,
// <auth> and <source> as it likes, and a secret's attribute must not hide from a pattern.
import { attribute, children, parseXmlTree, textOf, type XmlNode } from "../core/xml-tree.js";
import { MAX_TTL_SECONDS } from "../vm/console-ticket.js";

type Node = XmlNode;

/** A domain XML larger than this is refused (virsh's own output; a real domain is a few KiB). */
export const DOMAIN_XML_MAX = 1024 * 1024;

export interface SecLabel {
  type: string | null;
  model: string | null;
  label: string | null;
}

export interface HostdevFact {
  /** "pci", "usb", "scsi", "mdev"... */
  type: string;
  /** 0000:02:00.0 for a PCI device; the vendor:product or id of others; null if none given. */
  address: string | null;
}

export interface ListenFact {
  /** "address", "network", "socket", "none". */
  type: string;
  /** The address, or null where the qemu.conf default applies (vnc_listen, spice_listen). */
  address: string | null;
}

export interface GraphicsFact {
  type: string;
  listens: ListenFact[];
  /** SPICE's defaultMode ("secure": no plain channel), null when not set. */
  defaultMode: string | null;
  hasPasswd: boolean;
}

export interface DomainFacts {
  name: string;
  uuid: string | null;
  seclabels: SecLabel[];
  hostdevs: HostdevFact[];
  graphics: GraphicsFact[];
  /** Where a secret is written into the XML (never its value). */
  inlineSecrets: string[];
}

const attr = attribute;
const kids = children;
const text = textOf;
const childText = (n: Node | undefined, key: string): string | null => text(kids(n, key)[0]);

const hex = (v: string | null, width: number): string | null => {
  if (v === null) return null;
  const n = Number.parseInt(v, v.startsWith("0x") ? 16 : 10);
  return Number.isInteger(n) && n >= 0 ? n.toString(16).padStart(width, "0") : null;
};

/** A <source><address domain= bus= slot= function=/> as 0000:02:00.0 (the form lspci and sysfs use). */
export function pciAddressOf(a: Node | undefined): string | null {
  const [d, b, s, f] = [
    hex(attr(a, "domain") ?? "0", 4),
    hex(attr(a, "bus"), 2),
    hex(attr(a, "slot"), 2),
    hex(attr(a, "function"), 1),
  ];
  return d && b && s && f ? `${d}:${b}:${s}.${f}` : null;
}

function hostdevOf(h: Node): HostdevFact {
  const type = attr(h, "type") ?? "unknown";
  const source = kids(h, "source")[0];
  if (type === "pci") return { type, address: pciAddressOf(kids(source, "address")[0]) };
  const vendor = attr(kids(source, "vendor")[0], "id");
  const product = attr(kids(source, "product")[0], "id");
  if (vendor || product) return { type, address: `${vendor ?? "?"}:${product ?? "?"}` };
  const address = kids(source, "address")[0];
  const uuid = attr(address, "uuid");
  if (uuid) return { type, address: uuid };
  const bus = attr(address, "bus");
  const device = attr(address, "device");
  return { type, address: bus || device ? `bus ${bus ?? "?"} device ${device ?? "?"}` : null };
}

function graphicsOf(g: Node): GraphicsFact {
  const type = attr(g, "type") ?? "unknown";
  const listens: ListenFact[] = kids(g, "listen").map((l) => ({
    type: attr(l, "type") ?? "address",
    address: attr(l, "address"),
  }));
  // The legacy listen attribute stands for one <listen type='address'> (libvirt writes both).
  const legacy = attr(g, "listen");
  if (listens.length === 0) {
    const socket = attr(g, "socket");
    listens.push(socket ? { type: "socket", address: null } : { type: "address", address: legacy });
  }
  return { type, listens, defaultMode: attr(g, "defaultMode"), hasPasswd: attr(g, "passwd") !== null };
}

/** Secret-bearing keys inside option strings: rbd's key=, curl's password=, qemu's secret=... */
const SECRET_KEY = /(?:^|[\s:,;?&])(key|password|passwd|secret|pass)=(?!$)/i;

function diskSecrets(disk: Node, where: string): string[] {
  const out: string[] = [];
  const source = kids(disk, "source")[0];
  for (const key of ["name", "query", "file", "dev"]) {
    const v = attr(source, key);
    if (v && SECRET_KEY.test(v)) out.push(`${where}: <source ${key}=...> holds ${SECRET_KEY.exec(v)?.[1]}=`);
  }
  if (kids(source, "cookies").length) out.push(`${where}: <source><cookies> holds cookie values`);
  for (const auth of [...kids(disk, "auth"), ...kids(source, "auth")]) {
    const secret = kids(auth, "secret")[0];
    const ref = attr(secret, "usage") ?? attr(secret, "uuid");
    const extra = Object.keys(auth).filter(
      (k) => /pass|key|secret/i.test(k.replace(/^@/, "")) && k !== "secret",
    );
    if (!ref) out.push(`${where}: <auth> without a <secret usage=|uuid=> reference`);
    if (extra.length) out.push(`${where}: <auth> holds ${extra.map((k) => k.replace(/^@/, "")).join(", ")}`);
    if (text(secret)) out.push(`${where}: <auth><secret> holds a value`);
  }
  return out;
}

/**
 * Whether a <graphics> passwd= is a password kept in the domain. Not the tickets lock (an empty
 * password, expired) and not a one-time ticket (`vm console --ticket`: set on the running domain
 * only, valid at most MAX_TTL_SECONDS from when it was set; once expired it opens nothing).
 */
function storedPassword(g: Node, now: number): boolean {
  const pw = attr(g, "passwd");
  if (pw === null || pw === "") return false;
  const until = Date.parse(`${attr(g, "passwdValidTo") ?? ""}Z`);
  return !(Number.isFinite(until) && until <= now + MAX_TTL_SECONDS * 1000);
}

/** Parses one domain XML; throws on XML that is not a domain. `now` judges console tickets. */
export function domainFactsOf(xml: string, now: number = Date.now()): DomainFacts {
  if (xml.length > DOMAIN_XML_MAX)
    throw new Error(`domain XML of ${xml.length} bytes (limit ${DOMAIN_XML_MAX})`);
  const doc = parseXmlTree(xml);
  const dom = kids(doc, "domain")[0];
  if (!dom) throw new Error("not a libvirt domain XML (no <domain>)");
  const name = childText(dom, "name") ?? "(unnamed)";
  const devices = kids(dom, "devices")[0];
  const inlineSecrets: string[] = [];
  for (const [i, g] of kids(devices, "graphics").entries())
    if (storedPassword(g, now)) inlineSecrets.push(`<graphics type='${attr(g, "type")}'> #${i + 1}: passwd=`);
  for (const d of kids(devices, "disk")) {
    const target = attr(kids(d, "target")[0], "dev") ?? "?";
    inlineSecrets.push(...diskSecrets(d, `disk ${target}`));
  }
  // qemu:commandline passthrough arguments bypass libvirt's secret handling entirely.
  for (const cl of kids(dom, "qemu:commandline"))
    for (const a of kids(cl, "qemu:arg")) {
      const v = attr(a, "value");
      if (v && SECRET_KEY.test(v))
        inlineSecrets.push(`<qemu:commandline> argument holds ${SECRET_KEY.exec(v)?.[1]}=`);
    }
  return {
    name,
    uuid: childText(dom, "uuid"),
    seclabels: kids(dom, "seclabel").map((s) => ({
      type: attr(s, "type"),
      model: attr(s, "model"),
      label: childText(s, "label"),
    })),
    hostdevs: kids(devices, "hostdev").map(hostdevOf),
    graphics: kids(devices, "graphics").map(graphicsOf),
    inlineSecrets,
  };
}
