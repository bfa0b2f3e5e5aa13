// The hardening checks of `kvmstrap verify` (libvirt's own guidance for a production host): each
// running guest confined by its AppArmor (sVirt) profile, qemu's seccomp sandbox on, remote libvirt
// only over TLS with client certificates, host devices only from the answer's passthrough section,
// no VNC/SPICE listener on a wildcard address without TLS, no secret written into a domain's XML.
// Pure: verify-hardening-read.ts gathers the facts. A check that cannot be made here (a kernel
// without AppArmor, a tree, a libvirt that does not answer) is "unknown" with the reason, never a
// pass: "unknown" is verify's skip.
import { confAt, confInt, confStr, type LibvirtConf } from "./libvirt-conf.js";
import { NOT_ON_TREE } from "./verify-checks.js";
import type { DomainFacts, ListenFact } from "./verify-hardening-xml.js";
import type { VerifyCheck, VerifyStatus } from "./verify-result.js";

export interface QemuProcess {
  pid: number;
  /** /proc/PID/status Seccomp: 0 none, 1 strict, 2 filter; null when unreadable. */
  seccomp: number | null;
  /** /proc/PID/attr/current (AppArmor's "libvirt-UUID (enforce)"), null when unreadable. */
  label: string | null;
}

export interface DomainView {
  facts: DomainFacts;
  running: boolean;
  /** The qemu process of a running domain; null when none was found in /proc. */
  qemu: QemuProcess | null;
}

/** The socket units that make libvirt listen on the network (Debian 12: libvirtd or virtproxyd). */
export const TCP_SOCKETS = ["libvirtd-tcp.socket", "virtproxyd-tcp.socket"];
export const TLS_SOCKETS = ["libvirtd-tls.socket", "virtproxyd-tls.socket"];
export const SOCKETS_WANTS = "/etc/systemd/system/sockets.target.wants";
export const LIBVIRT_TCP_PORT = 16509;
export const LIBVIRT_TLS_PORT = 16514;

export interface HardeningFacts {
  live: boolean;
  /** libvirt's configuration directory (a host path: /etc/libvirt). */
  etc: string;
  /** null: the file does not exist. */
  qemuConf: LibvirtConf | null;
  libvirtdConf: LibvirtConf | null;
  /** Socket units enabled (linked in SOCKETS_WANTS). */
  sockets: string[];
  /** libvirtd is started with --listen (/etc/default/libvirtd). */
  listenFlag: boolean;
  /** TCP sockets listening on libvirt's ports (16509 plain, 16514 TLS) in this network namespace,
   *  whatever configured them (/proc/net/tcp and tcp6; none on a tree). */
  listeners: { address: string; port: number }[];
  /** The TLS files libvirtd would load, and whether each exists. */
  tlsFiles: { path: string; exists: boolean }[];
  /** The kernel has AppArmor (/sys/kernel/security/apparmor). */
  apparmor: boolean;
  /** Every defined or running domain; a string: why libvirt could not be asked. */
  domains: DomainView[] | string;
  /** PCI addresses the answer's passthrough section resolved to (the plan's vfio list). */
  allowList: string[];
}

const check = (
  id: string,
  status: VerifyStatus,
  expected: string,
  found: string,
  where: string[],
): VerifyCheck => ({ id, status, expected, found, where });

const list = (items: string[], max = 6) =>
  items.length > max ? `${items.slice(0, max).join("; ")}; and ${items.length - max} more` : items.join("; ");

const running = (f: HardeningFacts): DomainView[] | null =>
  typeof f.domains === "string" ? null : f.domains.filter((d) => d.running);

function apparmorCheck(f: HardeningFacts): VerifyCheck {
  const qemuConf = `${f.etc}/qemu.conf`;
  const expected = "each running guest confined by its AppArmor (sVirt) profile, enforced";
  const where = [
    "/sys/kernel/security/apparmor",
    `${qemuConf} (security_driver)`,
    "/proc/PID/attr/current of each guest's qemu",
    "aa-status",
    "virsh dumpxml NAME | grep -A2 seclabel",
  ];
  if (!f.live) return check("hardening.apparmor", "unknown", expected, NOT_ON_TREE, where);
  if (!f.apparmor)
    return check(
      "hardening.apparmor",
      "unknown",
      expected,
      "skipped: this kernel has no AppArmor (/sys/kernel/security/apparmor absent), so sVirt cannot confine guests and nothing can be checked",
      [
        ...where,
        "fix: boot a kernel with AppArmor (Debian's default; security=apparmor on the command line)",
      ],
    );
  const driver = confStr(f.qemuConf, "security_driver");
  if (driver === "none")
    return check(
      "hardening.apparmor",
      "fail",
      expected,
      `${confAt(qemuConf, f.qemuConf, "security_driver")}: sVirt is off for every guest`,
      [
        ...where,
        `fix: remove security_driver from ${qemuConf} (or set "apparmor") and restart libvirtd, then restart the guests`,
      ],
    );
  const guests = running(f);
  if (guests === null)
    return check("hardening.apparmor", "unknown", expected, `libvirt did not answer: ${f.domains}`, where);
  if (guests.length === 0)
    return check(
      "hardening.apparmor",
      "pass",
      expected,
      "no running guest to check; sVirt is not turned off in qemu.conf",
      where,
    );
  const bad: string[] = [];
  const unknown: string[] = [];
  for (const g of guests) {
    const n = g.facts.name;
    const sec = g.facts.seclabels.find((s) => s.model === "apparmor");
    if (!sec || sec.type === "none") {
      bad.push(`${n}: no AppArmor seclabel in its live XML${sec ? " (type='none')" : ""}`);
      continue;
    }
    if (!g.qemu || g.qemu.label === null) {
      unknown.push(`${n}: its qemu process or its label not found in /proc`);
      continue;
    }
    const label = g.qemu.label;
    if (sec.label && label === `${sec.label} (enforce)`) continue;
    if (label.endsWith("(complain)")) bad.push(`${n}: profile ${label} only complains (pid ${g.qemu.pid})`);
    else
      bad.push(
        `${n}: qemu pid ${g.qemu.pid} runs as "${label}", expected "${sec.label ?? "libvirt-UUID"} (enforce)"`,
      );
  }
  if (bad.length)
    return check("hardening.apparmor", "fail", expected, list(bad), [
      ...where,
      "fix: aa-enforce /etc/apparmor.d/libvirt/libvirt-UUID, or drop <seclabel type='none'> from the domain and restart it",
    ]);
  if (unknown.length) return check("hardening.apparmor", "unknown", expected, list(unknown), where);
  return check(
    "hardening.apparmor",
    "pass",
    expected,
    `${guests.length} running guest(s) confined, enforced`,
    where,
  );
}

function seccompCheck(f: HardeningFacts): VerifyCheck {
  const qemuConf = `${f.etc}/qemu.conf`;
  const id = "hardening.seccomp";
  const expected = "qemu's seccomp sandbox on (seccomp_sandbox not 0; Seccomp: 2 for each guest's qemu)";
  const where = [`${qemuConf} (seccomp_sandbox)`, "/proc/PID/status of each guest's qemu (Seccomp:)"];
  const fix = `fix: remove seccomp_sandbox = 0 from ${qemuConf} (or set 1), restart libvirtd, then restart the guests`;
  if (f.qemuConf === null)
    return check(id, "unknown", expected, `${qemuConf} does not exist (libvirt not installed?)`, where);
  const sandbox = confInt(f.qemuConf, "seccomp_sandbox");
  // Both halves are reported: a fixed qemu.conf does not sandbox the guests started before it.
  const bad =
    sandbox === 0
      ? [`${confAt(qemuConf, f.qemuConf, "seccomp_sandbox")}: guests start without the sandbox`]
      : [];
  const conf =
    sandbox === null ? "seccomp_sandbox unset (libvirt's default: on)" : `seccomp_sandbox = ${sandbox}`;
  const guests = f.live ? running(f) : [];
  const unknown: string[] = [];
  if (!f.live) unknown.push("running guests are not checked on a tree");
  else if (guests === null) unknown.push(`libvirt did not answer: ${f.domains}`);
  for (const g of guests ?? []) {
    if (!g.qemu || g.qemu.seccomp === null)
      unknown.push(`${g.facts.name}: its qemu process not found in /proc`);
    else if (g.qemu.seccomp !== 2)
      bad.push(`${g.facts.name}: qemu pid ${g.qemu.pid} has Seccomp: ${g.qemu.seccomp} (no filter)`);
  }
  if (bad.length) return check(id, "fail", expected, list(bad), [...where, fix]);
  if (f.live && unknown.length) return check(id, "unknown", expected, `${conf}; ${list(unknown)}`, where);
  const n = guests?.length ?? 0;
  const found = f.live ? `${n} running guest(s) sandboxed (Seccomp: 2)` : unknown.join("");
  return check(id, "pass", expected, `${conf}; ${found}`, where);
}

function remoteTlsCheck(f: HardeningFacts): VerifyCheck {
  const conf = `${f.etc}/libvirtd.conf`;
  const expected = "remote libvirt only over TLS with verified client certificates, never plain TCP";
  const where = [conf, SOCKETS_WANTS, "/etc/default/libvirtd", "ss -ltnp | grep -e 16509 -e 16514"];
  const bad: string[] = [];
  for (const s of f.sockets.filter((u) => TCP_SOCKETS.includes(u)))
    bad.push(`${SOCKETS_WANTS}/${s}: ${s} is enabled (plain TCP on port 16509)`);
  if (confInt(f.libvirtdConf, "listen_tcp") === 1)
    bad.push(`${confAt(conf, f.libvirtdConf, "listen_tcp")} (plain TCP)`);
  for (const l of f.listeners.filter((x) => x.port === LIBVIRT_TCP_PORT))
    bad.push(`a socket listens on ${l.address} port ${l.port}, libvirt's plain TCP port (/proc/net/tcp)`);
  const tlsSockets = f.sockets.filter((u) => TLS_SOCKETS.includes(u));
  const tlsPort = f.listeners.some((x) => x.port === LIBVIRT_TLS_PORT);
  const tls =
    tlsSockets.length > 0 || tlsPort || (f.listenFlag && confInt(f.libvirtdConf, "listen_tls") !== 0);
  if (tls) {
    if (confInt(f.libvirtdConf, "tls_no_verify_certificate") === 1)
      bad.push(`${confAt(conf, f.libvirtdConf, "tls_no_verify_certificate")}: clients need no certificate`);
    const authTls = confStr(f.libvirtdConf, "auth_tls");
    if (authTls !== null && !["none", "sasl", "polkit"].includes(authTls))
      bad.push(`${confAt(conf, f.libvirtdConf, "auth_tls")}: not an authentication libvirt knows`);
    for (const file of f.tlsFiles.filter((t) => !t.exists)) bad.push(`TLS file ${file.path} is missing`);
  }
  if (bad.length)
    return check("hardening.remote-tls", "fail", expected, list(bad), [
      ...where,
      `fix: systemctl disable --now libvirtd-tcp.socket; set listen_tcp = 0 and tls_no_verify_certificate = 0 in ${conf}`,
    ]);
  if (f.libvirtdConf === null && f.sockets.length === 0)
    return check(
      "hardening.remote-tls",
      "unknown",
      expected,
      `${conf} does not exist (libvirt not installed?)`,
      where,
    );
  const how = tlsSockets.length
    ? tlsSockets.join(", ")
    : tlsPort
      ? `port ${LIBVIRT_TLS_PORT} listening`
      : "libvirtd --listen";
  return check(
    "hardening.remote-tls",
    "pass",
    expected,
    tls ? `TLS only (${how}), client certificates verified` : "no network listener: local UNIX socket only",
    where,
  );
}

function hostdevCheck(f: HardeningFacts): VerifyCheck {
  const expected =
    "every <hostdev> of every domain is a PCI device named in the answer's passthrough section";
  const allowed = new Set(f.allowList);
  const where = ["passthrough: in the answer file", "virsh dumpxml NAME | grep -A4 hostdev"];
  if (!f.live) return check("hardening.hostdev", "unknown", expected, NOT_ON_TREE, where);
  if (typeof f.domains === "string")
    return check("hardening.hostdev", "unknown", expected, `libvirt did not answer: ${f.domains}`, where);
  const bad: string[] = [];
  let count = 0;
  for (const d of f.domains)
    for (const h of d.facts.hostdevs) {
      count++;
      if (h.type === "pci" && h.address && allowed.has(h.address)) continue;
      const dev = `${h.type}${h.address ? ` ${h.address}` : ""}`;
      bad.push(`domain ${d.facts.name}: ${dev} is not in the allow-list`);
    }
  const allow = f.allowList.length ? f.allowList.join(", ") : "none";
  if (bad.length)
    return check("hardening.hostdev", "fail", expected, `${list(bad)} (allowed: ${allow})`, [
      ...where,
      "fix: add the device to the answer's passthrough section and apply, or detach it: virsh detach-device NAME --config",
    ]);
  return check(
    "hardening.hostdev",
    "pass",
    expected,
    count
      ? `${count} host device(s), all allowed (${allow})`
      : `no <hostdev> in ${f.domains.length} domain(s)`,
    where,
  );
}

const WILDCARD = new Set(["0.0.0.0", "::", "[::]", "0:0:0:0:0:0:0:0"]);

/** The address a listener binds: its own, or qemu.conf's vnc_listen/spice_listen (default 127.0.0.1). */
function boundAddress(l: ListenFact, type: string, qemuConf: LibvirtConf | null): string | null {
  if (l.type !== "address" && l.type !== "network") return null;
  // A network listener's address is resolved when the domain starts (the live XML has it).
  if (l.type === "network" && l.address === null) return null;
  return l.address ?? confStr(qemuConf, `${type}_listen`) ?? "127.0.0.1";
}

function graphicsCheck(f: HardeningFacts): VerifyCheck {
  const qemuConf = `${f.etc}/qemu.conf`;
  const expected = "no VNC or SPICE listener on 0.0.0.0 or :: without TLS";
  const where = [
    `${qemuConf} (vnc_tls, spice_tls, vnc_listen, spice_listen)`,
    "virsh dumpxml NAME | grep -A3 graphics",
  ];
  if (!f.live) return check("hardening.graphics", "unknown", expected, NOT_ON_TREE, where);
  if (typeof f.domains === "string")
    return check("hardening.graphics", "unknown", expected, `libvirt did not answer: ${f.domains}`, where);
  const bad: string[] = [];
  let count = 0;
  for (const d of f.domains)
    for (const g of d.facts.graphics) {
      if (g.type !== "vnc" && g.type !== "spice") continue;
      for (const l of g.listens) {
        const address = boundAddress(l, g.type, f.qemuConf);
        if (address === null) continue;
        count++;
        if (!WILDCARD.has(address)) continue;
        const tls = confInt(f.qemuConf, `${g.type}_tls`) === 1;
        const at = `domain ${d.facts.name}: ${g.type.toUpperCase()} on ${address}`;
        if (!tls) bad.push(`${at} without TLS (${confAt(qemuConf, f.qemuConf, `${g.type}_tls`)})`);
        else if (g.type === "spice" && g.defaultMode !== "secure")
          bad.push(`${at}: spice_tls = 1 but defaultMode is not 'secure', so plain channels are accepted`);
      }
    }
  if (bad.length)
    return check("hardening.graphics", "fail", expected, list(bad), [
      ...where,
      "fix: listen on the management address (or 127.0.0.1), or set vnc_tls = 1 / spice_tls = 1 with the host's certificates",
    ]);
  return check(
    "hardening.graphics",
    "pass",
    expected,
    count
      ? `${count} VNC/SPICE listener(s), none on a wildcard address without TLS`
      : "no VNC or SPICE listener",
    where,
  );
}

function secretsCheck(f: HardeningFacts): VerifyCheck {
  const expected = "no secret (CHAP, cephx, console password) in any domain's XML: libvirt secrets only";
  const where = ["virsh dumpxml --security-info NAME", "virsh secret-list"];
  if (!f.live) return check("hardening.secrets", "unknown", expected, NOT_ON_TREE, where);
  if (typeof f.domains === "string")
    return check("hardening.secrets", "unknown", expected, `libvirt did not answer: ${f.domains}`, where);
  const bad = f.domains.flatMap((d) => d.facts.inlineSecrets.map((s) => `domain ${d.facts.name}: ${s}`));
  if (bad.length)
    return check("hardening.secrets", "fail", expected, list(bad), [
      ...where,
      "fix: virsh secret-define + secret-set-value, referenced as <auth username=...><secret type='ceph|iscsi' usage=.../></auth>; for consoles, TLS client certificates instead of passwd=",
    ]);
  return check(
    "hardening.secrets",
    "pass",
    expected,
    `no secret in the XML of ${f.domains.length} domain(s)`,
    where,
  );
}

export function hardeningChecks(f: HardeningFacts): VerifyCheck[] {
  return [
    apparmorCheck(f),
    seccompCheck(f),
    remoteTlsCheck(f),
    hostdevCheck(f),
    graphicsCheck(f),
    secretsCheck(f),
  ];
}
