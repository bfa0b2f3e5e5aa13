// `kvmstrap libvirt-hook qemu DOMAIN OP SUBOP [EXTRA]`: hidden (not in `kvmstrap --help`), run by
// libvirtd through the wrapper the plan installs in /etc/libvirt/hooks/qemu.d/. A non-zero exit on
// "start begin" makes libvirtd refuse the start and show what this printed on stderr.
import { runLibvirtHook } from "../app/libvirt-hook.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const LIBVIRT_HOOK_HELP = `Usage: kvmstrap libvirt-hook qemu DOMAIN OPERATION SUBOP [EXTRA]

libvirtd's qemu hook (installed by "kvmstrap apply" as /etc/libvirt/hooks/qemu.d/kvmstrap-vlan when
the answer gives a VM a VLAN on a VLAN-aware Linux bridge); not for operators. The domain XML is read
on stdin (4 MiB and 10 s at most). On "start begin" (a start, or an incoming migration, once libvirt
made the taps and before qemu runs), each NIC that kvmstrap's metadata gives a VLAN is set on its tap:
"bridge vlan del" of the bridge's default VLAN, "bridge vlan add ... pvid untagged" of its own. Where
the kernel has no bridge VLAN filtering, or the bridge has it off, the start is refused: the VM would
run untagged, not isolated. Every other operation does nothing.

Options:
  -h, --help  Print this help

Prints what it set on stderr. Exit: 0 done or nothing to do, 1 the start is refused (the reason on
stderr), 2 usage or input error (a domain XML that does not parse, too large or too slow).
`;

export const LIBVIRT_HOOK_OPTIONS = {
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function libvirtHookCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, LIBVIRT_HOOK_OPTIONS);
  if (values.help) {
    process.stdout.write(LIBVIRT_HOOK_HELP);
    return EXIT.ok;
  }
  const [driver, ...args] = positionals;
  if (!driver || args.length < 3)
    throw new UsageError("give the driver and libvirt's DOMAIN OPERATION SUBOP");
  const r = await runLibvirtHook({ driver, args, stdin: process.stdin });
  const d = r.decision;
  if (d.kind === "refuse") {
    process.stderr.write(`kvmstrap: start refused: ${d.reason}\n`);
    return EXIT.failed;
  }
  if (r.failed) {
    process.stderr.write(`kvmstrap: start refused: could not set the VLAN: ${r.failed}\n`);
    return EXIT.failed;
  }
  if (d.kind === "run") for (const n of d.notes) process.stderr.write(`kvmstrap: ${args[0]}: ${n}\n`);
  return EXIT.ok;
}
