// The one error type of the libvirt port, and the mapping from virsh's stderr to its codes.

export type LibvirtErrorCode =
  | "connect" // libvirtd not running, socket missing or refused
  | "no-domain"
  | "no-network"
  | "no-pool"
  | "no-volume"
  | "exists"
  | "invalid-state" // e.g. starting a running domain, destroying a stopped one
  | "agent" // the guest agent is not connected or did not answer
  | "timeout"
  | "other";

export class LibvirtError extends Error {
  override readonly name = "LibvirtError";
  constructor(
    readonly code: LibvirtErrorCode,
    message: string,
    readonly command: readonly string[] = [],
    readonly stderr = "",
    readonly exitCode: number | undefined = undefined,
  ) {
    super(message);
  }
}

// virsh prints libvirt's error messages (virerror.c) after "error: ". Connection failures come first:
// a dead libvirtd also makes every lookup fail.
const PATTERNS: [RegExp, LibvirtErrorCode][] = [
  [
    /failed to connect to the hypervisor|Failed to connect socket|Cannot recv data|End of file while reading/i,
    "connect",
  ],
  [/Domain not found|failed to get domain/i, "no-domain"],
  [/Network not found|failed to get network/i, "no-network"],
  [/Storage pool not found|failed to get pool/i, "no-pool"],
  [/Storage volume not found|failed to get vol/i, "no-volume"],
  [/already exists/i, "exists"],
  [/guest agent|QEMU agent command/i, "agent"],
  [
    /Requested operation is not valid|is not running|is not active|already (running|active)/i,
    "invalid-state",
  ],
];

export function classifyVirshError(stderr: string): LibvirtErrorCode {
  for (const [pattern, code] of PATTERNS) if (pattern.test(stderr)) return code;
  return "other";
}

/** The most specific line of virsh's stderr: the last "error: ..." line, without the prefix. */
export function virshErrorMessage(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  const errors = lines.filter((l) => l.startsWith("error: "));
  const last = errors.at(-1) ?? lines.at(-1) ?? "virsh failed without a message";
  return last.replace(/^error: /, "");
}
