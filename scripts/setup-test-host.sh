#!/usr/bin/env bash
# Installs what kvmstrap's tests need on a fresh Debian 12 machine (run as root): Debian packages,
# the npm dependencies, and a stock Debian cloud kernel that the functional KVM probe boots.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt_packages=(
  qemu-system-x86 qemu-utils seabios ipxe-qemu # the KVM probe and, later, guests
  pci.ids                                      # PCI vendor/device names
  binutils                                     # re-assembles the probe boot sector in its test
  iproute2 tmux curl ca-certificates
  netplan.io ifupdown2 kmod systemd            # renderer tests: netplan generate, ifquery/ifup -s, modprobe -C, systemd-analyze
  libvirt-clients libxml2-utils                # virt-xml-validate (needs xmllint) for pool/network XML
  network-manager                              # nmcli --offline verifies keyfiles (daemon kept from starting)
  libvirt-daemon-system dnsmasq-base iptables  # the e2e tier's private libvirtd (test/e2e/libvirtd.ts)
  mmdebstrap e2fsprogs ovmf                    # the e2e guest image (mmdebstrap, mke2fs -d); UEFI firmware
  cloud-init xorriso genisoimage               # cloud-init schema for seeds; xorriso/isoinfo read seed ISOs back
  virtinst                                     # npm run bench:vm compares against virt-install --import --cloud-init
  tcpdump gcc libc6-dev                        # DHCP firmware captures; cc builds the SO_BINDTODEVICE addon
  tftp-hpa atftp tftpd-hpa                     # TFTP clients for test/pxe/tftp; in.tftpd run in the foreground by bench:pxe
  squashfs-tools grub-pc-bin grub-efi-amd64-bin mtools dosfstools # npm run image (with mmdebstrap, xorriso, ovmf)
  ipxe                                         # kvmstrap serve's boot files (undionly.kpxe, ipxe.efi, snponly.efi)
  isc-dhcp-client                              # dhclient walks kvmstrap serve's DHCP as a PXE ROM and as iPXE (test/pxe/serve)
  nginx-light                                  # bench:pxe serves the same artifact with nginx (started by hand)
  postgresql-15                                # the fleet store's tests start a test-owned PostgreSQL 15 (initdb, pg_ctl)
  prometheus                                   # promtool check metrics on serve's /metrics
  prometheus-libvirt-exporter                  # kvmstrap metrics compared with it on the same domains (e2e test, bench:vm); run by hand
  gnutls-bin gvncviewer                        # the host PKI (certtool); the console TLS test (gvnccapture, gnutls-cli)
  chromium                                     # serve's web dashboard tested in a real browser (playwright-core drives it)
  openvswitch-switch                           # test/e2e/ovs-vlan: ovsdb-server and ovs-vswitchd run by the test (datapath netdev)
  ethtool                                      # test/e2e/ovs-vlan turns off a veth's checksum offload (the netdev datapath never completes it)
  tgt libvirt-daemon-driver-storage-iscsi-direct # test/cluster/shared-iscsi: user-space tgtd target; libvirt's iscsi-direct pool (no iscsi_tcp here)
  nfs-ganesha nfs-ganesha-vfs rpcbind qemu-block-extra # test/cluster/shared-nfs: user-space NFS server (no kernel NFS client here); qemu's libnfs disks
  ceph-mon ceph-mgr ceph-osd ceph-common      # test/cluster/ceph.ts: a one-node Ceph 16 (memstore) for the rbd store's migration test
  libvirt-daemon-driver-storage-rbd            # libvirt's rbd pool (qemu-block-extra above has qemu's rbd driver for network disks)
  corosync pacemaker pacemaker-cli-utils resource-agents # test/cluster/ha: corosync+pacemaker per test host, VirtualDomain; crm_verify checks the rendered CIB
  systemd-container                            # test/cluster/applied: systemd-nspawn boots a systemd per test host (the cluster plan's units applied for real)
)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  # These packages are for their tools only: keep their daemons (NetworkManager, libvirtd...) from
  # starting on the test host, where they could take over its network.
  guard=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && guard=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$guard" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# A stock kernel for the probe's "linux-boot" stage, unpacked (not installed) from Debian's package.
kernel_dir=/var/cache/kvmstrap/probe-kernel
if [ ! -s "$kernel_dir/vmlinuz" ]; then
  echo "setup: fetching a Debian cloud kernel for the KVM probe"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  [ -n "$(apt-cache policy linux-image-cloud-amd64 | grep Candidate)" ] || apt-get update -qq
  pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
  (cd "$work" && apt-get download -q "$pkg" >/dev/null 2>&1)
  dpkg-deb -x "$work"/"$pkg"_*.deb "$work/x"
  mkdir -p "$kernel_dir"
  cp "$work"/x/boot/vmlinuz-* "$kernel_dir/vmlinuz.tmp" && mv "$kernel_dir/vmlinuz.tmp" "$kernel_dir/vmlinuz"
fi

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
