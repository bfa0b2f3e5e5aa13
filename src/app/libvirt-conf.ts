// Reads libvirt's configuration files (qemu.conf, libvirtd.conf): `key = value` lines, where a value
// is an integer, a "string" or a [list], and # starts a comment. Pure. By hand because the format is
// this small (libvirt's own virConf) and no maintained package reads it; only scalar keys are
// returned, list values are skipped (a list may span lines, its continuation lines are not keys).

export interface ConfValue {
  /** The value as written, quotes removed from a string. */
  value: string;
  /** 1-based line of the (last) assignment: libvirt keeps the last one. */
  line: number;
}

export type LibvirtConf = ReadonlyMap<string, ConfValue>;

const LINE = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)$/;

export function parseLibvirtConf(text: string): LibvirtConf {
  const out = new Map<string, ConfValue>();
  let inList = false;
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.replace(/^\s*#.*$/, "");
    if (inList) {
      if (line.includes("]")) inList = false;
      continue;
    }
    const m = LINE.exec(line);
    if (!m?.[1] || m[2] === undefined) continue;
    const rest = m[2].trim();
    if (rest.startsWith("[")) {
      inList = !rest.includes("]");
      continue;
    }
    const quoted = /^"([^"]*)"/.exec(rest);
    const value = quoted ? (quoted[1] ?? "") : (rest.split("#", 1)[0] ?? "").trim();
    out.set(m[1], { value, line: i + 1 });
  }
  return out;
}

/** An integer setting as libvirt reads it, or null when unset or not a number. */
export function confInt(conf: LibvirtConf | null, key: string): number | null {
  const v = conf?.get(key)?.value;
  if (v === undefined || !/^-?\d+$/.test(v)) return null;
  return Number(v);
}

export const confStr = (conf: LibvirtConf | null, key: string): string | null =>
  conf?.get(key)?.value ?? null;

/** "FILE line N: key = value", for a finding. */
export function confAt(file: string, conf: LibvirtConf | null, key: string): string {
  const v = conf?.get(key);
  return v ? `${file} line ${v.line}: ${key} = ${v.value}` : `${file}: ${key} not set`;
}
