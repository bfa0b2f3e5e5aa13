// Binds passthrough devices to vfio-pci by PCI address at boot, through driver_override, never
// vfio-pci.ids= (which grabs every identical device). Before touching a device the script re-checks the
// vendor:device at that address: after a hardware change the address may hold something else, and
// that device is refused (logged to stderr and the kernel log, left alone, exit status 1).
// SYSFS_ROOT (default /sys) and KMSG (default /dev/kmsg) let tests run it against a fixture tree.

import { SYSFS_PCI_ADDRESS as PCI_ADDRESS, PCI_ID } from "../../core/grammar.js";

export const VFIO_BIND_SCRIPT_PATH = "/usr/local/lib/kvmstrap/vfio-bind";
export const VFIO_BIND_UNIT_PATH = "/etc/systemd/system/kvmstrap-vfio-bind.service";

export type VfioDevice = { address: string; vendorId: string; deviceId: string };

function checked(d: VfioDevice): VfioDevice {
  const address = d.address.toLowerCase();
  const vendorId = d.vendorId.toLowerCase().replace(/^0x/, "");
  const deviceId = d.deviceId.toLowerCase().replace(/^0x/, "");
  if (!PCI_ADDRESS.test(address))
    throw new Error(`vfio: ${d.address} is not a full PCI address (0000:01:00.0)`);
  if (!PCI_ID.test(vendorId) || !PCI_ID.test(deviceId)) throw new Error(`vfio: bad ids for ${d.address}`);
  return { address, vendorId, deviceId };
}

export function renderVfioBindScript(devices: VfioDevice[]): string {
  const calls = devices.map(checked).map((d) => `bind ${d.address} 0x${d.vendorId} 0x${d.deviceId}\n`);
  return `#!/bin/sh
# Managed by kvmstrap: binds PCI functions to vfio-pci by address, re-checking vendor:device first.
set -u
SYS="\${SYSFS_ROOT:-/sys}"
KMSG="\${KMSG:-/dev/kmsg}"
status=0

log() {
  echo "kvmstrap-vfio-bind: $*" >&2
  { [ -w "$KMSG" ] && echo "kvmstrap-vfio-bind: $*" >"$KMSG"; } 2>/dev/null || :
}

bind() {
  addr=$1 want_vendor=$2 want_device=$3
  dev="$SYS/bus/pci/devices/$addr"
  if [ ! -e "$dev/vendor" ]; then
    log "REFUSED $addr: no such PCI device"; status=1; return
  fi
  vendor=$(cat "$dev/vendor") device=$(cat "$dev/device")
  if [ "$vendor" != "$want_vendor" ] || [ "$device" != "$want_device" ]; then
    log "REFUSED $addr: found $vendor:$device, expected $want_vendor:$want_device; left untouched"
    status=1; return
  fi
  echo vfio-pci >"$dev/driver_override" || { log "$addr: cannot set driver_override"; status=1; return; }
  if [ -e "$dev/driver" ]; then
    current=$(basename "$(readlink "$dev/driver")")
    if [ "$current" = vfio-pci ]; then log "$addr: already on vfio-pci"; return; fi
    echo "$addr" >"$dev/driver/unbind" || { log "$addr: cannot unbind from $current"; status=1; return; }
  fi
  echo "$addr" >"$SYS/bus/pci/drivers_probe" || { log "$addr: probe failed"; status=1; return; }
  log "$addr ($vendor:$device) bound to vfio-pci"
}

[ -d "$SYS/bus/pci/drivers/vfio-pci" ] || modprobe vfio-pci || log "cannot load vfio-pci"
${calls.join("")}exit $status
`;
}

export function renderVfioBindUnit(): string {
  return `# Managed by kvmstrap: edits are overwritten.
[Unit]
Description=kvmstrap: bind passthrough devices to vfio-pci by PCI address
DefaultDependencies=no
After=systemd-modules-load.service local-fs.target
Before=network-pre.target libvirtd.service virtqemud.service sysinit.target shutdown.target
Wants=network-pre.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${VFIO_BIND_SCRIPT_PATH}

[Install]
WantedBy=sysinit.target
`;
}
