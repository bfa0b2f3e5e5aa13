// Creates SR-IOV VFs at boot and sets their MAC, VLAN, trust and spoof checking. A PF is addressed by
// PCI address and its netdev name is re-checked under that address; a mismatch is refused.
// sriov_numvfs only changes through 0 (the kernel refuses N -> M directly), and only when it differs.
// SYSFS_ROOT (default /sys) and KMSG let tests run it against a fixture tree.

import { INTERFACE_NAME as IFNAME, MAC, SYSFS_PCI_ADDRESS as PCI_ADDRESS } from "../../core/grammar.js";

export const SRIOV_SCRIPT_PATH = "/usr/local/lib/kvmstrap/sriov-setup";
export const SRIOV_UNIT_PATH = "/etc/systemd/system/kvmstrap-sriov.service";

export type SriovPf = {
  pfName: string;
  pciAddress: string;
  numVfs: number;
  vfs: { index: number; mac?: string; vlan?: number; trust?: boolean; spoofchk?: boolean }[];
};

function pfLines(pf: SriovPf): string[] {
  const where = `sriov: PF ${pf.pfName}`;
  if (!IFNAME.test(pf.pfName) || !PCI_ADDRESS.test(pf.pciAddress))
    throw new Error(`${where}: bad name or address`);
  if (!Number.isInteger(pf.numVfs) || pf.numVfs < 0) throw new Error(`${where}: bad VF count`);
  const lines = [`if pf ${pf.pfName} ${pf.pciAddress} ${pf.numVfs}; then`];
  for (const vf of pf.vfs) {
    if (!Number.isInteger(vf.index) || vf.index < 0 || vf.index >= pf.numVfs)
      throw new Error(`${where}: bad VF ${vf.index}`);
    const args: string[] = [];
    if (vf.mac !== undefined) {
      if (!MAC.test(vf.mac.toLowerCase())) throw new Error(`${where}: bad MAC ${vf.mac}`);
      args.push("mac", vf.mac.toLowerCase());
    }
    if (vf.vlan !== undefined) {
      if (!Number.isInteger(vf.vlan) || vf.vlan < 0 || vf.vlan > 4094) throw new Error(`${where}: bad VLAN`);
      args.push("vlan", String(vf.vlan));
    }
    if (vf.trust !== undefined) args.push("trust", vf.trust ? "on" : "off");
    if (vf.spoofchk !== undefined) args.push("spoofchk", vf.spoofchk ? "on" : "off");
    if (args.length) lines.push(`  vf ${pf.pfName} ${vf.index} ${args.join(" ")}`);
  }
  lines.push("fi");
  return lines;
}

export function renderSriovScript(pfs: SriovPf[]): string {
  const body = pfs.flatMap(pfLines).join("\n");
  return `#!/bin/sh
# Managed by kvmstrap: creates SR-IOV VFs and configures them.
set -u
SYS="\${SYSFS_ROOT:-/sys}"
KMSG="\${KMSG:-/dev/kmsg}"
status=0

log() {
  echo "kvmstrap-sriov: $*" >&2
  { [ -w "$KMSG" ] && echo "kvmstrap-sriov: $*" >"$KMSG"; } 2>/dev/null || :
}

pf() {
  name=$1 addr=$2 want=$3
  dev="$SYS/bus/pci/devices/$addr"
  if [ ! -e "$dev/net/$name" ]; then
    log "REFUSED $addr: no netdev $name there; left untouched"; status=1; return 1
  fi
  current=$(cat "$dev/sriov_numvfs") || { status=1; return 1; }
  [ "$current" = "$want" ] && return 0
  if [ "$current" != 0 ]; then echo 0 >"$dev/sriov_numvfs" || { log "$name: cannot reset VFs"; status=1; return 1; }; fi
  echo "$want" >"$dev/sriov_numvfs" || { log "$name: cannot create $want VFs"; status=1; return 1; }
  log "$name: $want VFs"
}

vf() {
  name=$1 index=$2; shift 2
  ip link set dev "$name" vf "$index" "$@" || { log "$name vf $index: ip link set failed"; status=1; }
}

${body}
exit $status
`;
}

export function renderSriovUnit(): string {
  return `# Managed by kvmstrap: edits are overwritten.
[Unit]
Description=kvmstrap: create and configure SR-IOV virtual functions
After=systemd-modules-load.service systemd-udevd.service
Before=network-pre.target libvirtd.service virtqemud.service
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${SRIOV_SCRIPT_PATH}

[Install]
WantedBy=multi-user.target
`;
}
