// `kvmstrap pki init|rotate|status`: the host's CA and certificates for libvirt's remote TLS and the
// VNC/SPICE consoles. The work is src/app/pki.ts; this prints it.
import type { PkiResult, PkiStatus } from "../host/pki/pki.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const PKI_HELP = `Usage: kvmstrap pki <init|rotate|status> [options]

The host's own PKI, made with GnuTLS's certtool (package gnutls-bin), in libvirt's layout:
  /etc/pki/CA/cacert.pem, /etc/pki/CA/private/cakey.pem          the host's CA
  /etc/pki/libvirt/{servercert,clientcert}.pem (+ private/*key.pem) libvirtd's TLS (remote access)
  /etc/pki/libvirt-vnc/{ca-cert,server-cert,server-key}.pem        qemu's VNC TLS
  /etc/pki/libvirt-spice/{ca-cert,server-cert,server-key}.pem      qemu's SPICE TLS
  /etc/kvmstrap/pki/clients/NAME/{ca-cert,client-cert,client-key}.pem  a console client's set
Keys are 0600 (the VNC and SPICE server keys owned by the user qemu runs as: qemu.conf's user,
or libvirt-qemu); every file is written atomically.

  init     Make what is missing or broken: a valid CA is kept (clients keep trusting it), then the
           server and client certificates; a complete, valid set is left as it is.
  rotate   New server and client certificates from the same CA (--ca: a new CA too; the trust
           files then hold the new and the old CA until the next rotation). The replaced files
           are kept in /etc/kvmstrap/pki/previous. Restart libvirtd and the guests' consoles after.
  status   Each certificate: subject, names, expiry and days left, verified against the CA; each
           key's mode. Exit 1 when something is missing, expired or does not verify.

Options:
  --root DIR          Write under the machine tree DIR instead of this host
  --hostname NAME     The server certificates' name (default: /etc/hostname)
  --dns-name NAME     Another DNS name for the server certificates (repeatable)
  --address IP        An address clients connect to (repeatable; default: the addresses of the
                      interface carrying the default route, on this host)
  --client NAME       The console client's name (default admin)
  --ca                rotate: make a new CA too
  --ca-days N         The CA's lifetime in days (default 3650)
  --server-days N     The server certificates' lifetime in days (default 825)
  --client-days N     The client certificate's lifetime in days (default 825)
  --json              Print the result as JSON
  -h, --help          Print this help

Exit: 0 done (status: complete and valid), 1 status found a problem, 2 usage or input error.
`;

export const PKI_OPTIONS = {
  root: { type: "string" },
  hostname: { type: "string" },
  "dns-name": { type: "string", multiple: true },
  address: { type: "string", multiple: true },
  client: { type: "string" },
  ca: { type: "boolean" },
  "ca-days": { type: "string" },
  "server-days": { type: "string" },
  "client-days": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

function days(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 36500)
    throw new UsageError(`--${flag} ${v}: a number of days from 1 to 36500`);
  return n;
}

function printStatus(s: PkiStatus): void {
  const out = process.stdout;
  for (const c of s.certs) {
    const names = c.sans.length ? ` [${c.sans.join(", ")}]` : "";
    out.write(
      `${c.verified && c.daysLeft >= 0 ? "ok  " : "BAD "} ${c.path}\n      ${c.subject}${names}\n      expires ${c.notAfter.slice(0, 10)} (${c.daysLeft} days)\n`,
    );
  }
  for (const k of s.keys)
    out.write(
      `${k.mode === 0o600 && k.matches !== false ? "ok  " : "BAD "} ${k.path} (mode ${k.mode.toString(8)})\n`,
    );
  for (const m of s.missing) out.write(`MISSING ${m}\n`);
  for (const p of s.problems) process.stderr.write(`kvmstrap: pki: ${p}\n`);
  out.write(
    s.complete
      ? `pki: complete; first expiry ${s.expires?.slice(0, 10) ?? "none"}\n`
      : `pki: incomplete (${s.missing.length} missing, ${s.problems.length} problem(s)): run kvmstrap pki init\n`,
  );
}

export async function pkiCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, PKI_OPTIONS);
  const [sub, extra] = positionals;
  if (values.help || sub === "help") {
    process.stdout.write(PKI_HELP);
    return EXIT.ok;
  }
  if (extra) throw new UsageError(`unexpected argument "${extra}"`);
  if (sub !== "init" && sub !== "rotate" && sub !== "status")
    throw new UsageError(
      sub ? `unknown pki subcommand "${sub}"` : "pki needs a subcommand: init, rotate or status",
    );
  if (values.ca && sub !== "rotate") throw new UsageError("--ca goes with pki rotate");
  const { pkiInit, pkiRotate, pkiShow } = await import("../app/pki.js");
  if (sub === "status") {
    const s = await pkiShow({
      ...(values.root ? { root: values.root } : {}),
      ...(values.client ? { client: values.client } : {}),
    });
    if (values.json) process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
    else printStatus(s);
    return s.complete ? EXIT.ok : EXIT.failed;
  }
  const request = {
    ...(values.root ? { root: values.root } : {}),
    ...(values.hostname ? { hostname: values.hostname } : {}),
    ...(values["dns-name"] ? { dnsNames: values["dns-name"] } : {}),
    ...(values.address ? { addresses: values.address } : {}),
    ...(values.client ? { client: values.client } : {}),
    caDays: days("ca-days", values["ca-days"]),
    serverDays: days("server-days", values["server-days"]),
    clientDays: days("client-days", values["client-days"]),
  };
  const r: PkiResult =
    sub === "init" ? await pkiInit(request) : await pkiRotate({ ...request, ca: Boolean(values.ca) });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  } else {
    for (const w of r.written) process.stderr.write(`wrote ${w}\n`);
    printStatus(r.status);
    process.stdout.write(`pki: ${r.action}\n`);
  }
  return r.status.complete ? EXIT.ok : EXIT.failed;
}
