// `kvmstrap vm console NAME --vnc|--spice`: a virt-viewer connection file (or a URI) for a running
// VM's TLS console: the ports from its live XML, the host's CA and, for SPICE, the subject its
// server certificate carries, from the host's PKI (src/host/pki). A VNC client also needs the
// client certificate (vnc_tls_x509_verify): the result names the client set to install.
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { InputError } from "../core/errors.js";
import { clientDir, consoleCertDir, DEFAULT_CLIENT, realPath } from "../host/pki/layout.js";
import { type ConsoleFile, consoleUri, graphicsOf, renderVv } from "../vm/console-file.js";
import { setConsoleTicket } from "../vm/console-ticket.js";
import { libvirtAt, SYSTEM_LIBVIRT } from "./adapters.js";

export interface ConsoleRequest {
  name: string;
  kind: "vnc" | "spice";
  /** libvirt connection (default qemu:///system). */
  connect?: string;
  /** Where the host's PKI is (default "/"). */
  pkiRoot?: string;
  client?: string;
  /** Set a one-time password on the running console, valid this many seconds. */
  ticketTtlSeconds?: number;
}

export interface ConsoleResult {
  file: ConsoleFile;
  vv: string;
  uri: string;
  /** VNC with client verification: the client set (ca-cert, client-cert, client-key) to install. */
  clientDir: string | null;
  warnings: string[];
  /** When the ticket stops being accepted (ISO time). */
  ticketExpiresAt: string | null;
}

const WILDCARD = /^(0+\.0+\.0+\.0+|[0:]*::?[0:]*)$/;

async function readOrNull(file: string): Promise<string | null> {
  return readFile(file, "utf8").catch(() => null);
}

export async function vmConsole(r: ConsoleRequest): Promise<ConsoleResult> {
  const libvirt = libvirtAt(r.connect ?? SYSTEM_LIBVIRT);
  if (!(await libvirt.domainExists(r.name))) throw new InputError(`no VM named "${r.name}"`);
  const graphics = graphicsOf(await libvirt.domainXml(r.name)).find((g) => g.type === r.kind);
  if (!graphics)
    throw new InputError(
      `${r.name} has no ${r.kind.toUpperCase()} console: the answer's consoles: section adds one (vnc: true or spice: true)`,
    );
  if (!graphics.port && !graphics.tlsPort)
    throw new InputError(
      `${r.name} is not running: its ${r.kind.toUpperCase()} ports are chosen when it starts`,
    );
  const warnings: string[] = [];
  if (!graphics.listen || WILDCARD.test(graphics.listen))
    warnings.push(
      `${r.name}'s ${r.kind.toUpperCase()} console listens on ${graphics.listen ?? "libvirt's default address"}, not on the management address`,
    );
  const root = r.pkiRoot ?? "/";
  const dir = consoleCertDir(r.kind);
  const ca = await readOrNull(realPath(root, `${dir}/ca-cert.pem`));
  const serverPem = await readOrNull(realPath(root, `${dir}/server-cert.pem`));
  if (!ca) warnings.push(`no CA at ${dir}/ca-cert.pem: run kvmstrap pki init`);
  let hostSubject: string | null = null;
  if (r.kind === "spice" && serverPem) {
    try {
      hostSubject = new X509Certificate(serverPem).subject.split("\n").join(",");
    } catch {
      warnings.push(`${dir}/server-cert.pem is not a certificate: run kvmstrap pki init`);
    }
  }
  const file: ConsoleFile = {
    type: r.kind,
    title: r.name,
    host: graphics.listen && !WILDCARD.test(graphics.listen) ? graphics.listen : "127.0.0.1",
    port: graphics.port,
    tlsPort: r.kind === "spice" ? graphics.tlsPort : null,
    ca,
    hostSubject,
  };
  // Last, once everything else is known good: the ticket's clock starts when it is set.
  const ticket =
    r.ticketTtlSeconds === undefined
      ? null
      : await setConsoleTicket(libvirt, r.name, r.kind, r.ticketTtlSeconds);
  if (ticket) file.password = ticket.password;
  const client = clientDir(r.client ?? DEFAULT_CLIENT);
  return {
    file,
    vv: renderVv(file),
    uri: consoleUri(file),
    clientDir: r.kind === "vnc" ? path.posix.normalize(client) : null,
    warnings,
    ticketExpiresAt: ticket?.expiresAt ?? null,
  };
}
