// What a remote viewer needs to reach a VM's console: the ports libvirt chose (from the running
// domain's XML), and a virt-viewer connection file (.vv, read by remote-viewer) or a URI. Pure.
// The .vv carries the host's CA (public) and, for SPICE, the server certificate's subject to check;
// TLS with the host's PKI is the console's protection (src/plan/console-plan.ts). The one password
// it may carry is a one-time ticket (src/vm/console-ticket.ts), printed for the viewer and kept
// nowhere else.
import { attribute, children, descendants, parseXmlTree } from "../core/xml-tree.js";

export interface GraphicsPorts {
  type: "vnc" | "spice";
  /** The address it listens on (the listen attribute, or its <listen address>). */
  listen: string | null;
  /** The plain port (-1 or absent: none, as for SPICE with every channel secure). */
  port: number | null;
  tlsPort: number | null;
}

const portOf = (v: string | null): number | null => {
  const n = v === null ? Number.NaN : Number(v);
  return Number.isInteger(n) && n > 0 && n < 65536 ? n : null;
};

/** The <graphics> elements of a running domain's XML. */
export function graphicsOf(xml: string): GraphicsPorts[] {
  const out: GraphicsPorts[] = [];
  for (const g of descendants(parseXmlTree(xml), "graphics")) {
    const type = attribute(g, "type");
    if (type !== "vnc" && type !== "spice") continue;
    const inner = children(g, "listen").find((l) => attribute(l, "type") === "address");
    out.push({
      type,
      listen: attribute(g, "listen") ?? attribute(inner, "address"),
      port: portOf(attribute(g, "port")),
      tlsPort: portOf(attribute(g, "tlsPort")),
    });
  }
  return out;
}

export interface ConsoleFile {
  type: "vnc" | "spice";
  title: string;
  host: string;
  port: number | null;
  tlsPort: number | null;
  /** The CA certificates (PEM) the viewer verifies the server with. */
  ca: string | null;
  /** SPICE: the subject the server certificate must carry ("O=kvmstrap,CN=kvm1"). */
  hostSubject: string | null;
  /** A one-time ticket (vm console --ticket). */
  password?: string;
}

/** A host for a URI: IPv6 literals in brackets. */
const uriHost = (h: string) => (h.includes(":") ? `[${h}]` : h);

export function consoleUri(f: ConsoleFile): string {
  // RFC 7869's VncPassword; virt-viewer's spice:// password parameter.
  const pw = f.password ? encodeURIComponent(f.password) : null;
  if (f.type === "vnc") return `vnc://${uriHost(f.host)}:${f.port ?? 5900}${pw ? `?VncPassword=${pw}` : ""}`;
  const q = [
    f.port ? `port=${f.port}` : null,
    f.tlsPort ? `tls-port=${f.tlsPort}` : null,
    pw ? `password=${pw}` : null,
  ].filter(Boolean);
  return `spice://${uriHost(f.host)}${q.length ? `?${q.join("&")}` : ""}`;
}

/** virt-viewer's connection file ([virt-viewer] key file; newlines in the CA as \n). */
export function renderVv(f: ConsoleFile): string {
  const L = ["[virt-viewer]", `type=${f.type}`, `title=${f.title}`, `host=${f.host}`];
  if (f.port) L.push(`port=${f.port}`);
  if (f.tlsPort) L.push(`tls-port=${f.tlsPort}`);
  if (f.ca) L.push(`ca=${f.ca.trimEnd().replace(/\n/g, "\\n")}\\n`);
  if (f.hostSubject) L.push(`host-subject=${f.hostSubject}`);
  if (f.password) L.push(`password=${f.password}`);
  if (f.type === "spice" && f.tlsPort && !f.port) L.push("secure-channels=all");
  L.push("delete-this-file=0", "");
  return L.join("\n");
}
