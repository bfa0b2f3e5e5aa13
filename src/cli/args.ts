// Argument parsing on node:util parseArgs, with errors turned into UsageError so every command
// reports a bad flag the same way (exit 2, one line).
import { type ParseArgsConfig, parseArgs } from "node:util";
import { UsageError } from "./errors.js";

/** A command's options: the one table its parser uses and its help text is checked against. */
export type OptionTable = NonNullable<ParseArgsConfig["options"]>;

export function parse<T extends OptionTable>(argv: string[], options: T, allowPositionals = true) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError(
      (e as Error).message.replace(/^TypeError \[\w+\]: /, "").split(". ")[0] ?? String(e),
    );
  }
}

/**
 * The long options a help text lists (lines such as "  --json   ..." or "  -h, --help   ..."), so a
 * test can hold every command's help to its option table.
 */
export function helpOptionNames(help: string): string[] {
  const names: string[] = [];
  for (const line of help.split("\n")) {
    const spec = /^ {2,}(-\w, )?(--[\w-]+(?: [A-Z][\w.|-]*)?(?:, --[\w-]+(?: [A-Z][\w.|-]*)?)*)/.exec(line);
    if (!spec?.[2]) continue;
    for (const m of spec[2].matchAll(/--([\w-]+)/g)) if (m[1]) names.push(m[1]);
  }
  return [...new Set(names)].sort();
}
