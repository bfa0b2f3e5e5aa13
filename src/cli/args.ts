// Argument parsing on node:util parseArgs, with errors turned into UsageError so every command
// reports a bad flag the same way (exit 2, one line).
import { type ParseArgsConfig, parseArgs } from "node:util";
import { UsageError } from "./errors.js";

export function parse<T extends NonNullable<ParseArgsConfig["options"]>>(
  argv: string[],
  options: T,
  allowPositionals = true,
) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError(
      (e as Error).message.replace(/^TypeError \[\w+\]: /, "").split(". ")[0] ?? String(e),
    );
  }
}
