// `kvmstrap vm console NAME --vnc|--spice`: a running VM's TLS console as a virt-viewer connection
// file (.vv) or a URI. The work is src/app/vm-console.ts; the serial console (`vm console NAME`
// without these flags) stays in vm-command.ts.
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const VM_CONSOLE_HELP = `Usage: kvmstrap vm console NAME --vnc|--spice [options]

Print a connection file for NAME's remote console (the answer's consoles: section adds VNC and/or
SPICE with TLS on the management address): virt-viewer's .vv format, with the ports libvirt chose,
the host's CA and, for SPICE, the subject the server certificate must carry. Open it with
  kvmstrap vm console NAME --spice > NAME.vv && remote-viewer NAME.vv
VNC verifies the client's certificate: install the client set named on stderr (ca-cert.pem,
client-cert.pem, client-key.pem from /etc/kvmstrap/pki/clients/NAME) where the viewer's gtk-vnc
looks: ~/.pki/CA/cacert.pem and ~/.pki/CLIENT/{clientcert.pem,private/clientkey.pem}, CLIENT
being the client name the viewer gives gtk-vnc (gvnccapture's is "gvnccapture").
The console is protected by TLS and the host's PKI (kvmstrap pki). A console deployed locked
(consoles.tickets: true, or vm deploy --console-tickets) also needs a one-time password: --ticket
sets one on the running VM, valid --ttl seconds, and prints it only in the .vv file, URI or JSON
on stdout (never in a log; the VM's definition never holds it; a restart drops it).
Without --vnc or --spice, "vm console NAME" attaches to the serial console as before.

Options:
  --vnc              The VNC console
  --spice            The SPICE console
  --uri              Print a vnc:// or spice:// URI instead of the .vv file
  --ticket           Set a one-time password on the running console (locked consoles)
  --ttl SECONDS      How long the ticket is accepted (default 60, at most 86400)
  --json             Print the ports, host, CA, URI and .vv text as JSON
  --connect URI      libvirt connection (default qemu:///system)
  --client NAME      The console client's certificate set to name for VNC (default admin)
  --pki-root DIR     Read the host's PKI under DIR (default /)
  -h, --help         Print this help

Exit: 0 printed, 1 libvirt refused the ticket, 2 no such VM, not running, no such console, a
console not locked for tickets, or a usage error.
`;

export const VM_CONSOLE_OPTIONS = {
  vnc: { type: "boolean" },
  spice: { type: "boolean" },
  uri: { type: "boolean" },
  ticket: { type: "boolean" },
  ttl: { type: "string" },
  json: { type: "boolean" },
  connect: { type: "string" },
  client: { type: "string" },
  "pki-root": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

/** Whether `vm console ...` asks for a remote console (this command) rather than the serial one. */
export const wantsRemoteConsole = (argv: readonly string[]): boolean =>
  argv[0] === "console" && argv.some((a) => a === "--vnc" || a === "--spice");

/** argv without the leading "console". */
export async function vmConsoleCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, VM_CONSOLE_OPTIONS);
  if (values.help) {
    process.stdout.write(VM_CONSOLE_HELP);
    return EXIT.ok;
  }
  const [name, extra] = positionals;
  if (!name) throw new UsageError("vm console needs a VM name");
  if (extra) throw new UsageError(`unexpected argument "${extra}"`);
  if (values.vnc && values.spice) throw new UsageError("--vnc or --spice, not both");
  if (!values.vnc && !values.spice)
    throw new UsageError("vm console --vnc or --spice (without them: the serial console)");
  if (values.uri && values.json) throw new UsageError("--uri or --json, not both");
  if (values.ttl !== undefined && !values.ticket) throw new UsageError("--ttl applies to --ticket");
  const ttl = values.ttl === undefined ? 60 : Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 86_400)
    throw new UsageError(`--ttl takes 1 to 86400 seconds (got "${values.ttl}")`);
  const { vmConsole } = await import("../app/vm-console.js");
  const r = await vmConsole({
    name,
    kind: values.vnc ? "vnc" : "spice",
    ...(values.connect ? { connect: values.connect } : {}),
    ...(values["pki-root"] ? { pkiRoot: values["pki-root"] } : {}),
    ...(values.client ? { client: values.client } : {}),
    ...(values.ticket ? { ticketTtlSeconds: ttl } : {}),
  });
  for (const w of r.warnings) process.stderr.write(`kvmstrap: warning: ${w}\n`);
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ ...r.file, uri: r.uri, vv: r.vv, clientDir: r.clientDir, ticketExpiresAt: r.ticketExpiresAt }, null, 2)}\n`,
    );
    return EXIT.ok;
  }
  process.stdout.write(values.uri ? `${r.uri}\n` : r.vv);
  if (r.ticketExpiresAt)
    process.stderr.write(`kvmstrap: the ticket (on stdout only) is accepted until ${r.ticketExpiresAt}\n`);
  if (r.clientDir)
    process.stderr.write(
      `kvmstrap: VNC checks the client's certificate: install the set in ${r.clientDir}\n`,
    );
  return EXIT.ok;
}
