// The per-node boot state machine, as an explicit transition table. A node moves along the boot
// chain (DHCP -> TFTP -> iPXE -> script -> kernel -> initrd -> root image -> appliance -> answer ->
// install -> installed -> local boot -> rebooted -> verified) as the server sees it. Inputs may skip
// states (with --dhcp off the server never sees DHCP; the site's DHCP may hand out iPXE itself) or go
// back (a node that failed or was reset boots again), so every boot-stage input is accepted from every
// state before "installed". Requests a node makes (DHCP, a TFTP start, a script, a download) mean a
// new boot when they go back; reports of something already under way do not: the end of the TFTP
// transfer (its last ACK races iPXE's own DISCOVER on another socket), a download's end, and the
// appliance's reports (sent by a background sender, so the answer's GET may be seen first) keep a
// node that is further along where it is. An input a state's row does not list is recorded as
// unexpected and changes nothing: the table never throws, whatever order the network delivers things in.

export const NODE_STATES = [
  "discovered", // seen for the first time, nothing asked yet
  "offered", // a DHCP offer with a boot file went to its PXE ROM (or UEFI HTTP Boot client)
  "tftp", // it fetches the iPXE binary over TFTP
  "ipxe", // iPXE itself asked DHCP and got its script URL
  "script", // iPXE fetched its per-node script
  "kernel", // the kernel download started
  "initrd", // the initrd download started
  "rootfs", // the initramfs fetches filesystem.squashfs
  "appliance-up", // the live appliance reported in
  "answer-fetched", // it fetched its answer file
  "installing", // the unattended install runs (apply steps)
  "installed", // the disk is written; the next PXE boot goes to the local disk
  "local-boot", // it PXE-booted again and was sent to its local disk
  "rebooted", // the installed system is up
  "verified", // kvmstrap verify passed on it
  "failed", // the appliance or the install reported a failure
  "stalled", // no progress within the state's timeout
] as const;
export type NodeState = (typeof NODE_STATES)[number];

export const NODE_INPUTS = [
  "dhcp", // DHCP reply with a boot file to a PXE ROM or HTTP Boot client
  "tftp-start",
  "tftp-done",
  "tftp-failed", // a TFTP transfer failed, was refused or aborted
  "ipxe-dhcp", // DHCP reply to iPXE (its script URL)
  "script", // the per-node boot script was served
  "script-local", // the boot-local script was served (boot once after "installed")
  "kernel",
  "initrd",
  "rootfs",
  "http-done", // an artifact download finished (bytes in the detail)
  "http-aborted", // an artifact download ended early
  "appliance-up",
  "answer-fetched",
  "installing", // an apply event or the lifecycle phase
  "installed",
  "rebooted",
  "verified",
  "failed",
  "rearm", // the operator asked for a fresh install
  "timeout", // the state's timeout ran out
] as const;
export type NodeInput = (typeof NODE_INPUTS)[number];

type Row = Partial<Record<NodeInput, NodeState>>;

/**
 * Inputs of the boot chain and of the appliance, and where each leads, from any state before the
 * install is done: a step the server did not see (the site's DHCP, a download from an address it
 * cannot attribute, a restart of the server) is skipped, and the appliance's word is taken.
 */
const BOOT_CHAIN: Row = {
  dhcp: "offered",
  "tftp-start": "tftp",
  "tftp-done": "tftp",
  "tftp-failed": "tftp",
  "ipxe-dhcp": "ipxe",
  script: "script",
  kernel: "kernel",
  initrd: "initrd",
  rootfs: "rootfs",
  "appliance-up": "appliance-up",
  "answer-fetched": "answer-fetched",
  installing: "installing",
  installed: "installed",
  failed: "failed",
  rearm: "discovered",
};

/** A row where boot-chain noise keeps the state (an installed node PXE-booting towards its disk). */
const settled = (state: NodeState, row: Row): Row => ({
  dhcp: state,
  "tftp-start": state,
  "tftp-done": state,
  "tftp-failed": state,
  "ipxe-dhcp": state,
  "script-local": "local-boot",
  installed: state,
  failed: "failed",
  rearm: "discovered",
  ...row,
});

/** Download outcomes stay in the state they happen in (a kernel's end may follow the initrd's start). */
const downloads = (state: NodeState): Row => ({ "http-done": state, "http-aborted": state });

/** The TFTP transfer's end, seen after iPXE moved on: recorded (bytes, retransmits), state kept. */
const tftpEnded = (state: NodeState): Row => ({ "tftp-done": state, "tftp-failed": state });

/** The appliance's reports that come before `state` in the chain keep it (a late sender). */
const APPLIANCE: readonly NodeInput[] = ["appliance-up", "answer-fetched", "installing"];
const reportsBefore = (state: NodeState & NodeInput): Row =>
  Object.fromEntries(APPLIANCE.slice(0, APPLIANCE.indexOf(state)).map((i) => [i, state]));

/** A row of the boot chain past the iPXE binary: late TFTP ends and download ends keep it. */
const past = (state: NodeState, row: Row = {}): Row => ({
  ...BOOT_CHAIN,
  ...tftpEnded(state),
  ...row,
  timeout: "stalled",
});

export const TRANSITIONS: Readonly<Record<NodeState, Readonly<Row>>> = {
  // "discovered" is also where a server that restarted first sees a node mid-install.
  discovered: {
    ...BOOT_CHAIN,
    rebooted: "rebooted",
    verified: "verified",
    "script-local": "local-boot",
  },
  offered: { ...BOOT_CHAIN, timeout: "stalled" },
  tftp: { ...BOOT_CHAIN, timeout: "stalled" },
  ipxe: past("ipxe"),
  script: past("script"),
  kernel: past("kernel", downloads("kernel")),
  initrd: past("initrd", downloads("initrd")),
  rootfs: past("rootfs", downloads("rootfs")),
  "appliance-up": past("appliance-up", downloads("appliance-up")),
  "answer-fetched": past("answer-fetched", {
    ...downloads("answer-fetched"),
    ...reportsBefore("answer-fetched"),
  }),
  installing: past("installing", { ...downloads("installing"), ...reportsBefore("installing") }),
  // Apply events still on their way when "installed" arrived are recorded, state kept.
  installed: settled("installed", {
    installing: "installed",
    rebooted: "rebooted",
    verified: "verified",
    timeout: "stalled",
  }),
  "local-boot": settled("local-boot", { rebooted: "rebooted", verified: "verified", timeout: "stalled" }),
  rebooted: settled("rebooted", { rebooted: "rebooted", verified: "verified", timeout: "stalled" }),
  verified: settled("verified", { rebooted: "rebooted", verified: "verified" }),
  failed: { ...BOOT_CHAIN },
  // A stalled node that moves again goes wherever the input says.
  stalled: {
    ...BOOT_CHAIN,
    ...downloads("stalled"),
    rebooted: "rebooted",
    verified: "verified",
    "script-local": "local-boot",
  },
};

/** Seconds without any input before a node in this state is called stalled, and where to look. */
export const TIMEOUTS: Readonly<Partial<Record<NodeState, { seconds: number; hint: string }>>> = {
  offered: {
    seconds: 60,
    hint: "no TFTP request after the offer: is the client on another VLAN, or is UDP 69 filtered? (Some UEFI firmware ignores a ProxyDHCP offer: try --dhcp full on an isolated network.)",
  },
  tftp: {
    seconds: 120,
    hint: "iPXE was sent over TFTP but never asked DHCP again: check the TFTP transfer above (retransmits, a refused file name) and that the client's architecture has an iPXE binary in --ipxe-dir",
  },
  ipxe: {
    seconds: 60,
    hint: "iPXE got its script URL but never fetched it: is the HTTP port reachable from the node (firewall, --listen address, routing)?",
  },
  script: {
    seconds: 60,
    hint: "the boot script was served but the kernel was never requested: check the node's console for an iPXE error",
  },
  kernel: {
    seconds: 300,
    hint: "the kernel download did not finish: check the link (speed, MTU) and the node's console; iPXE retries 5 times",
  },
  initrd: {
    seconds: 300,
    hint: "the initrd download did not finish: check the link (speed, MTU) and the node's console; iPXE retries 5 times",
  },
  rootfs: {
    seconds: 900,
    hint: "the live system fetched its root image but never reported in: check the node's serial console (fetch= checksum, network driver in the initramfs, kvmstrap.server reachable)",
  },
  "appliance-up": {
    seconds: 300,
    hint: "the appliance is up but did not fetch its answer: check kvmstrap.answer on its command line and the token (expired? see --token-ttl)",
  },
  "answer-fetched": {
    seconds: 600,
    hint: "the answer was fetched but no install events arrived: check the appliance's console (did the answer validate against this machine?)",
  },
  installing: {
    seconds: 1800,
    hint: "no install events for a while: check the appliance's console and /var/lib/kvmstrap/log on it",
  },
  installed: {
    seconds: 1800,
    hint: "installed but the node never booted again: is it powered on, and does it try the network or its disk first?",
  },
  "local-boot": {
    seconds: 1800,
    hint: "the node was sent to its local disk but the installed system never reported: check its console (boot order, bootloader)",
  },
  rebooted: {
    seconds: 3600,
    hint: "the installed system is up but verify never reported: run kvmstrap verify on it",
  },
};

/** Where an input leads from a state; undefined when the table does not allow it. */
export function nextState(state: NodeState, input: NodeInput): NodeState | undefined {
  return TRANSITIONS[state][input];
}
