// `kvmstrap serve`: not built yet (placeholder registered so the command table has one owner per file).
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const SERVE_HELP = `Usage: kvmstrap serve [options]

Not built yet.

Options:
  -h, --help     Print this help
`;

export const SERVE_OPTIONS = {
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function serveCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, SERVE_OPTIONS);
  if (values.help) {
    process.stdout.write(SERVE_HELP);
    return EXIT.ok;
  }
  throw new UsageError("kvmstrap serve is not built yet");
}
