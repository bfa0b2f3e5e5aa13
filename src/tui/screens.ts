// The wizard's screens in order, with the keys each adds to the footer and its help text.
import type { ReactNode } from "react";
import { Apply } from "./screens/Apply.js";
import { Done } from "./screens/Done.js";
import { Hardware } from "./screens/Hardware.js";
import { Install } from "./screens/Install.js";
import { Network } from "./screens/Network.js";
import { Passthrough } from "./screens/Passthrough.js";
import { Review } from "./screens/Review.js";
import { Sriov } from "./screens/Sriov.js";
import { Storage } from "./screens/Storage.js";
import { Vms } from "./screens/Vms.js";
import { Welcome } from "./screens/Welcome.js";
import type { ScreenProps } from "./types.js";

export interface ScreenDef {
  id: string;
  title: string;
  keys: string;
  help: string[];
  Component: (p: ScreenProps) => ReactNode;
}

export const SCREENS: ScreenDef[] = [
  {
    id: "welcome",
    title: "Welcome",
    keys: "Enter continue",
    help: ["The host summary and the readiness verdict from the checks."],
    Component: Welcome,
  },
  {
    id: "hardware",
    title: "Hardware",
    keys: "Tab category  Enter details",
    help: [
      "CPU/KVM, IOMMU, NICs, PCI, disks and every check.",
      "Enter shows an item's sources and remediation; Esc closes it.",
    ],
    Component: Hardware,
  },
  {
    id: "network",
    title: "Network",
    keys: "Enter pick/edit  Tab settings  v VLAN  b bond  x remove",
    help: [
      "Pick the uplink: a bridge over it takes over its MAC and addressing.",
      "v adds a VLAN on the bridge: id 1-4094, name, DHCP or address/len.",
      "b builds a bond of 2+ NICs (not the management NIC); m picks its mode.",
      "In the settings pane x removes the selected VLAN or bond.",
      "The management NIC (default route) is marked; network changes ask to be confirmed or revert.",
    ],
    Component: Network,
  },
  {
    id: "sriov",
    title: "SR-IOV",
    keys: "+/- count  Enter type  x reset",
    help: [
      "VF counts per physical function, at most sriov_totalvfs.",
      "The management NIC is locked: a VF change resets its link.",
    ],
    Component: Sriov,
  },
  {
    id: "passthrough",
    title: "Passthrough",
    keys: "Enter pick group  i IOMMU",
    help: [
      "Devices by IOMMU group; a group passes through whole.",
      "Unsafe picks are refused with the reason (boot VGA, management NIC, boot disk controller).",
    ],
    Component: Passthrough,
  },
  {
    id: "storage",
    title: "Storage",
    keys: "Enter change  Tab disks",
    help: [
      "One storage pool: a directory, LVM thin or ZFS.",
      "Disks show why they cannot be used; a wipe asks for each disk's serial, typed.",
    ],
    Component: Storage,
  },
  {
    id: "vms",
    title: "VMs",
    keys: "a add  x remove",
    help: [
      "The answer's vms: entries; kvmstrap vm deploy --answer deploys them.",
      "a adds one: name, image, vCPUs, memory, disk, NIC, login, ssh key.",
      "x removes the selected one. An ssh key can be pasted into its prompt.",
    ],
    Component: Vms,
  },
  {
    id: "review",
    title: "Review",
    keys: "Tab plan/answer  s save",
    help: [
      "The plan as kvmstrap plan shows it, and the answer file.",
      "s saves the answer file; kvmstrap apply FILE runs the same plan unattended.",
    ],
    Component: Review,
  },
  {
    id: "apply",
    title: "Apply",
    keys: "Enter dry run  A apply",
    help: [
      "Enter runs a dry run. A applies for real: only as root on a live machine, after typing yes.",
      "Network changes: y keeps them, r reverts, or they revert when the timer runs out.",
    ],
    Component: Apply,
  },
  {
    id: "done",
    title: "Done",
    keys: "",
    help: ["What changed, where the log and the answer file are."],
    Component: Done,
  },
];

/** The Install screen: only on the appliance (a live system), after Done, so the settings chosen
 *  before it go onto the installed host and apply on its first boot. */
export const INSTALL_SCREEN: ScreenDef = {
  id: "install",
  title: "Install",
  keys: "Enter choose  w erase data  I install",
  help: [
    "Install the hypervisor onto a disk of this machine (from the appliance); last, so the",
    "settings chosen before it go onto the installed host and apply on its first boot.",
    "The boot medium and devices that are not disks cannot be chosen; USB disks are listed last.",
    "A disk holding data needs w first; choosing a disk asks for its serial, typed.",
    "I runs kvmstrap install with the answer built so far; the host settings follow on first boot.",
  ],
  Component: Install,
};

/** The screens for this machine: the wizard, plus Install when it runs live from the appliance. */
export function screensFor(report: { bootMedium?: { live: boolean } | undefined } | null): ScreenDef[] {
  return report?.bootMedium?.live ? [...SCREENS, INSTALL_SCREEN] : SCREENS;
}
