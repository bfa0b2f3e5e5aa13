// Reading kvmstrap's own wire formats back (a plan file, a journal, an event line): parsed with the
// schema they were written from, and a problem said in one line naming the file and the field.
import type { z } from "zod";
import { InputError } from "../core/errors.js";

/** "actions[2].path: must be an absolute path" for the first issue of a failed parse. */
export function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid";
  const where = issue.path
    .map((p, i) => (typeof p === "number" ? `[${p}]` : `${i ? "." : ""}${String(p)}`))
    .join("");
  return where ? `${where}: ${issue.message}` : issue.message;
}

/** data parsed with schema, or an InputError "<file>: <field>: <problem>". */
export function parseWire<S extends z.ZodType>(schema: S, data: unknown, file: string): z.output<S> {
  const r = schema.safeParse(data);
  if (!r.success) throw new InputError(`${file}: ${firstIssue(r.error)}`);
  return r.data;
}
