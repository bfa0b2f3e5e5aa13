// `kvmstrap tui` (and `kvmstrap` alone on a terminal): the interactive installer. It only starts the
// Ink app; detection, checks, the answer schema, the plan and apply are the engine's.
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const TUI_HELP = `Usage: kvmstrap tui [options]

The interactive installer: inventory, readiness checks, network, SR-IOV, passthrough, storage,
then the plan as a diff, the answer file (s saves it) and a live apply (a dry run unless root).

Options:
  --root DIR        Explore the machine whose root is DIR (demo mode when not /)
  --snapshot FILE   Explore a captured machine (kvmstrap snapshot FILE.tar.gz): demo mode
  --answer FILE     Pre-fill every screen from this answer file
  -h, --help        Print this help

Needs a terminal. Without one, use "kvmstrap detect" and "kvmstrap apply FILE".
`;

export const NO_TTY = `kvmstrap: the installer needs a terminal (stdin and stdout must be a TTY).
Without one:
  kvmstrap detect              inventory and readiness checks (--json for scripts)
  kvmstrap answer validate F   check an answer file against this machine
  kvmstrap apply F --yes       apply an answer file unattended
`;

export const TUI_OPTIONS = {
  root: { type: "string" },
  snapshot: { type: "string" },
  answer: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function tuiCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, TUI_OPTIONS);
  if (values.help) {
    process.stdout.write(TUI_HELP);
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`tui takes no arguments (got "${positionals[0]}")`);
  if (values.root && values.snapshot) throw new UsageError("--root and --snapshot cannot be combined");
  if (!process.stdin.isTTY || !process.stdout.isTTY) {
    process.stderr.write(NO_TTY);
    return EXIT.usage;
  }
  // The TUI and detection come from one bundle (src/tui/entry.ts): loading it is most of the time
  // to the first screen, and detection starts once that screen is drawn (runTui). The machine and
  // the answer file are opened through the unbundled modules, so their errors are the classes
  // main() maps to exit codes.
  const [ui, { withMachine }] = await Promise.all([loadUi(), import("../app/machine.js")]);
  return withMachine(values, async (machine) => {
    const answer = values.answer
      ? await (await import("../answer/load.js")).loadAnswerFile(values.answer)
      : null;
    const session = ui.makeSession({ machine, answerFile: values.answer ?? null });
    return ui.runTui({ report: () => ui.detectMachine(machine), session, initial: ui.draftFrom(answer) });
  });
}

type TuiModule = typeof import("../tui/entry.js");

/** The bundled TUI (fast to load) when the build made it, else the modules themselves. */
async function loadUi(): Promise<TuiModule> {
  const bundle = new URL("../tui-bundle.mjs", import.meta.url).href;
  try {
    return (await import(bundle)) as TuiModule;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ERR_MODULE_NOT_FOUND") throw e;
    return import("../tui/entry.js");
  }
}
