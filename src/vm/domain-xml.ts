// libvirt domain XML for a kvmstrap VM: q35, virtio everywhere, disks as type='file' (volume-type
// disks trip AppArmor, terraform-provider-libvirt#1163), a qemu-guest-agent channel and a serial
// console logged to a file. Pure: the deployment decides; this only writes it down.
import { xmlEscape } from "../plan/render/libvirt-xml.js";
import { type ConsoleGraphics, graphicsXml } from "./console-xml.js";
import { renderSharedDiskXml, type SharedDisk } from "./network-disk.js";

export type VmNic =
  | { kind: "network"; network: string; mac?: string }
  | { kind: "bridge"; bridge: string; vlan?: number; mac?: string }
  /** Open vSwitch: an access port (vlan) or a trunk of these VLANs; neither: all VLANs, untagged native. */
  | { kind: "ovs"; bridge: string; vlan?: number; trunk?: number[]; mac?: string }
  | { kind: "hostdev-network"; network: string; mac?: string }
  | { kind: "macvtap"; dev: string; mode: "bridge" | "vepa" | "private" | "passthrough"; mac?: string };

export interface DomainSpec {
  name: string;
  uuid?: string;
  /** "kvm" when the functional probe passed, else "qemu" (TCG). */
  domainType: "kvm" | "qemu";
  vcpus: number;
  memoryMiB: number;
  disk: { path: string; format: "qcow2" | "raw" };
  /** A disk on a cluster store (network-disk.ts) in place of `disk`. */
  sharedDisk?: SharedDisk;
  seed?: { path: string };
  nics: VmNic[];
  /** PCI addresses handed to the guest (vfio-pci). */
  hostdevs?: string[];
  uefi?: { loader: string; nvram: string };
  hugepages?: boolean;
  /** Host CPUs for each vCPU in order, and the NUMA node for memory. */
  pinning?: { cpus: number[]; node: number | null };
  /** Direct kernel boot (tests and appliance images without a bootloader). */
  kernel?: { path: string; initrd?: string; cmdline: string };
  serialLog: string;
  /** false: the host has no vhost-net, so no NIC asks for it (qemu's own virtio backend, one queue). */
  vhostNet?: boolean;
  /** kvmstrap's mark: the hash of the spec this domain was defined from (kept in <metadata>). */
  specHash?: string;
  /** VNC and/or SPICE on the management address (the answer's consoles:). */
  graphics?: ConsoleGraphics;
}

/** The namespace of kvmstrap's <metadata> element in a domain definition. */
export const KVMSTRAP_XMLNS = "urn:kvmstrap:vm:1";

const attr = (v: string | number) => xmlEscape(String(v));

function nicXml(n: VmNic, queues: number): string {
  const mac = n.mac ? `\n      <mac address="${attr(n.mac)}"/>` : "";
  const driver = queues > 1 ? `\n      <driver name="vhost" queues="${queues}"/>` : "";
  switch (n.kind) {
    case "network":
      return `    <interface type="network">${mac}\n      <source network="${attr(n.network)}"/>\n      <model type="virtio"/>${driver}\n    </interface>`;
    case "bridge":
      return `    <interface type="bridge">${mac}\n      <source bridge="${attr(n.bridge)}"/>\n      <model type="virtio"/>${driver}\n    </interface>`;
    case "ovs": {
      // libvirt adds the port to the bridge itself (ovs-vsctl) and sets its tag or trunks.
      const tags =
        n.vlan !== undefined
          ? `\n      <vlan>\n        <tag id="${n.vlan}"/>\n      </vlan>`
          : n.trunk?.length
            ? `\n      <vlan trunk="yes">\n${n.trunk.map((t) => `        <tag id="${t}"/>`).join("\n")}\n      </vlan>`
            : "";
      return `    <interface type="bridge">${mac}\n      <source bridge="${attr(n.bridge)}"/>\n      <virtualport type="openvswitch"/>${tags}\n      <model type="virtio"/>${driver}\n    </interface>`;
    }
    case "hostdev-network":
      // A VF from the PF's pool: the guest sees the VF itself, so no virtio model.
      return `    <interface type="network">${mac}\n      <source network="${attr(n.network)}"/>\n    </interface>`;
    case "macvtap":
      return `    <interface type="direct">${mac}\n      <source dev="${attr(n.dev)}" mode="${n.mode}"/>\n      <model type="virtio"/>${driver}\n    </interface>`;
  }
}

/**
 * A VM's VLAN on a Linux bridge: libvirt sets none on a bridge port, so it is kept here, keyed by the
 * NIC's MAC, for the qemu hook (src/vm/vlan-hook.ts) that sets it on the tap each time the VM starts.
 */
function vlanPorts(nics: VmNic[]): { mac: string; vlan: number }[] {
  return nics.flatMap((n) => {
    if (n.kind !== "bridge" || n.vlan === undefined) return [];
    // The planner gives every NIC a MAC (vmMac); without one the hook could not find the port.
    if (!n.mac) throw new Error(`a VLAN on bridge ${n.bridge} needs the NIC's MAC in the domain XML`);
    return [{ mac: n.mac.toLowerCase(), vlan: n.vlan }];
  });
}

function hostdevXml(address: string): string {
  const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i.exec(address);
  if (!m) throw new Error(`not a full PCI address: ${address}`);
  return `    <hostdev mode="subsystem" type="pci" managed="yes">\n      <source>\n        <address domain="0x${m[1]}" bus="0x${m[2]}" slot="0x${m[3]}" function="0x${m[4]}"/>\n      </source>\n    </hostdev>`;
}

export function renderDomainXml(s: DomainSpec): string {
  const L: string[] = [];
  L.push(`<domain type="${s.domainType}">`, `  <name>${xmlEscape(s.name)}</name>`);
  if (s.uuid) L.push(`  <uuid>${attr(s.uuid)}</uuid>`);
  const ports = vlanPorts(s.nics);
  if (s.specHash || ports.length) {
    const open = `    <kvmstrap:vm xmlns:kvmstrap="${KVMSTRAP_XMLNS}"${s.specHash ? ` spec="${attr(s.specHash)}"` : ""}`;
    L.push("  <metadata>");
    if (!ports.length) L.push(`${open}/>`);
    else
      L.push(
        `${open}>`,
        ...ports.map((p) => `      <kvmstrap:port mac="${attr(p.mac)}" vlan="${p.vlan}"/>`),
        "    </kvmstrap:vm>",
      );
    L.push("  </metadata>");
  }
  L.push(
    `  <memory unit="MiB">${s.memoryMiB}</memory>`,
    `  <currentMemory unit="MiB">${s.memoryMiB}</currentMemory>`,
  );
  if (s.hugepages) L.push("  <memoryBacking>", "    <hugepages/>", "  </memoryBacking>");
  L.push(`  <vcpu placement="static">${s.vcpus}</vcpu>`, "  <iothreads>1</iothreads>");
  if (s.pinning?.cpus.length) {
    L.push("  <cputune>");
    for (let i = 0; i < s.vcpus; i++) {
      L.push(`    <vcpupin vcpu="${i}" cpuset="${s.pinning.cpus[i % s.pinning.cpus.length]}"/>`);
    }
    L.push(`    <emulatorpin cpuset="${s.pinning.cpus.join(",")}"/>`, "  </cputune>");
    if (s.pinning.node !== null) {
      L.push("  <numatune>", `    <memory mode="strict" nodeset="${s.pinning.node}"/>`, "  </numatune>");
    }
  }
  L.push("  <os>", '    <type arch="x86_64" machine="q35">hvm</type>');
  if (s.uefi) {
    L.push(`    <loader readonly="yes" type="pflash">${xmlEscape(s.uefi.loader)}</loader>`);
    L.push(`    <nvram>${xmlEscape(s.uefi.nvram)}</nvram>`);
  }
  if (s.kernel) {
    L.push(`    <kernel>${xmlEscape(s.kernel.path)}</kernel>`);
    if (s.kernel.initrd) L.push(`    <initrd>${xmlEscape(s.kernel.initrd)}</initrd>`);
    L.push(`    <cmdline>${xmlEscape(s.kernel.cmdline)}</cmdline>`);
  } else L.push('    <boot dev="hd"/>');
  L.push("  </os>", "  <features>", "    <acpi/>", "    <apic/>", "  </features>");
  // host-passthrough only where KVM runs the guest; TCG emulates a generic model.
  L.push(
    s.domainType === "kvm"
      ? '  <cpu mode="host-passthrough" check="none" migratable="on"/>'
      : '  <cpu mode="custom" match="exact"><model fallback="allow">qemu64</model></cpu>',
  );
  L.push(
    '  <clock offset="utc"/>',
    "  <on_poweroff>destroy</on_poweroff>",
    "  <on_reboot>restart</on_reboot>",
    "  <on_crash>destroy</on_crash>",
  );
  L.push("  <devices>");
  if (s.sharedDisk) L.push(renderSharedDiskXml(s.sharedDisk, "vda"));
  else
    L.push(
      '    <disk type="file" device="disk">',
      `      <driver name="qemu" type="${s.disk.format}" iothread="1" discard="unmap"/>`,
      `      <source file="${attr(s.disk.path)}"/>`,
      '      <target dev="vda" bus="virtio"/>',
      "    </disk>",
    );
  if (s.seed) {
    // A read-only virtio disk rather than a SATA cdrom: cloud images' kernels always carry virtio_blk,
    // and cloud-init finds the seed by its "cidata" label on any block device.
    L.push(
      '    <disk type="file" device="disk">',
      '      <driver name="qemu" type="raw"/>',
      `      <source file="${attr(s.seed.path)}"/>`,
      '      <target dev="vdb" bus="virtio"/>',
      "      <readonly/>",
      "    </disk>",
    );
  }
  for (const n of s.nics) L.push(nicXml(n, s.vhostNet === false ? 1 : s.vcpus));
  for (const h of s.hostdevs ?? []) L.push(hostdevXml(h));
  L.push(
    // A pty that `virsh console` can attach to, logged to a file for readiness and post-mortems.
    '    <serial type="pty">',
    `      <log file="${attr(s.serialLog)}" append="off"/>`,
    '      <target port="0"/>',
    "    </serial>",
    '    <console type="pty">',
    '      <target type="serial" port="0"/>',
    "    </console>",
    '    <channel type="unix">',
    '      <target type="virtio" name="org.qemu.guest_agent.0"/>',
    "    </channel>",
    '    <rng model="virtio">',
    '      <backend model="random">/dev/urandom</backend>',
    "    </rng>",
    '    <memballoon model="virtio"/>',
  );
  L.push(...graphicsXml(s.graphics), "  </devices>", "</domain>");
  return `${L.join("\n")}\n`;
}
