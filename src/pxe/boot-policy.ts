// Which boot file a client gets: the kvmstrap policy on top of the DHCP library's Booter seam.
//  - iPXE (user class "iPXE" or option 175) gets the HTTP URL of its per-node script: it has its
//    own HTTP stack, so nothing past this stage needs TFTP;
//  - UEFI HTTP Boot (option 60 "HTTPClient") gets an http:// URL to an iPXE EFI binary, with
//    option 60 echoed;
//  - PXE ROMs get an iPXE binary over TFTP chosen by option 93 (RFC 4578 / IANA processor
//    architecture types);
//  - anything else is ignored (by a ProxyDHCP; a full DHCP still leases it an address).
import type { BootClient, BootDecision, Booter } from "./dhcp4/client.js";

/** IANA "Processor Architecture Types" used by PXE and HTTP Boot clients. */
export const Arch = {
  X86_BIOS: 0,
  X86_UEFI: 6,
  X64_UEFI: 7,
  /** Officially EBC, but old x64 UEFI firmware sends 9 for itself. */
  EBC: 9,
  ARM64_UEFI: 11,
  X86_UEFI_HTTP: 15,
  X64_UEFI_HTTP: 16,
  ARM64_UEFI_HTTP: 19,
} as const;

export interface BootFiles {
  bios: string;
  x64Efi: string;
  arm64Efi: string;
  x86Efi: string;
}

/** Debian's ipxe package names (undionly.kpxe, ipxe.efi, snponly.efi); arm64 from ipxe's build. */
export const DEFAULT_BOOT_FILES: BootFiles = {
  bios: "undionly.kpxe",
  x64Efi: "ipxe.efi",
  arm64Efi: "ipxe-arm64.efi",
  x86Efi: "ipxe-i386.efi",
};

export interface BootPolicyOptions {
  /** Base of the HTTP server, e.g. "http://10.0.0.1:8080". */
  httpBase: string;
  files?: Partial<BootFiles>;
  /** The iPXE script path for a client; defaults to /boot/<mac>.ipxe. */
  scriptPath?: (client: BootClient) => string;
  /** A per-node veto: return a reason to leave the client alone (not in inventory, boot local). */
  skip?: (client: BootClient) => string | undefined;
}

type Family = "bios" | "x64Efi" | "arm64Efi" | "x86Efi";

export function archFamily(arch: number | undefined): Family | undefined {
  switch (arch) {
    case Arch.X86_BIOS:
      return "bios";
    case Arch.X64_UEFI:
    case Arch.EBC:
    case Arch.X64_UEFI_HTTP:
      return "x64Efi";
    case Arch.ARM64_UEFI:
    case Arch.ARM64_UEFI_HTTP:
      return "arm64Efi";
    case Arch.X86_UEFI:
    case Arch.X86_UEFI_HTTP:
      return "x86Efi";
    default:
      return undefined;
  }
}

export function decideBoot(opts: BootPolicyOptions, client: BootClient): BootDecision {
  const veto = opts.skip?.(client);
  if (veto) return { kind: "ignore", reason: veto };
  const base = opts.httpBase.replace(/\/+$/, "");
  const files = { ...DEFAULT_BOOT_FILES, ...opts.files };
  if (client.ipxe) {
    const script = opts.scriptPath?.(client) ?? `/boot/${client.mac.replaceAll(":", "-")}.ipxe`;
    return { kind: "boot", bootFile: `${base}${script}`, httpClient: client.httpClient };
  }
  // A client without option 93 is a pre-RFC-4578 BIOS ROM.
  const family = client.arch === undefined ? "bios" : archFamily(client.arch);
  if (client.httpClient) {
    if (!family || family === "bios")
      return { kind: "ignore", reason: `HTTP Boot client with architecture ${client.arch}` };
    return { kind: "boot", bootFile: `${base}/ipxe/${files[family]}`, httpClient: true };
  }
  if (!client.pxe) return { kind: "ignore", reason: "not a PXE, HTTP Boot or iPXE client" };
  if (!family) return { kind: "ignore", reason: `no boot file for client architecture ${client.arch}` };
  return { kind: "boot", bootFile: files[family] };
}

export function bootPolicy(opts: BootPolicyOptions): Booter {
  return { decide: (client) => decideBoot(opts, client) };
}
