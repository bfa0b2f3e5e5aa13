// `kvmstrap fleet`: the fleet of a running boot server (nodes, answers, rollouts).
// Placeholder until the fleet lands: it parses its options and says so.
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const FLEET_HELP = `Usage: kvmstrap fleet <command> [options]

Not built yet.

Options:
  -h, --help          Print this help
`;

export const FLEET_OPTIONS = {
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function fleetCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, FLEET_OPTIONS);
  if (values.help) {
    process.stdout.write(FLEET_HELP);
    return EXIT.ok;
  }
  throw new UsageError("kvmstrap fleet: not built yet");
}
