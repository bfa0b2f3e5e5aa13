// Taking over the host's existing network configuration for the interfaces kvmstrap now owns, so
// the stack does not keep applying the old settings beside (or instead of) the new ones:
//   - systemd-networkd applies the first .network file (by file name) whose [Match] fits a link:
//     an older file that sorts first gets `Name=!<ours>` added to its [Match], so it stops
//     matching them and keeps matching everything else;
//   - ifupdown2 reads every stanza of interfaces and interfaces.d/*: the old stanzas for our
//     interfaces are commented out, and our names leave their auto/allow- lines and the port
//     lists of other bridges and bonds;
//   - NetworkManager autoconnects any profile bound to the device: the old ones get
//     autoconnect=false, and their uuid is returned so the plan can activate them again on revert;
//   - netplan merges every YAML file: an old definition of our NIC keeps its addresses and DHCP on
//     what is now a bridge port, so those keys go (its match/set-name stay: they name the NIC);
//     an old bridge, bond or VLAN of the same name is dropped whole, and other bridges and bonds
//     let go of our interfaces.
// Each function returns the new content, or the same content when nothing needs to change.

import { isMap, isScalar, isSeq, parseDocument } from "yaml";

/** fnmatch(3) without flags, as networkd matches Name= globs: *, ? and [...] (with ! or ^). */
export function globMatches(glob: string, name: string): boolean {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] ?? "";
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end === -1) {
        re += "\\[";
        continue;
      }
      let body = glob.slice(i + 1, end);
      if (body.startsWith("!")) body = `^${body.slice(1)}`;
      re += `[${body.replace(/\\/g, "\\\\")}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`).test(name);
}

type IniLine = { section: string; key: string | null; value: string };

function iniLines(content: string): IniLine[] {
  let section = "";
  return content.split("\n").map((raw) => {
    const line = raw.trim();
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec?.[1]) {
      section = sec[1];
      return { section, key: null, value: "" };
    }
    const eq = line.indexOf("=");
    if (line === "" || line.startsWith("#") || line.startsWith(";") || eq <= 0)
      return { section, key: null, value: "" };
    return { section, key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim() };
  });
}

/** Whether a .network file's [Match] Name= lists could match `name` (other keys: assume they can). */
export function networkdMayMatch(content: string, name: string): boolean {
  let names: string[] = [];
  for (const l of iniLines(content)) {
    if (l.section !== "Match" || l.key !== "Name") continue;
    if (l.value === "") names = [];
    else names.push(...l.value.split(/\s+/));
  }
  if (names.some((n) => n.startsWith("!") && globMatches(n.slice(1), name))) return false;
  const positive = names.filter((n) => !n.startsWith("!"));
  return positive.length === 0 || positive.some((n) => globMatches(n, name));
}

/** Our interfaces an existing .network file named `fileName` could match before our file does. */
export function networkdSteals(
  fileName: string,
  content: string,
  ours: string[],
  ourFile: (name: string) => string,
): string[] {
  return ours.filter((n) => fileName < ourFile(n) && networkdMayMatch(content, n));
}

/** An existing .network file with `Name=!x` added for every interface x of ours it would steal. */
export function takeOverNetworkd(
  fileName: string,
  content: string,
  ours: string[],
  ourFile: (name: string) => string,
): string {
  const steal = networkdSteals(fileName, content, ours, ourFile);
  if (steal.length === 0) return content;
  const lines = content.split("\n");
  const add = [
    "# kvmstrap: these are configured by its 60-kvmstrap-*.network files (the first match wins)",
    `Name=${steal.map((n) => `!${n}`).join(" ")}`,
  ];
  const at = lines.findIndex((l) => l.trim() === "[Match]");
  if (at === -1) return `[Match]\n${add.join("\n")}\n\n${content}`;
  lines.splice(at + 1, 0, ...add);
  return lines.join("\n");
}

/**
 * Whether an existing .netdev named `fileName` creates one of our devices first: networkd keeps the
 * first definition of a name, so ours (its MAC, bridge settings) would be ignored.
 */
export function netdevShadows(
  fileName: string,
  content: string,
  ours: string[],
  ourFile: (name: string) => string,
): string | null {
  const name = iniLines(content).find((l) => l.section === "NetDev" && l.key === "Name")?.value;
  return name && ours.includes(name) && fileName < ourFile(name) ? name : null;
}

const NETPLAN_ADDRESSING = [
  "dhcp4",
  "dhcp6",
  "dhcp4-overrides",
  "dhcp6-overrides",
  "addresses",
  "gateway4",
  "gateway6",
  "routes",
  "routing-policy",
  "nameservers",
  "accept-ra",
  "link-local",
];

/** A netplan YAML file without what it says about our interfaces' addressing. */
export function takeOverNetplan(content: string, ours: ReadonlySet<string>, ports: NmPort[]): string {
  const doc = parseDocument(content);
  const network = doc.get("network");
  if (!isMap(network)) return content;
  let changed = false;
  const section = (name: string) => {
    const m = network.get(name);
    return isMap(m) ? m : null;
  };
  const ethernets = section("ethernets");
  for (const item of ethernets?.items ?? []) {
    const def = item.value;
    if (!isMap(def)) continue;
    const id = String(isScalar(item.key) ? item.key.value : item.key);
    const match = def.get("match");
    const matchName = isMap(match) ? String(match.get("name") ?? "") : "";
    const matchMac = isMap(match) ? String(match.get("macaddress") ?? "").toLowerCase() : "";
    const isOurs = ports.some(
      (p) =>
        id === p.name ||
        def.get("set-name") === p.name ||
        (matchName !== "" && globMatches(matchName, p.name)) ||
        (matchMac !== "" && matchMac === p.mac?.toLowerCase()),
    );
    if (!isOurs) continue;
    for (const key of NETPLAN_ADDRESSING) {
      if (def.has(key)) {
        def.delete(key);
        changed = true;
      }
    }
  }
  for (const kind of ["bridges", "bonds", "vlans"]) {
    const m = section(kind);
    for (const item of [...(m?.items ?? [])]) {
      const id = String(isScalar(item.key) ? item.key.value : item.key);
      if (ours.has(id)) {
        m?.delete(id);
        changed = true;
        continue;
      }
      // Another bridge or bond that still lists one of our interfaces would claim it too.
      const members = isMap(item.value) ? item.value.get("interfaces") : null;
      if (!isSeq(members)) continue;
      const before = members.items.length;
      members.items = members.items.filter((x) => !ours.has(String(isScalar(x) ? x.value : x)));
      if (members.items.length !== before) changed = true;
    }
    if (m && m.items.length === 0) network.delete(kind);
  }
  return changed ? doc.toString({ lineWidth: 0 }) : content;
}

const STANZA =
  /^\s*(iface|mapping|auto|allow-[\w-]+|source|source-directory|rename|no-auto-down|no-scripts)\b/;
const TAKEN = "#kvmstrap: ";

/** An interfaces(5) file without the stanzas of `ours`, and without our names on auto/allow- lines. */
export function takeOverIfupdown(content: string, ours: ReadonlySet<string>): string {
  let inTaken = false;
  // A bridge whose port list empties stays a bridge for ifupdown2 through bridge-vlan-aware
  // (Debian's `ifup -s` refuses `bridge-ports none`): stanzas that need one added, by header line.
  const lines = content.split("\n");
  const stanzaOf: number[] = [];
  let header = -1;
  const emptied = new Set<number>();
  const vlanAware = new Set<number>();
  const out = lines.map((line, i) => {
    const m = STANZA.exec(line);
    if (m) {
      header = i;
      stanzaOf[i] = header;
      inTaken = false;
      const words = line.trim().split(/\s+/);
      if (m[1] === "iface" && ours.has(words[1] ?? "")) {
        inTaken = true;
        return `${TAKEN}${line}`;
      }
      if (m[1] === "auto" || m[1]?.startsWith("allow-")) {
        const keep = words.slice(1).filter((w) => !ours.has(w));
        if (keep.length === words.length - 1) return line;
        return keep.length ? `${words[0]} ${keep.join(" ")}` : `${TAKEN}${line}`;
      }
      return line;
    }
    stanzaOf[i] = header;
    if (inTaken && line.trim() !== "" && !line.trim().startsWith("#")) return `${TAKEN}${line}`;
    if (/^\s*bridge[-_]vlan[-_]aware\b/.test(line)) vlanAware.add(header);
    // Another bridge or bond (Proxmox's vmbr0) that still lists our NIC would claim it too.
    const members = /^(\s*)(bridge[-_]ports|bond[-_]slaves|slaves)(\s+)(.*)$/.exec(line);
    if (members) {
      const words = (members[4] ?? "").trim().split(/\s+/);
      const keep = words.filter((w) => !ours.has(w));
      if (keep.length === words.length) return line;
      if (keep.length) return `${members[1]}${members[2]}${members[3]}${keep.join(" ")}`;
      if (members[2]?.startsWith("bridge")) {
        emptied.add(i);
        return `${TAKEN}${line}`;
      }
      return `${members[1]}${members[2]}${members[3]}none`;
    }
    return line;
  });
  const result: string[] = [];
  out.forEach((line, i) => {
    result.push(line);
    if (emptied.has(i) && !vlanAware.has(stanzaOf[i] ?? -1))
      result.push(`${/^\s*/.exec(lines[i] ?? "")?.[0] ?? ""}bridge-vlan-aware no`);
  });
  return result.join("\n");
}

export type NmPort = { name: string; mac?: string };
export type NmTakeover = { content: string; uuid: string | null; autoconnect: boolean; port: string };

/**
 * A NetworkManager keyfile that could bind one of our ports (by interface-name, by MAC, or an
 * ethernet profile bound to nothing, which fits any NIC), turned to autoconnect=false; null when
 * the profile binds none of them.
 */
export function takeOverNmProfile(content: string, ports: NmPort[]): NmTakeover | null {
  const lines = iniLines(content);
  const get = (sections: string[], key: string) =>
    lines.find((l) => sections.includes(l.section) && l.key === key)?.value;
  const type = get(["connection"], "type");
  const ifname = get(["connection"], "interface-name");
  const mac = get(["ethernet", "802-3-ethernet"], "mac-address")?.toLowerCase();
  const ethernet = type === "ethernet" || type === "802-3-ethernet";
  const port = ports.find((p) =>
    ifname ? ifname === p.name : mac ? mac === p.mac?.toLowerCase() : ethernet && ports.length > 0,
  );
  if (!port) return null;
  const uuid = get(["connection"], "uuid") ?? null;
  const autoconnect = !/^(false|no|0)$/i.test(get(["connection"], "autoconnect") ?? "true");
  if (!autoconnect) return { content, uuid, autoconnect, port: port.name };
  const text = content.split("\n");
  const at = lines.findIndex((l) => l.section === "connection" && l.key === "autoconnect");
  if (at !== -1) text[at] = "autoconnect=false";
  else {
    const header = lines.findIndex((l) => l.section === "connection" && l.key === null);
    text.splice(header + 1, 0, "autoconnect=false");
  }
  return { content: text.join("\n"), uuid, autoconnect, port: port.name };
}
