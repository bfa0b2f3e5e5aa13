// The boot fields both responders put in a reply, decided once.
import type { BootClient, BootDecision } from "./client.js";
import { encodeEncapsulated, Opt, type Packet } from "./packet.js";

/** PXE sub-option 6 (discovery control) bit 3: a boot file is named here, download it, no menu. */
export const PXE_DISCOVERY_CONTROL = 6;
const DOWNLOAD_BOOT_FILE = 0x08;

/**
 * Fills file/siaddr/options for a boot decision. `serverIp` is the responder's address (the TFTP
 * server unless the decision names another). PXE clients get option 60 "PXEClient" and option 43
 * so they take the file without a boot-server discovery round; HTTP Boot clients get option 60
 * "HTTPClient" echoed; the client's UUID (97) is echoed, as the PXE spec asks and EDK2 checks.
 */
export function applyBoot(
  reply: Packet,
  req: Packet,
  client: BootClient,
  decision: BootDecision & { kind: "boot" },
  serverIp: string,
): void {
  reply.siaddr = decision.nextServer ?? serverIp;
  const file = Buffer.from(decision.bootFile, "latin1");
  // The file field holds 127 bytes plus its NUL; longer names (URLs) go in option 67 only.
  if (file.length <= 127) reply.file = decision.bootFile;
  if (file.length > 127 || client.ipxe || decision.httpClient) reply.options.set(Opt.BOOTFILE_NAME, file);
  if (decision.httpClient) {
    reply.options.set(Opt.VENDOR_CLASS, Buffer.from("HTTPClient"));
  } else if (client.pxe) {
    reply.options.set(Opt.VENDOR_CLASS, Buffer.from("PXEClient"));
    reply.options.set(
      Opt.VENDOR_SPECIFIC,
      encodeEncapsulated([[PXE_DISCOVERY_CONTROL, Buffer.from([DOWNLOAD_BOOT_FILE])]]),
    );
  }
  const uuid = req.options.get(Opt.CLIENT_UUID);
  if (uuid) reply.options.set(Opt.CLIENT_UUID, Buffer.from(uuid));
}
