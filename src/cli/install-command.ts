// `kvmstrap install`: not built yet (placeholder registered so the command table has one owner per file).
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const INSTALL_HELP = `Usage: kvmstrap install [options]

Not built yet.

Options:
  -h, --help     Print this help
`;

export const INSTALL_OPTIONS = {
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function installCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, INSTALL_OPTIONS);
  if (values.help) {
    process.stdout.write(INSTALL_HELP);
    return EXIT.ok;
  }
  throw new UsageError("kvmstrap install is not built yet");
}
