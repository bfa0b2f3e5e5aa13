// --nodes FILE: the machines the server knows, found by MAC, SMBIOS UUID, serial or asset tag, each
// with an optional answer file (checked with the project's answer loader when the server starts,
// so a broken answer is an exit-2 error with its file and line, not a node that fails at 3 a.m.)
// and whether it installs unattended.
//
//   nodes:
//     - mac: 52:54:00:12:34:56
//       name: rack1-n01
//       answer: answers/n01.yaml   # relative to this file
//       install: true              # kvmstrap.auto=install: no question asked on the node
//     - serial: CZ1234567
//       answer: answers/generic.yaml
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { isMap, isSeq, LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import { readAnswer } from "../app/prepare.js";
import { InputError } from "../core/errors.js";
import { MAC } from "../core/grammar.js";

export const MAX_NODES_BYTES = 4 * 1024 * 1024;

const entrySchema = z
  .strictObject({
    // The project's MAC grammar, with the hyphens of iPXE's ${mac:hexhyp} and of DMI labels allowed too.
    mac: z
      .string()
      .refine((m) => MAC.test(m.replaceAll("-", ":")), MAC.describe)
      .optional(),
    uuid: z
      .string()
      .regex(/^\{?[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\}?$/, "an SMBIOS UUID")
      .optional(),
    serial: z.string().min(1).max(200).optional(),
    asset: z.string().min(1).max(200).optional(),
    // Shown in iPXE scripts and on the console: no characters iPXE or a terminal would interpret.
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "letters, digits, '.', '-' or '_' (at most 64)")
      .optional(),
    answer: z.string().min(1).optional(),
    install: z.boolean().default(false),
  })
  .refine((e) => e.mac || e.uuid || e.serial || e.asset, {
    message: "a node needs at least one of mac, uuid, serial or asset",
  })
  .refine((e) => !e.install || e.answer, { message: "install: true needs an answer file" });

const fileSchema = z.strictObject({
  version: z.literal(1).optional(),
  nodes: z.array(entrySchema),
});

export interface NodeEntry {
  /** Where it is defined, for messages: FILE:LINE. */
  where: string;
  name?: string;
  mac?: string;
  uuid?: string;
  serial?: string;
  asset?: string;
  install: boolean;
  /** The answer file's path and text (served with the node's webhook set). */
  answer?: { file: string; text: string };
}

export interface NodeIds {
  mac: string;
  uuid?: string | undefined;
  serial?: string | undefined;
  asset?: string | undefined;
}

export const normalizeMac = (mac: string) => mac.toLowerCase().replaceAll("-", ":");
export const normalizeUuid = (uuid: string) => uuid.toLowerCase().replace(/^\{|\}$/g, "");

export class NodesConfig {
  private readonly by = {
    mac: new Map<string, NodeEntry>(),
    uuid: new Map<string, NodeEntry>(),
    serial: new Map<string, NodeEntry>(),
    asset: new Map<string, NodeEntry>(),
  };

  constructor(readonly entries: NodeEntry[] = []) {
    for (const e of entries) {
      if (e.mac) this.by.mac.set(e.mac, e);
      if (e.uuid) this.by.uuid.set(e.uuid, e);
      if (e.serial) this.by.serial.set(e.serial, e);
      if (e.asset) this.by.asset.set(e.asset, e);
    }
  }

  /** The node's entry by MAC, else UUID, else serial, else asset tag. */
  find(ids: NodeIds): NodeEntry | undefined {
    return (
      this.by.mac.get(normalizeMac(ids.mac)) ??
      (ids.uuid ? this.by.uuid.get(normalizeUuid(ids.uuid)) : undefined) ??
      (ids.serial ? this.by.serial.get(ids.serial.trim()) : undefined) ??
      (ids.asset ? this.by.asset.get(ids.asset.trim()) : undefined)
    );
  }
}

/** Reads and checks a nodes file and every answer it names; one InputError lists every problem. */
export async function loadNodesFile(file: string): Promise<NodesConfig> {
  const fail = (why: string): never => {
    throw new InputError(`${file}: ${why}`);
  };
  let text = "";
  try {
    const st = await stat(file);
    if (!st.isFile()) fail("not a regular file");
    if (st.size > MAX_NODES_BYTES) fail(`${st.size} bytes is too large (limit ${MAX_NODES_BYTES})`);
    text = await readFile(file, "utf8");
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    fail(code === "ENOENT" ? "no such file" : `cannot read (${code ?? (e as Error).message})`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: true, lineCounter: lines });
  const at = (offset: number | undefined) => {
    if (offset === undefined) return file;
    const p = lines.linePos(offset);
    return `${file}:${p.line}:${p.col}`;
  };
  const first = doc.errors[0];
  if (first) throw new InputError(`${at(first.pos[0])}: YAML syntax error: ${first.message.split("\n")[0]}`);
  const parsed = fileSchema.safeParse(doc.toJS({ maxAliasCount: 100 }) ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const node = doc.getIn(i.path as (string | number)[], true) as { range?: [number] } | undefined;
      const key = i.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
      return `${at(node?.range?.[0])}: ${key.replace(/^\./, "") || "(top level)"}: ${i.message}`;
    });
    throw new InputError(problems.join("\n"));
  }
  const seq = doc.get("nodes", true);
  const itemAt = (i: number) => {
    const item = isSeq(seq) ? seq.items[i] : undefined;
    return at(isMap(item) ? item.range?.[0] : undefined);
  };
  const problems: string[] = [];
  const seen = new Map<string, string>();
  const entries: NodeEntry[] = [];
  for (const [i, raw] of parsed.data.nodes.entries()) {
    const where = itemAt(i);
    const entry: NodeEntry = { where, install: raw.install };
    if (raw.name) entry.name = raw.name;
    if (raw.mac) entry.mac = normalizeMac(raw.mac);
    if (raw.uuid) entry.uuid = normalizeUuid(raw.uuid);
    if (raw.serial) entry.serial = raw.serial.trim();
    if (raw.asset) entry.asset = raw.asset.trim();
    for (const key of ["mac", "uuid", "serial", "asset"] as const) {
      const v = entry[key];
      if (!v) continue;
      const other = seen.get(`${key}=${v}`);
      if (other) problems.push(`${where}: ${key} ${v} is already used by the node at ${other}`);
      else seen.set(`${key}=${v}`, where);
    }
    if (raw.answer) {
      const answerFile = path.resolve(path.dirname(file), raw.answer);
      try {
        // The project's answer loader: schema, keys, file:line:col on every problem.
        await readAnswer(answerFile);
        entry.answer = { file: answerFile, text: await readFile(answerFile, "utf8") };
      } catch (e) {
        problems.push(`${where}: answer ${raw.answer}:\n  ${(e as Error).message.split("\n").join("\n  ")}`);
      }
    }
    entries.push(entry);
  }
  if (problems.length) throw new InputError(problems.join("\n"));
  return new NodesConfig(entries);
}
