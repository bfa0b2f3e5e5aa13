// `kvmstrap iso`: prepare an appliance ISO for a site (an answer embedded, unattended on boot).
// Placeholder until the remaster lands: it parses its options and says so.
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const ISO_HELP = `Usage: kvmstrap iso prepare [options]

Not built yet.

Options:
  -h, --help          Print this help
`;

export const ISO_OPTIONS = {
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function isoCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, ISO_OPTIONS);
  if (values.help) {
    process.stdout.write(ISO_HELP);
    return EXIT.ok;
  }
  throw new UsageError("kvmstrap iso: not built yet");
}
