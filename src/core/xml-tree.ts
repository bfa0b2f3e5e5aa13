// XML read in one shape whatever a document holds once or many times: every element a list, every
// attribute a string under "@name", text kept as written (never turned into numbers). The readers of
// libvirt's XML (domains, capabilities) and of pacemaker's crm_mon share this one configuration, so a
// leaf reads the same everywhere: without attributes it is its text itself, with attributes its text
// is under "#text".
import { XMLParser, XMLValidator } from "fast-xml-parser";

export type XmlNode = { [key: string]: XmlNode[] | string | undefined };

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@",
  isArray: (_name, _path, _leaf, isAttribute) => !isAttribute,
  parseAttributeValue: false,
  parseTagValue: false,
  textNodeName: "#text",
  // libvirt and pacemaker write no entities beyond the five predefined ones; no DOCTYPE entity is expanded.
  processEntities: true,
});

export function parseXmlTree(xml: string): XmlNode {
  return parser.parse(xml) as XmlNode;
}

/**
 * parseXmlTree for XML that must be whole before anything is decided from it (the parser itself reads
 * a truncated or unbalanced document without complaint): throws "line N: what is wrong" otherwise.
 */
export function parseWellFormedXmlTree(xml: string): XmlNode {
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw new Error(`line ${valid.err.line}: ${valid.err.msg}`);
  return parseXmlTree(xml);
}

/** The elements named `key` under `n` (a leaf without attributes comes back as its text: textOf reads both). */
export function children(n: XmlNode | string | undefined, key: string): XmlNode[] {
  const v = typeof n === "object" ? n[key] : undefined;
  return Array.isArray(v) ? v : [];
}

export function child(n: XmlNode | string | undefined, key: string): XmlNode | undefined {
  return children(n, key)[0];
}

/**
 * The elements named `key` at any depth under `n`, each group of siblings in document order: for a
 * reader whose element libvirt puts in one place (<graphics>, <vcpupin>) and that is handed either the
 * whole document or only the part around it.
 */
export function descendants(n: XmlNode | string | undefined, key: string): XmlNode[] {
  const out: XmlNode[] = [];
  const walk = (m: XmlNode | string | undefined): void => {
    if (typeof m !== "object") return;
    for (const [k, v] of Object.entries(m)) {
      if (!Array.isArray(v)) continue; // attributes and text
      for (const c of v) {
        if (k === key) out.push(c);
        walk(c);
      }
    }
  };
  walk(n);
  return out;
}

export function attribute(n: XmlNode | string | undefined, key: string): string | null {
  const v = typeof n === "object" ? n[`@${key}`] : undefined;
  return typeof v === "string" ? v : null;
}

export function textOf(n: XmlNode | string | undefined): string | null {
  if (typeof n === "string") return n.trim();
  const t = n?.["#text"];
  return typeof t === "string" ? t.trim() : null;
}
