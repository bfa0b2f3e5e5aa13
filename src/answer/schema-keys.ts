// What the schema allows at a key path, for "unknown key ... did you mean X?" suggestions.
import type { z } from "zod";
import type { PathSegment } from "./positions.js";

interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  element?: z.ZodType;
  options?: z.ZodType[];
  valueType?: z.ZodType;
  in?: z.ZodType;
}

const def = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The object schemas reachable at `path` (several under a union). */
function objectsAt(schema: z.ZodType, path: readonly PathSegment[]): Def[] {
  const d = def(schema);
  const inner = d.innerType ?? (d.type === "pipe" ? d.in : undefined);
  if (inner) return objectsAt(inner, path);
  if (d.type === "union") return (d.options ?? []).flatMap((o) => objectsAt(o, path));
  if (path.length === 0) return d.type === "object" ? [d] : [];
  const [seg, ...rest] = path;
  if (d.type === "object") {
    const child = d.shape?.[String(seg)];
    return child ? objectsAt(child, rest) : [];
  }
  if (d.type === "array" && d.element) return objectsAt(d.element, rest);
  if (d.type === "record" && d.valueType) return objectsAt(d.valueType, rest);
  return [];
}

export function allowedKeys(schema: z.ZodType, path: readonly PathSegment[]): string[] {
  return [...new Set(objectsAt(schema, path).flatMap((d) => Object.keys(d.shape ?? {})))];
}

/** Levenshtein distance, small strings only. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, sub));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The allowed key closest to `key`, when within edit distance 2 (case ignored). */
export function suggestKey(key: string, allowed: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = 3;
  for (const k of allowed) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}
