// `kvmstrap pki init|rotate|status`: the host's PKI (src/host/pki) for a machine root, with the
// host's identity filled in where the operator did not give it: the name from <root>/etc/hostname
// (or this host's), the addresses of the interface carrying the default route when the root is this
// host (the management address clients connect to). The hardening checks and the console plan read
// the same layout (src/host/pki/layout.ts).
import { readFile } from "node:fs/promises";
import { networkInterfaces, hostname as osHostname } from "node:os";
import path from "node:path";
import { readDefaultRoute } from "../detect/nic.js";
import { RootedHostFs } from "../host/fs.js";
import {
  type HostIdentity,
  initPki,
  type PkiResult,
  type PkiStatus,
  pkiStatus,
  rotatePki,
} from "../host/pki/pki.js";
import { adaptersFor } from "./adapters.js";

export interface PkiRequest {
  root?: string;
  hostname?: string;
  dnsNames?: string[];
  addresses?: string[];
  client?: string;
  caDays?: number;
  serverDays?: number;
  clientDays?: number;
}

/** The addresses of the management interface (the default route's), link-local ones left out. */
export async function managementAddresses(): Promise<string[]> {
  // The management interface as detect decides it (lowest metric, IPv6 when IPv4 has no default).
  const iface = (await readDefaultRoute({ fs: new RootedHostFs("/"), warnings: [] }))?.iface;
  if (!iface) return [];
  return (networkInterfaces()[iface] ?? [])
    .filter((a) => !a.internal && !(a.family === "IPv6" && a.address.toLowerCase().startsWith("fe80")))
    .map((a) => a.address);
}

async function identityOf(r: PkiRequest, root: string): Promise<HostIdentity> {
  const live = root === "/";
  const fromFile = (await readFile(path.join(root, "etc/hostname"), "utf8").catch(() => "")).trim();
  const hostname = r.hostname ?? (fromFile || (live ? osHostname() : ""));
  const short = hostname.split(".")[0] ?? hostname;
  const dnsNames = [...new Set([...(short !== hostname ? [hostname] : []), ...(r.dnsNames ?? [])])];
  const addresses = r.addresses?.length ? r.addresses : live ? await managementAddresses() : [];
  return { hostname: short || "localhost", dnsNames, addresses };
}

/**
 * The user qemu runs as under this root (qemu.conf's user, else Debian's libvirt-qemu when it
 * exists), who must be able to open the VNC and SPICE server keys; none when qemu runs as root.
 */
export async function qemuKeyOwner(root: string): Promise<{ uid: number; gid: number } | undefined> {
  const read = (p: string) => readFile(path.join(root, p), "utf8").catch(() => "");
  const conf = await read("etc/libvirt/qemu.conf");
  const user = /^\s*user\s*=\s*"([^"]+)"/m.exec(conf)?.[1] ?? "libvirt-qemu";
  if (user === "root" || user === "+0") return undefined;
  for (const line of (await read("etc/passwd")).split("\n")) {
    const [name, , uid, gid] = line.split(":");
    if (name === user && uid && gid) return { uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

async function optionsOf(r: PkiRequest, root: string) {
  const owner = await qemuKeyOwner(root);
  return {
    ...(owner ? { consoleKeyOwner: owner } : {}),
    runner: adaptersFor("/").runner, // certtool runs here; the files go under root
    root,
    ...(r.client ? { client: r.client } : {}),
    ...(r.caDays ? { caDays: r.caDays } : {}),
    ...(r.serverDays ? { serverDays: r.serverDays } : {}),
    ...(r.clientDays ? { clientDays: r.clientDays } : {}),
  };
}

export async function pkiInit(r: PkiRequest): Promise<PkiResult> {
  const root = path.resolve(r.root ?? "/");
  return initPki(await identityOf(r, root), await optionsOf(r, root));
}

export async function pkiRotate(r: PkiRequest & { ca?: boolean }): Promise<PkiResult> {
  const root = path.resolve(r.root ?? "/");
  return rotatePki(await identityOf(r, root), { ...(await optionsOf(r, root)), ca: Boolean(r.ca) });
}

export async function pkiShow(r: Pick<PkiRequest, "root" | "client">): Promise<PkiStatus> {
  return pkiStatus({ root: path.resolve(r.root ?? "/"), ...(r.client ? { client: r.client } : {}) });
}
