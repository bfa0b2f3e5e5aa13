// `kvmstrap verify`: does this host hold what the answer (or the last apply run) promised? The checks
// and the result file are the app layer's (src/app/verify.ts); this prints them: one line per check on
// stderr, the verdict line on stdout (and on every console with --console), or the result as JSON.

import { runVerify, verifyLine } from "../app/verify.js";
import { writeToConsoles } from "../app/verify-console.js";
import { firstBootFailure } from "../app/verify-failure.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const VERIFY_HELP = `Usage: kvmstrap verify [ANSWER] [options]
       kvmstrap verify --failed UNIT [ANSWER]

Check that this host holds what the answer file ANSWER promised; without ANSWER, what the plan of
the last apply run (its journal) promised: kernel modules loaded (kvm and the CPU vendor's module,
vfio-pci for passthrough), the functional KVM probe (a failure only when the answer requires
kvm.functional; otherwise VMs run under TCG and it is a warning), kernel parameters, IOMMU groups,
vfio-pci bindings by PCI address, VFs per PF, bridges with carrier, libvirt storage pools active, and
a small test VM that boots (TCG when KVM is unusable) and prints a marker on its serial console;
and the hardening of libvirt (hardening.*): each running guest confined by its AppArmor (sVirt)
profile (unknown on a kernel without AppArmor), qemu's seccomp sandbox on, remote libvirt only over
TLS with client certificates, <hostdev> devices only from the answer's passthrough section, no
VNC/SPICE on 0.0.0.0 or :: without TLS, and no secret (passwd=, inline keys) in a domain's XML.

Each check is pass, fail, warn or unknown, with what was expected, what was found and where to look.
The result goes atomically to <root>/var/lib/kvmstrap/verify.json (or --out), and the answer's
webhook gets the event "verified" or "failed". stdout gets one line:
  KVMSTRAP-VERIFY: PASS
  KVMSTRAP-VERIFY: FAIL (2 failed: bridge.br0, vfio.0000:01:00.0)

Options:
  --root DIR         Check the machine tree DIR instead of this host: live-only checks (the KVM
                     probe, pools, the test VM) are "unknown, not checked on a tree"
  --state-dir DIR    Journal and results (default <root>/var/lib/kvmstrap)
  --out FILE         Write the result here instead of <state-dir>/verify.json
  --json             Print the result object instead of the line
  --no-vm            Do not boot the test VM
  --connect URI      libvirt connection for pools and the test VM (default qemu:///system)
  --libvirt-etc DIR  libvirt's configuration directory for the hardening checks (default /etc/libvirt)
  --console          Also write the line to every console the kernel has (/dev/ttyS0, tty0...)
  --failed UNIT      Report that the first-boot unit UNIT failed (its failure handler): the apply
                     run's state and the last verify line, on stdout and every console, and the
                     event "failed" to ANSWER's webhook
  -h, --help         Print this help

Exit: 0 every check passed (warnings and unknowns allowed), 1 a check failed, 2 usage or input error.
`;

export const VERIFY_OPTIONS = {
  root: { type: "string" },
  "state-dir": { type: "string" },
  out: { type: "string" },
  json: { type: "boolean" },
  "no-vm": { type: "boolean" },
  connect: { type: "string" },
  "libvirt-etc": { type: "string" },
  console: { type: "boolean" },
  failed: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

const MARK = { pass: "PASS", fail: "FAIL", warn: "warn", unknown: " ?  " } as const;
const warnLine = (line: string) => process.stderr.write(`kvmstrap: ${line}\n`);

async function toConsoles(root: string, lines: string[]): Promise<void> {
  const { failed } = await writeToConsoles(root, lines);
  for (const f of failed) warnLine(`console ${f.device}: ${f.error}`);
}

export async function verifyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, VERIFY_OPTIONS);
  if (values.help) {
    process.stdout.write(VERIFY_HELP);
    return EXIT.ok;
  }
  const [answerFile, extra] = positionals;
  if (extra) throw new UsageError(`unexpected argument "${extra}"`);
  const root = values.root ?? "/";
  if (values.failed !== undefined) {
    if (!/^[\w@.:-]+$/.test(values.failed))
      throw new UsageError(`--failed needs a unit name, not "${values.failed}"`);
    const { lines } = await firstBootFailure({
      unit: values.failed,
      root,
      stateDir: values["state-dir"],
      answerFile: answerFile ?? null,
      log: warnLine,
    });
    process.stdout.write(`${lines.join("\n")}\n`);
    await toConsoles(root, lines);
    return EXIT.ok;
  }
  const { result, file } = await runVerify({
    answerFile: answerFile ?? null,
    root,
    stateDir: values["state-dir"],
    out: values.out,
    vm: !values["no-vm"],
    libvirtUri: values.connect,
    libvirtEtc: values["libvirt-etc"],
    log: warnLine,
    progress: warnLine,
  });
  const line = verifyLine(result);
  if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    for (const c of result.checks) {
      process.stderr.write(`  [${MARK[c.status]}] ${c.id}: ${c.found}\n`);
      if (c.status === "fail")
        process.stderr.write(`         expected ${c.expected}; look at ${c.where.join(", ")}\n`);
    }
    process.stderr.write(`kvmstrap: result written to ${file}\n`);
    process.stdout.write(`${line}\n`);
  }
  if (values.console) await toConsoles(root, [line]);
  return result.status === "pass" ? EXIT.ok : EXIT.failed;
}
