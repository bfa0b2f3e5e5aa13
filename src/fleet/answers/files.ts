// The fleet directory an operator keeps in git (src/fleet/README.md): site.yaml, racks/<rack>.yaml,
// roles/<role>.yaml, nodes/<node>.yaml and assign.yaml. Every file is read with the answer module's
// bounded reader and YAML parser, so a fleet file's problems read like an answer file's
// (file:line:col: key: message). Every problem of every file is collected before failing, and a bad
// fleet is one FleetError (an InputError: exit 2, no stack trace).
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import {
  AnswerError,
  type AnswerIssue,
  formatIssue,
  parseYamlMapping,
  readYamlText,
} from "../../answer/load.js";
import { formatPath, type PathSegment, type SourceMap } from "../../answer/positions.js";
import { answerSchema } from "../../answer/schema.js";
import { allowedKeys, suggestKey } from "../../answer/schema-keys.js";
import { InputError } from "../../core/errors.js";
import { HOSTNAME, OBJECT_NAME } from "../../core/grammar.js";
import { type AssignRules, parseAssign } from "./assign.js";

/** One parsed fleet file; `file` is relative to the fleet directory. */
export interface FleetFile {
  file: string;
  data: Record<string, unknown>;
  map: SourceMap;
}

export interface Fleet {
  /** The fleet directory (absolute): relative paths in answers (a VM's template) start here. */
  dir: string;
  site: FleetFile;
  racks: ReadonlyMap<string, FleetFile>;
  roles: ReadonlyMap<string, FleetFile>;
  nodes: ReadonlyMap<string, FleetFile>;
  assign: AssignRules;
}

export class FleetError extends InputError {
  override name = "FleetError";
  constructor(readonly issues: AnswerIssue[]) {
    super(issues.map(formatIssue).join("\n"));
  }
}

/** At most this many layer files per folder: a fleet directory is read whole for every decision. */
export const MAX_FLEET_FILES = 10_000;

const FOLDERS = [
  { dir: "racks", grammar: OBJECT_NAME, what: "rack" },
  { dir: "roles", grammar: OBJECT_NAME, what: "role" },
  { dir: "nodes", grammar: HOSTNAME, what: "node" },
] as const;

const issueAt = (file: string, message: string, p: Partial<AnswerIssue> = {}): AnswerIssue => ({
  file,
  line: null,
  column: null,
  path: "",
  message,
  ...p,
});

/** Parses a fleet from its files' texts (relative path -> text). Pure apart from none: no I/O. */
export function parseFleet(dir: string, texts: ReadonlyMap<string, string>): Fleet {
  const issues: AnswerIssue[] = [];
  const parse = (file: string): FleetFile | null => {
    const text = texts.get(file);
    if (text === undefined) return null;
    try {
      const { data, map } = parseYamlMapping(text, file);
      return { file, data, map };
    } catch (e) {
      if (!(e instanceof AnswerError)) throw e;
      issues.push(...e.issues);
      return null;
    }
  };
  const layer = (file: string): FleetFile | null => {
    const f = parse(file);
    if (f) issues.push(...layerIssues(f));
    return f;
  };

  if (!texts.has("site.yaml"))
    issues.push(issueAt("site.yaml", "no such file: a fleet directory starts with site.yaml (version: 1)"));
  const site = layer("site.yaml");
  const folders = FOLDERS.map(({ dir: folder, grammar, what }) => {
    const out = new Map<string, FleetFile>();
    for (const file of [...texts.keys()].filter((f) => f.startsWith(`${folder}/`)).sort()) {
      const base = file.slice(folder.length + 1);
      const name = base.replace(/\.yaml$/, "");
      if (base.includes("/") || !base.endsWith(".yaml") || !grammar.test(name)) {
        issues.push(
          issueAt(file, `not a ${what} file: name it ${folder}/NAME.yaml, NAME being ${grammar.describe}`),
        );
        continue;
      }
      const f = layer(file);
      if (f) out.set(name, f);
    }
    return out;
  });
  const [racks, roles, nodes] = folders as [
    Map<string, FleetFile>,
    Map<string, FleetFile>,
    Map<string, FleetFile>,
  ];
  const assignFile = parse("assign.yaml");
  let assign: AssignRules = { file: "assign.yaml", rules: [] };
  if (assignFile) {
    try {
      assign = parseAssign(assignFile);
      for (const r of assign.rules)
        for (const role of r.roles)
          if (!roles.has(role.name))
            issues.push(
              issueAt("assign.yaml", `no roles/${role.name}.yaml for role "${role.name}"`, {
                line: role.line,
                column: role.column,
                path: role.path,
              }),
            );
    } catch (e) {
      if (!(e instanceof AnswerError)) throw e;
      issues.push(...e.issues);
    }
  }
  if (issues.length || !site) throw new FleetError(issues);
  return { dir, site, racks, roles, nodes, assign };
}

/** A layer is a partial answer: its keys are the answer's (checked here), its version 1 if it says one. */
function layerIssues(f: FleetFile): AnswerIssue[] {
  const out: AnswerIssue[] = [];
  const version = f.data.version;
  if (version !== undefined && version !== 1) {
    const pos = f.map.locate(["version"]);
    out.push(
      issueAt(f.file, "unsupported version: this kvmstrap reads fleet files with version: 1", {
        ...pos,
        path: "version",
      }),
    );
  }
  const walk = (node: unknown, at: PathSegment[]): void => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => {
        walk(item, [...at, i]);
      });
      return;
    }
    if (node === null || typeof node !== "object") return;
    const allowed = allowedKeys(answerSchema, at);
    for (const [key, value] of Object.entries(node)) {
      if (allowed.length && !allowed.includes(key)) {
        const suggestion = suggestKey(key, allowed);
        const hint = suggestion ? `; did you mean "${suggestion}"?` : ` (allowed: ${allowed.join(", ")})`;
        const pos = f.map.locate([...at, key], true);
        out.push(issueAt(f.file, `unknown key "${key}"${hint}`, { ...pos, path: formatPath([...at, key]) }));
      } else if (allowed.length) {
        walk(value, [...at, key]);
      }
    }
  };
  walk(f.data, []);
  return out;
}

/** Reads a fleet directory: site.yaml, assign.yaml and the *.yaml files of racks/, roles/ and nodes/. */
export async function readFleetDir(dir: string): Promise<Fleet> {
  const root = path.resolve(dir);
  try {
    if (!(await stat(root)).isDirectory()) throw new InputError(`--fleet ${dir}: not a directory`);
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(
      `--fleet ${dir}: ${code === "ENOENT" ? "no such directory" : `cannot read (${code})`}`,
    );
  }
  const files = ["site.yaml", "assign.yaml"];
  for (const { dir: folder } of FOLDERS) {
    let names: string[] = [];
    try {
      names = (await readdir(path.join(root, folder))).filter((n) => !n.startsWith("."));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    if (names.length > MAX_FLEET_FILES)
      throw new InputError(
        `--fleet ${dir}: ${folder}/ holds ${names.length} files (at most ${MAX_FLEET_FILES})`,
      );
    files.push(...names.map((n) => `${folder}/${n}`));
  }
  const texts = new Map<string, string>();
  const issues: AnswerIssue[] = [];
  await Promise.all(
    files.map(async (file) => {
      try {
        texts.set(file, await readYamlText(path.join(root, file)));
      } catch (e) {
        if (!(e instanceof AnswerError)) throw e;
        const absent = e.issues[0]?.message === "no such file";
        if (!absent || file === "site.yaml")
          issues.push(
            ...e.issues.map((i) => ({
              ...i,
              file,
              message: absent
                ? `${i.message}: a fleet directory starts with site.yaml (version: 1)`
                : i.message,
            })),
          );
      }
    }),
  );
  if (issues.length) throw new FleetError(issues);
  return parseFleet(root, texts);
}
