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
No password is involved: the console is protected by TLS and the host's PKI (kvmstrap pki).
Without --vnc or --spice, "vm console NAME" attaches to the serial console as before.

Options:
  --vnc              The VNC console
  --spice            The SPICE console
  --uri              Print a vnc:// or spice:// URI instead of the .vv file
  --json             Print the ports, host, CA, URI and .vv text as JSON
  --connect URI      libvirt connection (default qemu:///system)
  --client NAME      The console client's certificate set to name for VNC (default admin)
  --pki-root DIR     Read the host's PKI under DIR (default /)
  -h, --help         Print this help

Exit: 0 printed, 2 no such VM, not running, no such console, or a usage error.
`;

export const VM_CONSOLE_OPTIONS = {
  vnc: { type: "boolean" },
  spice: { type: "boolean" },
  uri: { type: "boolean" },
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
  const { vmConsole } = await import("../app/vm-console.js");
  const r = await vmConsole({
    name,
    kind: values.vnc ? "vnc" : "spice",
    ...(values.connect ? { connect: values.connect } : {}),
    ...(values["pki-root"] ? { pkiRoot: values["pki-root"] } : {}),
    ...(values.client ? { client: values.client } : {}),
  });
  for (const w of r.warnings) process.stderr.write(`kvmstrap: warning: ${w}\n`);
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ ...r.file, uri: r.uri, vv: r.vv, clientDir: r.clientDir }, null, 2)}\n`,
    );
    return EXIT.ok;
  }
  process.stdout.write(values.uri ? `${r.uri}\n` : r.vv);
  if (r.clientDir)
    process.stderr.write(
      `kvmstrap: VNC checks the client's certificate: install the set in ${r.clientDir}\n`,
    );
  return EXIT.ok;
}
