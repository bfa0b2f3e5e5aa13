// `kvmstrap plan FILE`: what applying the answer file would change on this host, as a diff, before
// anything changes. --json prints the actions (what `kvmstrap apply --plan` takes).
import { prepareFile } from "../app/prepare.js";
import { renderPlanText } from "../plan/diff.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const PLAN_HELP = `Usage: kvmstrap plan FILE [options]

Show what applying the answer file FILE would change, as a diff against the host as it is now:
each file with its unified diff, each command and sysfs write, what needs a reboot or a network
confirmation, and what was refused with the reason. Nothing is changed.

Options:
  --root DIR     Plan for the machine whose root is DIR (detection and config files read there)
  --json         Print the plan (actions with their inverses) as JSON
  -h, --help     Print this help

Exit: 0 a plan with nothing refused, 1 something refused, 2 a bad answer file or usage.
`;

export const PLAN_OPTIONS = {
  root: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function planCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, PLAN_OPTIONS);
  if (values.help) {
    process.stdout.write(PLAN_HELP);
    return EXIT.ok;
  }
  const [file, extra] = positionals;
  if (!file) throw new UsageError("plan needs an answer file: kvmstrap plan answer.yaml");
  if (extra) throw new UsageError(`unexpected argument "${extra}"`);
  const { plan } = await prepareFile(file, { root: values.root ?? "/" });
  process.stdout.write(values.json ? `${JSON.stringify(plan, null, 2)}\n` : renderPlanText(plan));
  return plan.refusals.length ? EXIT.failed : EXIT.ok;
}
