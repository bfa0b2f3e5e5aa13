// Where a key path sits in the YAML source: answer-file errors point at file:line:column whether
// they come from the YAML parser, the schema or the semantic checks against the hardware.
import { type Document, isMap, isPair, isScalar, isSeq, type LineCounter, type Node } from "yaml";

export type PathSegment = string | number;

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** ["network", "bridges", 0, "uplink"] -> network.bridges[0].uplink; odd keys as ["cpu.virt"]. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (typeof seg === "string" && PLAIN_KEY.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

/** The inverse of formatPath. */
export function parsePath(text: string): PathSegment[] {
  const out: PathSegment[] = [];
  const re = /([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/g;
  for (const m of text.matchAll(re)) {
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else if (m[3] !== undefined) out.push(JSON.parse(m[3]) as string);
  }
  return out;
}

export interface Position {
  line: number;
  column: number;
}

/** Locates paths and offsets in one parsed answer document. */
export class SourceMap {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  at(offset: number): Position {
    const { line, col } = this.lines.linePos(offset);
    return { line, column: col };
  }

  /**
   * The position of the deepest node on `path` that exists: the value itself, or (for a missing key)
   * the mapping that should hold it. With `key`, the position of the key rather than its value.
   */
  locate(path: readonly PathSegment[], key = false): Position | null {
    let node: unknown = this.doc.contents;
    let best: Position | null = start(node) !== null ? this.at(start(node) ?? 0) : null;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) return best;
        const keyStart = start(pair.key);
        if (last && key && keyStart !== null) return this.at(keyStart);
        node = pair.value;
        const s = start(node) ?? keyStart;
        if (s !== null) best = this.at(s);
      } else if (isSeq(node) && typeof seg === "number") {
        node = node.items[seg];
        const s = start(node);
        if (s === null) return best;
        best = this.at(s);
      } else {
        return best;
      }
    }
    return best;
  }

  /** The key path of the deepest node that contains `offset` (for YAML errors). */
  pathAt(offset: number): PathSegment[] {
    const path: PathSegment[] = [];
    let node: unknown = this.doc.contents;
    for (;;) {
      if (isMap(node)) {
        const pair = node.items.find((p) => contains(p.key, offset) || contains(p.value, offset));
        if (!pair || !isScalar(pair.key)) return path;
        path.push(String(pair.key.value));
        if (contains(pair.key, offset)) return path;
        node = pair.value;
      } else if (isSeq(node)) {
        const i = node.items.findIndex((n) => contains(n, offset));
        if (i < 0) return path;
        path.push(i);
        node = node.items[i];
      } else {
        return path;
      }
    }
  }
}

function start(node: unknown): number | null {
  if (isPair(node)) return start(node.key);
  const range = (node as Node | null | undefined)?.range;
  return range ? range[0] : null;
}

function contains(node: unknown, offset: number): boolean {
  const range = (node as Node | null | undefined)?.range;
  return range ? offset >= range[0] && offset < range[2] : false;
}
