// What a DHCP request says about the booting client, and what a reply may carry for it. The boot
// policy (which file for which client) lives outside this library: see src/pxe/boot-policy.ts.
import {
  clientArchitectures,
  clientUuid,
  encapsulatedOption,
  macOf,
  Opt,
  type Packet,
  stringOption,
  userClasses,
} from "./packet.js";

export interface BootClient {
  mac: string;
  /** Option 93's first architecture (RFC 4578: 0 BIOS, 7/9 x64 UEFI, 11 ARM64 UEFI, 16 x64 HTTP...). */
  arch: number | undefined;
  uuid: string | undefined;
  vendorClass: string | undefined;
  userClasses: string[];
  /** Option 60 starts with "PXEClient". */
  pxe: boolean;
  /** Option 60 starts with "HTTPClient": UEFI HTTP Boot, which wants a URL and option 60 echoed. */
  httpClient: boolean;
  /** iPXE itself (user class "iPXE" or option 175), which can fetch its script over HTTP. */
  ipxe: boolean;
}

export function describeClient(p: Packet): BootClient {
  const vendorClass = stringOption(p, Opt.VENDOR_CLASS);
  const classes = userClasses(p);
  return {
    mac: macOf(p),
    arch: clientArchitectures(p)[0],
    uuid: clientUuid(p),
    vendorClass,
    userClasses: classes,
    pxe: vendorClass?.startsWith("PXEClient") ?? false,
    httpClient: vendorClass?.startsWith("HTTPClient") ?? false,
    ipxe: classes.includes("iPXE") || encapsulatedOption(p, Opt.IPXE_ENCAP) !== undefined,
  };
}

/** The boot part of a reply, or a reason to stay silent (proxy) / lease without boot info (full). */
export type BootDecision =
  | {
      kind: "boot";
      /** A TFTP path or, for iPXE and HTTP Boot clients, an http:// URL. */
      bootFile: string;
      /** siaddr: the TFTP server; defaults to the responding server's address. */
      nextServer?: string;
      /** Echo option 60 "HTTPClient": UEFI HTTP Boot ignores offers without it. */
      httpClient?: boolean;
    }
  | { kind: "ignore"; reason: string };

/** The seam between the DHCP library and the application (pixiecore's Booter idea). */
export interface Booter {
  decide(client: BootClient): BootDecision | Promise<BootDecision>;
}
