// `kvmstrap verify`: not built yet (placeholder registered so the command table has one owner per file).
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const VERIFY_HELP = `Usage: kvmstrap verify [options]

Not built yet.

Options:
  -h, --help     Print this help
`;

export const VERIFY_OPTIONS = {
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function verifyCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, VERIFY_OPTIONS);
  if (values.help) {
    process.stdout.write(VERIFY_HELP);
    return EXIT.ok;
  }
  throw new UsageError("kvmstrap verify is not built yet");
}
