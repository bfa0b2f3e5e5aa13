// Gathers what the hardening checks decide on (verify-hardening.ts): libvirt's configuration files,
// the enabled socket units, the kernel's AppArmor, and for each domain its XML and, when it runs, its
// qemu process in /proc. Everything on the machine is read through HostFs, so a tree (--root) reads
// its own files; the domains and /proc are read on the live host only.
import type { HostFs } from "../host/fs.js";
import type { Libvirt } from "../vm/libvirt.js";
import { LibvirtError } from "../vm/libvirt-error.js";
import { parseLibvirtConf } from "./libvirt-conf.js";
import {
  type DomainView,
  type HardeningFacts,
  LIBVIRT_TCP_PORT,
  LIBVIRT_TLS_PORT,
  type QemuProcess,
  SOCKETS_WANTS,
  TCP_SOCKETS,
  TLS_SOCKETS,
} from "./verify-hardening.js";
import { domainFactsOf } from "./verify-hardening-xml.js";

export const LIBVIRT_ETC = "/etc/libvirt";

export interface HardeningReadOptions {
  fs: HostFs;
  live: boolean;
  /** null: no libvirt connection (a tree). */
  libvirt: Libvirt | null;
  /** libvirt's configuration directory (default /etc/libvirt). */
  etc?: string;
  allowList: string[];
}

/** The TLS files libvirtd loads (its compiled-in defaults unless libvirtd.conf names others). */
const TLS_DEFAULTS = {
  ca_file: "/etc/pki/CA/cacert.pem",
  cert_file: "/etc/pki/libvirt/servercert.pem",
  key_file: "/etc/pki/libvirt/private/serverkey.pem",
} as const;

/** Each qemu process by the UUID libvirt passed it (-uuid UUID), read once for all domains. Found
 *  through /proc rather than libvirt's pid file, whose pid is in libvirtd's pid namespace. */
async function qemuByUuid(fs: HostFs): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const entry of (await fs.readDir("/proc")) ?? []) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = (await fs.readText(`/proc/${entry}/comm`))?.trim() ?? "";
    if (!comm.startsWith("qemu")) continue;
    const args = ((await fs.readText(`/proc/${entry}/cmdline`)) ?? "").split("\0");
    const uuid = args[args.indexOf("-uuid") + 1];
    if (args.includes("-uuid") && uuid) out.set(uuid.toLowerCase(), Number(entry));
  }
  return out;
}

async function qemuProcess(fs: HostFs, pid: number): Promise<QemuProcess> {
  const status = (await fs.readText(`/proc/${pid}/status`)) ?? "";
  const seccomp = /^Seccomp:\s*(\d+)/m.exec(status)?.[1];
  // Newer kernels give each LSM its own file; attr/current is the first major LSM's.
  const label =
    (await fs.readText(`/proc/${pid}/attr/apparmor/current`)) ??
    (await fs.readText(`/proc/${pid}/attr/current`));
  return {
    pid,
    seccomp: seccomp === undefined ? null : Number(seccomp),
    label: label === null ? null : label.replace(/\0/g, "").trim(),
  };
}

/** /proc/net/tcp's hex address ("0100007F" or 32 hex digits for tcp6) as text. */
function addressOf(hex: string): string {
  if (hex.length === 8)
    return [3, 2, 1, 0].map((i) => Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16)).join(".");
  // tcp6: four little-endian 32-bit words.
  const words = [0, 1, 2, 3].map(
    (w) =>
      hex
        .slice(w * 8, w * 8 + 8)
        .match(/../g)
        ?.reverse()
        .join("") ?? "",
  );
  const groups = words.join("").match(/.{4}/g) ?? [];
  const text = groups.map((g) => Number.parseInt(g, 16).toString(16)).join(":");
  return text === "0:0:0:0:0:0:0:0" ? "::" : text;
}

/** Sockets in LISTEN (state 0A) on libvirt's ports, from /proc/net/tcp and tcp6. */
export function libvirtListeners(tcp: string): { address: string; port: number }[] {
  const out: { address: string; port: number }[] = [];
  for (const line of tcp.split("\n").slice(1)) {
    const [, local, , state] = line.trim().split(/\s+/);
    if (state !== "0A" || !local) continue;
    const [hex, portHex] = local.split(":");
    const port = Number.parseInt(portHex ?? "", 16);
    if (hex && (port === LIBVIRT_TCP_PORT || port === LIBVIRT_TLS_PORT))
      out.push({ address: addressOf(hex), port });
  }
  return out;
}

async function domainsOf(fs: HostFs, lv: Libvirt): Promise<DomainView[] | string> {
  let listed: Awaited<ReturnType<Libvirt["listDomains"]>>;
  try {
    listed = await lv.listDomains();
  } catch (e) {
    return e instanceof LibvirtError ? `${e.code}: ${e.message}` : (e as Error).message;
  }
  const qemus = await qemuByUuid(fs);
  const out: DomainView[] = [];
  for (const d of listed) {
    let xml: string;
    try {
      // With what libvirt hides unless asked (graphics passwd=): a secret must be seen to be reported.
      xml = await lv.domainXml(d.name, { securityInfo: true });
    } catch {
      continue; // gone between the list and the dump (a transient domain that stopped)
    }
    let facts: ReturnType<typeof domainFactsOf>;
    try {
      facts = domainFactsOf(xml);
    } catch (e) {
      return `domain ${d.name}: ${(e as Error).message}`;
    }
    const running = d.state === "running" || d.state === "paused";
    const pid = running && facts.uuid ? qemus.get(facts.uuid.toLowerCase()) : undefined;
    out.push({ facts, running, qemu: pid === undefined ? null : await qemuProcess(fs, pid) });
  }
  return out;
}

export async function readHardeningFacts(o: HardeningReadOptions): Promise<HardeningFacts> {
  const { fs } = o;
  const etc = o.etc ?? LIBVIRT_ETC;
  const conf = async (file: string) => {
    const text = await fs.readText(`${etc}/${file}`);
    return text === null ? null : parseLibvirtConf(text);
  };
  const libvirtdConf = await conf("libvirtd.conf");
  const sockets: string[] = [];
  // The link is what enables a unit; on a tree its target (/lib/systemd/...) may not be captured.
  for (const unit of [...TCP_SOCKETS, ...TLS_SOCKETS])
    if (
      (await fs.readLink(`${SOCKETS_WANTS}/${unit}`)) !== null ||
      (await fs.exists(`${SOCKETS_WANTS}/${unit}`))
    )
      sockets.push(unit);
  const defaults = (await fs.readText("/etc/default/libvirtd")) ?? "";
  const args = /^\s*LIBVIRTD_ARGS\s*=\s*"?([^"\n]*)/m.exec(defaults)?.[1] ?? "";
  const tlsFiles: HardeningFacts["tlsFiles"] = [];
  for (const [key, fallback] of Object.entries(TLS_DEFAULTS)) {
    const file = libvirtdConf?.get(key)?.value ?? fallback;
    tlsFiles.push({ path: file, exists: await fs.exists(file) });
  }
  return {
    live: o.live,
    etc,
    qemuConf: await conf("qemu.conf"),
    libvirtdConf,
    sockets,
    listenFlag: /(^|\s)(--listen|-l)(\s|$)/.test(args),
    listeners: o.live
      ? [
          ...libvirtListeners((await fs.readText("/proc/net/tcp")) ?? ""),
          ...libvirtListeners((await fs.readText("/proc/net/tcp6")) ?? ""),
        ]
      : [],
    tlsFiles,
    apparmor: o.live && (await fs.exists("/sys/kernel/security/apparmor")),
    domains: o.live && o.libvirt ? await domainsOf(fs, o.libvirt) : "not asked (a tree)",
    allowList: o.allowList,
  };
}
