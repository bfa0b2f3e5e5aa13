// Loading an answer file: bytes -> YAML document -> schema-checked Answer. Every failure is an
// AnswerError listing issues as file:line:col: key.path: message (the format compilers use, so editors
// jump to it); there is never a stack trace, and nothing past the first problem of a broken YAML file.
import { readFile, stat } from "node:fs/promises";
import { LineCounter, parseDocument } from "yaml";
import type { z } from "zod";
import { InputError } from "../core/errors.js";
import { formatPath, type PathSegment, type Position, SourceMap } from "./positions.js";
import { type Answer, answerSchema } from "./schema.js";
import { allowedKeys, suggestKey } from "./schema-keys.js";

export const MAX_ANSWER_BYTES = 1024 * 1024;

export interface AnswerIssue {
  file: string;
  line: number | null;
  column: number | null;
  /** Key path in the file, e.g. network.bridges[0].uplink.name; "" for the file as a whole. */
  path: string;
  message: string;
}

export function formatIssue(i: AnswerIssue): string {
  const where = i.line !== null ? `${i.file}:${i.line}:${i.column ?? 1}` : i.file;
  return `${where}: ${i.path ? `${i.path}: ` : ""}${i.message}`;
}

/** A malformed answer file. Extends InputError, so the CLI exits 2 and prints no stack trace. */
export class AnswerError extends InputError {
  override name = "AnswerError";
  constructor(readonly issues: AnswerIssue[]) {
    super(issues.map(formatIssue).join("\n"));
  }
}

/** A parsed answer file, with the source map to point later (semantic) issues at their lines. */
export interface AnswerSource {
  file: string;
  answer: Answer;
  map: SourceMap;
}

export async function loadAnswerFile(file: string): Promise<Answer> {
  return (await readAnswerSource(file)).answer;
}

export function parseAnswerText(text: string, fileName: string): Answer {
  return parseAnswerSource(text, fileName).answer;
}

export async function readAnswerSource(file: string): Promise<AnswerSource> {
  return parseAnswerSource(await readYamlText(file), file);
}

/**
 * The text of a YAML file of the answer family (an answer, a fleet's layer or assign.yaml): a
 * regular file of at most MAX_ANSWER_BYTES of UTF-8, or an AnswerError saying why not.
 */
export async function readYamlText(file: string): Promise<string> {
  const fail = (message: string): never => {
    throw new AnswerError([{ file, line: null, column: null, path: "", message }]);
  };
  let bytes: Buffer;
  try {
    const st = await stat(file);
    if (!st.isFile()) fail("not a regular file");
    if (st.size > MAX_ANSWER_BYTES) fail(tooLarge(st.size));
    bytes = await readFile(file);
  } catch (e) {
    if (e instanceof AnswerError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    return fail(code === "ENOENT" ? "no such file" : `cannot read (${code ?? (e as Error).message})`);
  }
  if (bytes.length > MAX_ANSWER_BYTES) fail(tooLarge(bytes.length));
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return fail("binary content (not UTF-8 text), not a YAML answer file");
  }
  return text;
}

const tooLarge = (n: number) =>
  `${n} bytes is too large for an answer file (the limit is ${MAX_ANSWER_BYTES} bytes); refused unread`;

export function parseAnswerSource(text: string, file: string): AnswerSource {
  const { data, map } = parseYamlMapping(text, file);
  return { file, answer: checkSchema(answerSchema, data, file, map), map };
}

/** A YAML file of the answer family parsed to a top-level mapping, with its source map. */
export function parseYamlMapping(
  text: string,
  file: string,
): { data: Record<string, unknown>; map: SourceMap } {
  const whole = (message: string, line: number | null = null, column: number | null = null): AnswerError =>
    new AnswerError([{ file, line, column, path: "", message }]);
  const size = Buffer.byteLength(text);
  if (size > MAX_ANSWER_BYTES) throw whole(tooLarge(size));
  const nul = text.indexOf("\u0000");
  if (nul >= 0) {
    const before = text.slice(0, nul);
    const line = before.split("\n").length;
    throw whole(
      `binary content (a NUL byte at offset ${nul}), not a YAML answer file`,
      line,
      nul - before.lastIndexOf("\n"),
    );
  }

  const lines = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, lineCounter: lines });
  const map = new SourceMap(doc, lines);
  const first = doc.errors[0];
  if (first) {
    const pos = map.at(first.pos[0]);
    const message = (first.message.split("\n")[0] ?? first.message).replace(
      / at line \d+, column \d+:?$/,
      "",
    );
    const key = first.code === "DUPLICATE_KEY" ? "duplicate key: " : "YAML syntax error: ";
    throw new AnswerError([
      { file, ...pos, path: formatPath(map.pathAt(first.pos[0])), message: `${key}${lowerFirst(message)}` },
    ]);
  }
  if (doc.contents === null) throw whole("the file is empty: an answer file starts with `version: 1`");

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw whole(`cannot be expanded: ${(e as Error).message}`);
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    const what = Array.isArray(data) ? "a list" : `a ${data === null ? "null" : typeof data} value`;
    const pos = map.locate([]);
    throw whole(
      `the top level must be a mapping of keys (version, host, network, ...), not ${what}`,
      pos?.line ?? null,
      pos?.column ?? null,
    );
  }

  return { data: data as Record<string, unknown>, map };
}

/** Where a key path sits: one file's SourceMap, or (the fleet's layered answers) one file per key. */
export interface Locator {
  locate(path: readonly PathSegment[], key?: boolean): (Position & { file?: string }) | null;
}

/**
 * Schema-checks data already parsed from YAML against one of the answer module's schemas; every
 * problem is an AnswerError issue located by `locator` (its file when it names one, else `file`).
 */
export function checkSchema<S extends z.ZodType>(
  schema: S,
  data: unknown,
  file: string,
  locator: Locator,
): z.infer<S> {
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  const issues = flattenIssues(result.error.issues, []).flatMap((i) =>
    toAnswerIssues(i, file, locator, data, schema),
  );
  throw new AnswerError(issues);
}

type ZodIssue = z.core.$ZodIssue;

/** Unions report one issue list per branch: keep the branch that got furthest. */
function flattenIssues(issues: readonly ZodIssue[], base: PathSegment[]): ZodIssue[] {
  return issues.flatMap((issue) => {
    const path = [...base, ...(issue.path as PathSegment[])];
    if (issue.code !== "invalid_union" || !issue.errors.length) return [{ ...issue, path }];
    const score = (branch: readonly ZodIssue[]) =>
      branch.some((i) => i.code === "invalid_type" && i.path.length === 0) ? 1000 : branch.length;
    const best = [...issue.errors].sort((a, b) => score(a) - score(b))[0] ?? [];
    // Every branch failed on its type: one message naming the union is clearer than the first branch's.
    if (score(best) >= 1000) return [{ ...issue, path, message: "Invalid input: wrong type" }];
    return flattenIssues(best, path);
  });
}

function toAnswerIssues(
  issue: ZodIssue,
  file: string,
  map: Locator,
  data: unknown,
  schema: z.ZodType,
): AnswerIssue[] {
  const path = issue.path as PathSegment[];
  if (issue.code === "unrecognized_keys") {
    const allowed = allowedKeys(schema, path);
    return issue.keys.map((key) => {
      const pos = map.locate([...path, key], true);
      const suggestion = suggestKey(key, allowed);
      const hint = suggestion
        ? `; did you mean "${suggestion}"?`
        : allowed.length
          ? ` (allowed: ${allowed.join(", ")})`
          : "";
      return {
        file: pos?.file ?? file,
        line: pos?.line ?? null,
        column: pos?.column ?? null,
        path: formatPath([...path, key]),
        message: `unknown key "${key}"${hint}`,
      };
    });
  }
  const pos = map.locate(path);
  return [
    {
      file: pos?.file ?? file,
      line: pos?.line ?? null,
      column: pos?.column ?? null,
      path: formatPath(path),
      message: describe(issue, data),
    },
  ];
}

/** True when the last key of `path` is absent from its (present) parent object. */
function isMissing(data: unknown, path: readonly PropertyKey[]): boolean {
  let node = data;
  for (const seg of path.slice(0, -1)) {
    if (node === null || typeof node !== "object") return false;
    node = (node as Record<PropertyKey, unknown>)[seg];
  }
  const last = path[path.length - 1];
  return (
    last !== undefined && node !== null && typeof node === "object" && !Array.isArray(node) && !(last in node)
  );
}

function describe(issue: ZodIssue, data: unknown): string {
  const last = issue.path[issue.path.length - 1];
  if (isMissing(data, issue.path)) return `missing required key "${String(last)}"`;
  if (issue.code === "invalid_value" && issue.path.length === 1 && last === "version") {
    return `unsupported version: this kvmstrap reads answer files with version: 1`;
  }
  if (issue.code === "invalid_format" && issue.format === "regex") {
    return issue.message.startsWith("Invalid") ? issue.message : `expected ${issue.message}`;
  }
  return lowerFirst(issue.message.replace(/^Invalid input: /, ""));
}

const lowerFirst = (s: string) => (s ? s.charAt(0).toLowerCase() + s.slice(1) : s);
