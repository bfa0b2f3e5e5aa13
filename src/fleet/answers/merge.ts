// Layered answers: site, then rack, then roles, then node, merged key by key with the origin of every
// value (layer, file, line). Mappings merge; a list whose entries all have a `name` (bridges, bonds,
// vlans, users, pools, VMs) merges entry by entry on that name, so a rack can add a bridge or change
// one bridge's uplink; any other list, and any scalar, is replaced by the later layer. `key: null`
// removes what earlier layers set. The origins also locate the schema's and the rule set's findings
// on the merged answer back in the layer file that wrote the key.
import type { Locator } from "../../answer/load.js";
import { formatPath, type PathSegment, type Position } from "../../answer/positions.js";
import type { FleetFile } from "./files.js";
import type { Origin } from "./types.js";

export interface Setting extends Origin {
  /** The layer's place in the merge (0: site): a later layer wins. */
  rank: number;
  /** Where the key itself is written (for an unknown key); the value's place is line/column. */
  key: Position | null;
  /** Values of earlier layers this one replaced, earliest first. */
  shadowed: (Origin & { value: unknown })[];
}

export interface Removal extends Origin {
  path: string;
  value: unknown;
}

export interface Merged {
  data: Record<string, unknown>;
  /** By formatted key path (network.bridges[0].uplink.name): every mapping, list and value. */
  origins: Map<string, Setting>;
  removed: Removal[];
  locator: Locator;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === "object" && !Array.isArray(v);
const named = (v: unknown): v is Obj[] =>
  Array.isArray(v) && v.every((e) => isObj(e) && typeof e.name === "string");

export interface LayerFile {
  label: string;
  file: FleetFile;
}

export function mergeLayers(layers: readonly LayerFile[]): Merged {
  const origins = new Map<string, Setting>();
  const removed: Removal[] = [];
  const data: Obj = {};

  for (const [rank, { label, file }] of layers.entries()) {
    const originAt = (s: PathSegment[]): Origin & { key: Position | null } => {
      const pos = file.map.locate(s);
      return {
        layer: label,
        file: file.file,
        line: pos?.line ?? null,
        column: pos?.column ?? null,
        key: file.map.locate(s, true),
      };
    };
    const leafValue = (v: unknown) => (isObj(v) || Array.isArray(v) ? undefined : v);
    const dropUnder = (t: string) => {
      for (const k of [...origins.keys()])
        if (k.startsWith(`${t}.`) || k.startsWith(`${t}[`)) origins.delete(k);
    };
    /** Records `value` (and everything under it) as set by this layer at target path t. */
    const record = (value: unknown, t: PathSegment[], s: PathSegment[], shadowed: Setting["shadowed"]) => {
      origins.set(formatPath(t), { ...originAt(s), rank, shadowed });
      if (Array.isArray(value))
        value.forEach((v, i) => {
          record(v, [...t, i], [...s, i], []);
        });
      else if (isObj(value)) for (const [k, v] of Object.entries(value)) record(v, [...t, k], [...s, k], []);
    };
    /** The merge of `next` (this layer, at source path s) over `prev` (at target path t). */
    const merge = (prev: unknown, next: unknown, t: PathSegment[], s: PathSegment[]): unknown => {
      const tKey = formatPath(t);
      if (isObj(prev) && isObj(next)) {
        const out: Obj = { ...prev };
        for (const [k, v] of Object.entries(next)) {
          if (t.length === 0 && k === "version") continue;
          if (v === null) {
            if (k in out) {
              const o = originAt([...s, k]);
              removed.push({
                path: formatPath([...t, k]),
                value: out[k],
                layer: o.layer,
                file: o.file,
                line: o.line,
                column: o.column,
              });
              delete out[k];
              origins.delete(formatPath([...t, k]));
              dropUnder(formatPath([...t, k]));
            }
            continue;
          }
          if (k in out) out[k] = merge(out[k], v, [...t, k], [...s, k]);
          else {
            record(v, [...t, k], [...s, k], []);
            out[k] = v;
          }
        }
        return out;
      }
      if (named(prev) && named(next)) {
        const out: unknown[] = [...prev];
        next.forEach((entry, j) => {
          const i = out.findIndex((e) => (e as Obj).name === entry.name);
          // The name joins the entries: it stays credited to the layer that first wrote the entry.
          const { name: _join, ...rest } = entry;
          if (i >= 0) out[i] = merge(out[i], rest, [...t, i], [...s, j]);
          else {
            record(entry, [...t, out.length], [...s, j], []);
            out.push(entry);
          }
        });
        return out;
      }
      // Replaced: the earlier value (a scalar, or a whole list or mapping) goes under `shadowed`.
      const before = origins.get(tKey);
      const shadowed = before
        ? [
            ...before.shadowed,
            {
              layer: before.layer,
              file: before.file,
              line: before.line,
              column: before.column,
              value: leafValue(prev) ?? prev,
            },
          ]
        : [];
      dropUnder(tKey);
      record(next, t, s, shadowed);
      return next;
    };
    const merged = merge(data, file.data, [], []) as Obj;
    for (const k of Object.keys(data)) delete data[k];
    Object.assign(data, merged);
  }
  const versioned: Obj = { version: 1, ...data };

  const locator: Locator = {
    locate(path, key = false) {
      const own = key ? origins.get(formatPath(path)) : undefined;
      if (own?.key) return { ...own.key, file: own.file };
      const o = blame(origins, path);
      return o && o.line !== null ? { line: o.line, column: o.column ?? 1, file: o.file } : null;
    },
  };
  return { data: versioned, origins, removed, locator };
}

/**
 * Who to blame for a problem at `path`: of the key itself (or, when absent, its nearest recorded
 * parent) and everything under it, the value the latest layer wrote, since that layer changed what
 * the earlier ones had made valid (a node file's uplink name under the site's bridge).
 */
export function blame(origins: ReadonlyMap<string, Setting>, path: readonly PathSegment[]): Setting | null {
  for (let n = path.length; n > 0; n--) {
    const key = formatPath(path.slice(0, n));
    let best = origins.get(key);
    if (!best) continue;
    for (const [k, o] of origins)
      if (o.rank > best.rank && (k.startsWith(`${key}.`) || k.startsWith(`${key}[`))) best = o;
    return best;
  }
  return null;
}
