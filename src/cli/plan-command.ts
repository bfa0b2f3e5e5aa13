// `kvmstrap plan FILE`: what applying the answer file would change on this host, as a diff, before
// anything changes. --json prints the actions (what `kvmstrap apply --plan` takes).
import type { Answer } from "../answer/schema.js";
import { detectHost } from "../detect/index.js";
import type { HostReport } from "../detect/types.js";
import { ExecaRunner } from "../host/commands.js";
import { RootedHostFs } from "../host/fs.js";
import type { Plan } from "../plan/actions.js";
import { renderPlanText } from "../plan/diff.js";
import { buildPlan, planFiles } from "../plan/index.js";
import { parse } from "./args.js";
import { assertMachineRoot } from "./detect.js";
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

/** Detection, the answer file and the current content of every file the plan touches. */
export async function preparePlan(
  file: string,
  root: string,
): Promise<{ report: HostReport; answer: Answer; plan: Plan }> {
  const { loadAnswerFile } = await import("../answer/load.js");
  await assertMachineRoot(root);
  const fs = new RootedHostFs(root);
  const [answer, report] = await Promise.all([
    loadAnswerFile(file),
    detectHost({ fs, runner: new ExecaRunner(), probe: { mode: "auto" } }),
  ]);
  const paths = planFiles(report, answer);
  const texts = await Promise.all(paths.map((p) => fs.readText(p)));
  const current = new Map(paths.map((p, i) => [p, texts[i] ?? null]));
  return { report, answer, plan: buildPlan(report, answer, current) };
}

export async function planCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    root: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    process.stdout.write(PLAN_HELP);
    return EXIT.ok;
  }
  const [file, extra] = positionals;
  if (!file) throw new UsageError("plan needs an answer file: kvmstrap plan answer.yaml");
  if (extra) throw new UsageError(`unexpected argument "${extra}"`);
  const { plan } = await preparePlan(file, values.root ?? "/");
  process.stdout.write(values.json ? `${JSON.stringify(plan, null, 2)}\n` : renderPlanText(plan));
  return plan.refusals.length ? EXIT.failed : EXIT.ok;
}
