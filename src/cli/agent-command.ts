// `kvmstrap agent`: the appliance's boot agent (src/app/node-agent.ts), run once per boot by
// kvmstrap-agent.service on the live system. Status lines go to stdout (the unit puts them on the
// consoles), details to stderr (the journal).
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { AGENT_ANSWER_FILE, commandInstaller, runAgent, SYSTEM_POWER } from "../app/node-agent.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, InputError, UsageError } from "./errors.js";

export const AGENT_HELP = `Usage: kvmstrap agent [options]

The appliance's boot agent. Reads the kernel command line, reports appliance-up to the boot
server, finds the answer, reports answer-fetched, and runs "kvmstrap install --answer FILE
--yes" only when kvmstrap.auto=install is given AND an answer was found. Events also go to
the answer's report.webhook. Tokens, secret headers and the answer's secret fields
(password hashes) are scrubbed from every line and event the agent sends.

Kernel command line parameters:
  kvmstrap.server=URL       the boot server (events go to it)
  kvmstrap.node=MAC         this node's id at the boot server
  kvmstrap.token=TOKEN      bearer token for the boot server (never logged)
  kvmstrap.answer=SOURCE    http(s)://URL, file:///path or label:FSLABEL[/path]; without it,
                            the answer embedded in the image, if any
  kvmstrap.answer-sha256=HEX
                            the sha256 the answer must have
  kvmstrap.answer-fingerprint=sha256:AB:CD:...
                            pins an https answer server's certificate (self-signed is fine;
                            colons and prefix optional); without it, the usual CA checks
  kvmstrap.auto=install     the go-ahead for the unattended install
  kvmstrap.syslog=udp://HOST[:PORT]   (or tcp://; port 514 by default)
                            also send every agent and install line to this syslog
                            receiver (RFC 5424, util-linux logger), secrets scrubbed
  kvmstrap.after=reboot|poweroff|stay
                            after a successful install: sync and reboot (default), power
                            off, or stay on the live system. A failed install never
                            reboots: its reason stays on the consoles.

Options:
  --cmdline FILE      Read the kernel command line from FILE (default /proc/cmdline)
  --answer-out FILE   Keep the answer found in FILE, mode 0600 (default ${AGENT_ANSWER_FILE})
  -h, --help          Print this help

Exit codes: 0 done (or nothing to do), 1 the install (or the reboot after it) failed,
2 the answer or a kvmstrap.* parameter could not be used.
`;

export const AGENT_OPTIONS = {
  cmdline: { type: "string" },
  "answer-out": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function agentCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, AGENT_OPTIONS);
  if (values.help) {
    process.stdout.write(AGENT_HELP);
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const file = values.cmdline ?? "/proc/cmdline";
  const cmdline = await readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => {
    throw new InputError(`${file}: cannot read the kernel command line (${e.code ?? e.message})`);
  });
  // The install runs with the same node and kvmstrap as this agent (dist/cli/ -> bin/kvmstrap.js).
  const self = [process.execPath, fileURLToPath(new URL("../../bin/kvmstrap.js", import.meta.url))];
  const outcome = await runAgent({
    cmdline: cmdline.slice(0, 64 * 1024),
    say: (line) => process.stdout.write(`${line}\n`),
    log: (line) => process.stderr.write(`${line}\n`),
    installer: commandInstaller(self),
    power: SYSTEM_POWER,
    answerFile: values["answer-out"] ?? AGENT_ANSWER_FILE,
  });
  return outcome.exitCode;
}
