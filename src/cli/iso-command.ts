// `kvmstrap iso prepare`: a site's appliance ISO (an answer embedded or named by URL, unattended on
// boot when asked). The work is src/app/iso-prepare.ts; this file parses and prints.
import { prepareIso } from "../app/iso-prepare.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const ISO_HELP = `Usage: kvmstrap iso prepare IN.iso --out OUT.iso [options]

Makes a copy of a kvmstrap appliance ISO (the plain or the Secure Boot one) for a site: the answer
embedded, or named by URL on the kernel command line, and, with --auto, an unattended install on
boot. BIOS and UEFI boot as before (El Torito, the hybrid MBR/GPT for USB sticks); the default boot
entry carries the new kernel parameters, the other entries the answer only. IN is never written;
OUT appears only once it is complete and checked. An unattended install starts only with both
--auto and an answer: it ERASES the disk the answer's install section names.

Options:
  --out FILE            The ISO to write (required; replaced atomically when it exists)
  --answer FILE         Embed this answer file as kvmstrap/answer.yaml (checked first: YAML and
                        schema; the disk and network rules run on the target machine)
  --answer-url URL      kernel parameter kvmstrap.answer=URL instead: the appliance fetches the
                        answer over http(s) at boot (DHCP on its wired NICs), with retries
  --answer-sha256 HEX   with --answer-url: kvmstrap.answer-sha256=HEX, the sha256 the fetched
                        answer must have
  --auto                kvmstrap.auto=install on the default entry: install unattended, then reboot
  --json                Print the result as JSON
  -h, --help            Print this help

Preparing a prepared ISO replaces its kvmstrap.answer, answer-sha256 and auto parameters.
Needs xorriso. Exit codes: 0 written, 2 usage or input error (not a kvmstrap ISO, invalid answer).
`;

export const ISO_OPTIONS = {
  out: { type: "string" },
  answer: { type: "string" },
  "answer-url": { type: "string" },
  "answer-sha256": { type: "string" },
  auto: { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function isoCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, ISO_OPTIONS);
  if (values.help) {
    process.stdout.write(ISO_HELP);
    return EXIT.ok;
  }
  const [sub, input, ...extra] = positionals;
  if (sub !== "prepare")
    throw new UsageError(`kvmstrap iso: unknown subcommand ${sub ?? "(none)"} (try prepare)`);
  if (!input) throw new UsageError("kvmstrap iso prepare: give the input ISO");
  if (extra.length) throw new UsageError(`kvmstrap iso prepare: unexpected ${extra.join(" ")}`);
  if (!values.out) throw new UsageError("kvmstrap iso prepare: --out FILE is required");
  const r = await prepareIso({
    input,
    output: values.out,
    answerFile: values.answer,
    answerUrl: values["answer-url"],
    answerSha256: values["answer-sha256"],
    auto: Boolean(values.auto),
    onProgress: (line) => process.stderr.write(`kvmstrap: ${line}\n`),
  });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return EXIT.ok;
  }
  const answer = r.answerUrl
    ? `answer from ${r.answerUrl}${r.answerSha256 ? ` (sha256 ${r.answerSha256})` : ""}`
    : r.embeddedAnswer
      ? `answer embedded (sha256 ${r.embeddedAnswer})`
      : "no answer";
  process.stdout.write(
    [
      `${r.output}: ${(r.sizeBytes / 1024 ** 2).toFixed(0)} MiB, sha256 ${r.sha256}`,
      `  ${answer}; ${r.auto ? "UNATTENDED install on boot (kvmstrap.auto=install)" : "the installer asks on boot"}`,
      `  boots: ${r.elTorito.join(" + ")}; default entry "${r.defaultEntry.title}"`,
      `  kernel command line: ${r.defaultEntry.cmdline}`,
      "",
    ].join("\n"),
  );
  return EXIT.ok;
}
