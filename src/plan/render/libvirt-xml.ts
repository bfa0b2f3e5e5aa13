// libvirt storage-pool and network XML, checked against libvirt's own RelaxNG schemas in the tests.
// Every value goes through xmlEscape; names are libvirt's, not validated here.

export function xmlEscape(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => `&${{ "&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos" }[c]};`,
  );
}

const e = xmlEscape;

export type PoolSpec = {
  name: string;
  type: "dir" | "logical" | "zfs";
  path?: string;
  sourceDevices?: string[];
  vgName?: string;
};

export function renderPoolXml(pool: PoolSpec): string {
  const devices = (pool.sourceDevices ?? []).map((d) => `    <device path="${e(d)}"/>\n`).join("");
  const lines = [`<pool type="${pool.type}">`, `  <name>${e(pool.name)}</name>`];
  if (pool.type === "dir") {
    if (!pool.path) throw new Error(`pool ${pool.name}: a dir pool needs a path`);
    lines.push(`  <target>`, `    <path>${e(pool.path)}</path>`, `  </target>`);
  } else if (pool.type === "logical") {
    const vg = pool.vgName ?? pool.name;
    lines.push(
      `  <source>`,
      `${devices}    <name>${e(vg)}</name>`,
      `    <format type="lvm2"/>`,
      `  </source>`,
    );
    lines.push(`  <target>`, `    <path>${e(pool.path ?? `/dev/${vg}`)}</path>`, `  </target>`);
  } else {
    // zfs: source/name is the zpool (or dataset); libvirt creates it from the devices when built.
    lines.push(`  <source>`, `    <name>${e(pool.vgName ?? pool.name)}</name>`, `${devices}  </source>`);
  }
  lines.push(`</pool>`);
  return `${lines.join("\n")}\n`;
}

/** "192.168.122.1/24" -> address and prefix; throws on anything else. */
function splitCidr(subnet: string): { address: string; prefix: number } {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(subnet);
  const prefix = Number(m?.[2]);
  if (!m?.[1] || prefix > 32) throw new Error(`network: ${subnet} is not an IPv4 address/prefix`);
  return { address: m[1], prefix };
}

export function renderDefaultNetworkXml(opts: {
  name: string;
  bridge: string;
  subnet: string;
  dhcpRange?: [string, string];
}): string {
  const { address, prefix } = splitCidr(opts.subnet);
  const dhcp = opts.dhcpRange
    ? [
        `    <dhcp>`,
        `      <range start="${e(opts.dhcpRange[0])}" end="${e(opts.dhcpRange[1])}"/>`,
        `    </dhcp>`,
      ]
    : [];
  return `${[
    `<network>`,
    `  <name>${e(opts.name)}</name>`,
    `  <forward mode="nat"/>`,
    `  <bridge name="${e(opts.bridge)}" stp="on" delay="0"/>`,
    `  <ip address="${address}" prefix="${prefix}">`,
    ...dhcp,
    `  </ip>`,
    `</network>`,
  ].join("\n")}\n`;
}

/** An SR-IOV pool: libvirt hands out the PF's VFs to guests (interface type="network"). */
export function renderHostdevNetworkXml(opts: { name: string; pfName: string }): string {
  return `${[
    `<network>`,
    `  <name>${e(opts.name)}</name>`,
    `  <forward mode="hostdev" managed="yes">`,
    `    <pf dev="${e(opts.pfName)}"/>`,
    `  </forward>`,
    `</network>`,
  ].join("\n")}\n`;
}

/** A libvirt network over a host bridge that kvmstrap (or the OS) manages. */
export function renderBridgeNetworkXml(name: string, bridge: string): string {
  return `${[
    `<network>`,
    `  <name>${e(name)}</name>`,
    `  <forward mode="bridge"/>`,
    `  <bridge name="${e(bridge)}"/>`,
    `</network>`,
  ].join("\n")}\n`;
}
