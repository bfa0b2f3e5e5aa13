// The iPXE scripts the server hands out. iPXE does not expand settings in a boot file name it got from
// DHCP, so DHCP hands every iPXE the generic /boot.ipxe, which chains to the node's own script with
// its MAC, SMBIOS UUID, serial and asset tag (URI-encoded) so nodes are found by any of them.
// Downloads are retried: one try is not enough on a busy or lossy provisioning network (netboot.xyz
// #918, #1254), and a failed boot exits to the firmware, which tries its next boot option.
import { AUTO_INSTALL, CMDLINE, DISCOVER_MODE, NODE_PATHS } from "../app/node-protocol.js";
import type { Netboot } from "./netboot.js";

export const DOWNLOAD_TRIES = 5;
export const RETRY_SECONDS = 5;

/** Set by the local-boot script, so the generic script knows its non-zero exit was meant. */
const LOCAL_BOOT_SETTING = "kvmstrap-local-boot";

/** The script DHCP points iPXE at. `base` is the server's URL (no trailing slash). */
export function genericScript(base: string): string {
  return `#!ipxe
# kvmstrap: find this node's own script by MAC, SMBIOS UUID, serial or asset tag
chain ${base}/boot/\${mac:hexhyp}.ipxe?uuid=\${uuid}&serial=\${serial:uristring}&asset=\${asset:uristring} || goto failed
exit 1
:failed
isset \${${LOCAL_BOOT_SETTING}} && exit 1 ||
echo kvmstrap: could not fetch this node's boot script from ${base}; see the server's log
sleep ${RETRY_SECONDS * 2} ||
exit 1
`;
}

export interface NodeScriptOptions {
  /** The server's URL as the node reaches it, e.g. http://10.0.0.1:8080. */
  base: string;
  /** Lower case, colon-separated. */
  mac: string;
  name?: string | undefined;
  netboot: Netboot;
  token: string;
  /** kvmstrap.auto=install: the node is configured for an unattended install. */
  auto: boolean;
  /** The node has an answer file: kvmstrap.answer points at it (a node without one gets no URL to 404 on). */
  answer: boolean;
  /** kvmstrap.mode=discover: a node the fleet does not know; it reports and waits for approval. */
  discover?: boolean;
}

/** The kernel command line for a node: the manifest's, plus what the appliance needs to find us. */
export function nodeCmdline(o: NodeScriptOptions): string {
  const netbootUrl = `${o.base}/netboot`;
  const squashfs = o.netboot.files.get("filesystem.squashfs");
  const params = [
    "initrd=initrd.img",
    o.netboot.manifest.cmdline.replaceAll("@BASE@", netbootUrl),
    `${CMDLINE.server}=${o.base}`,
    `${CMDLINE.node}=${o.mac}`,
    `${CMDLINE.token}=${o.token}`,
    ...(o.answer ? [`${CMDLINE.answer}=${o.base}${NODE_PATHS.answer(o.mac)}`] : []),
    ...(squashfs ? [`${CMDLINE.fetchSha256}=${squashfs.sha256}`] : []),
    ...(o.auto ? [`${CMDLINE.auto}=${AUTO_INSTALL}`] : []),
    ...(o.discover ? [`${CMDLINE.mode}=${DISCOVER_MODE}`] : []),
  ];
  // The manifest names fetch= itself; a netboot set without it still gets one.
  if (!/(^|\s)fetch=/.test(o.netboot.manifest.cmdline))
    params.push(`fetch=${netbootUrl}/filesystem.squashfs`);
  return params.join(" ");
}

/** A download with retries: `cmd URL args`, then on to `next`. */
function retried(label: string, next: string, what: string, line: string): string {
  return `:${label}
set attempt:int32 0
:${label}_try
${line} && goto ${next} ||
inc attempt
iseq \${attempt} ${DOWNLOAD_TRIES} && goto failed ||
echo kvmstrap: ${what} download failed (try \${attempt} of ${DOWNLOAD_TRIES}), again in ${RETRY_SECONDS} s
sleep ${RETRY_SECONDS} ||
goto ${label}_try
`;
}

/** The per-node script: the appliance's kernel and initrd with the node's command line. */
export function nodeScript(o: NodeScriptOptions): string {
  const node = `?node=${encodeURIComponent(o.mac)}`;
  const who = `${o.mac}${o.name ? ` (${o.name})` : ""}`;
  const mode = o.discover
    ? "discovery (reports, then waits for the operator's approval)"
    : o.auto
      ? "unattended install"
      : "interactive (the appliance asks before it installs)";
  return `#!ipxe
# kvmstrap ${o.netboot.manifest.version}: node ${who}, ${mode}
echo kvmstrap: booting the appliance for ${who} from ${o.base}
${retried("kernel", "initrd", "kernel", `kernel ${o.base}/netboot/vmlinuz${node} ${nodeCmdline(o)}`)}${retried("initrd", "boot", "initrd", `initrd ${o.base}/netboot/initrd.img${node}`)}:boot
boot ||
:failed
echo kvmstrap: could not boot ${who} from ${o.base}; see the server's timeline for this node
sleep ${RETRY_SECONDS * 2} ||
exit 1
`;
}

/** The netboot set's UEFI loader for installed disks (iso-build/grub-local.cfg). */
export const UEFI_LOCAL_LOADER = "grub-local.efi";

/**
 * Boot once: an installed node is sent on to its local disk until the operator re-arms it. It
 * exits with a failure on purpose: UEFI's boot manager (EDK2's BdsDxe) goes on to the next boot
 * option only when one fails; a success (plain `exit`) ends the boot loop in the firmware's menu,
 * where the node then sits (seen under OVMF; Tinkerbell and netboot.xyz met it on real servers).
 * A BIOS ignores the status and tries its next device either way. Under UEFI, EDK2 with the network
 * first comes back to PXE after that exit (a loop), and iPXE cannot boot a local disk there: with
 * `uefiLoader` (the netboot set's grub-local.efi) a UEFI node chains GRUB, which finds the installed
 * ESP and chainloads its loader, as MAAS does; if that fails it exits as before.
 */
export function localBootScript(mac: string, uefiLoader?: string): string {
  const uefi = uefiLoader
    ? `iseq \${platform} efi && chain --autofree ${uefiLoader}?node=${encodeURIComponent(mac)} ||
`
    : "";
  return `#!ipxe
# kvmstrap: ${mac} is installed; it boots from its local disk (re-arm: kvmstrap serve rearm ${mac})
echo kvmstrap: ${mac} is installed, booting from the local disk
set ${LOCAL_BOOT_SETTING} 1
${uefi}exit 1
`;
}
