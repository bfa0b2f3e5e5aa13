// Identifier grammars: the one definition of what a PCI address, a MAC, an interface name, a host
// name, a VM/pool/network name, an SSH public key and a password hash may look like. The answer
// schema, the safety rules and the renderers all use these, so a value one accepts the others accept.
// Names that end up in file paths (/etc/kvmstrap/libvirt/network-NAME.xml, a VM's directory) can
// hold no "/" and no "..": the grammar, not a later escape, keeps them inside their directory.

export interface Grammar {
  /** What a valid value looks like, for error messages: "a PCI address such as 0000:01:00.0". */
  describe: string;
  /** The part a JSON Schema can carry (editors show it); `test` is the whole rule. */
  pattern: RegExp;
  test: (value: string) => boolean;
}

const regex = (pattern: RegExp, describe: string, extra?: (s: string) => boolean): Grammar => ({
  describe,
  pattern,
  test: (s) => pattern.test(s) && (extra ? extra(s) : true),
});

export const PCI_ADDRESS = regex(
  /^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$/,
  "a PCI address such as 0000:01:00.0",
);

/** A PCI address as sysfs names it (domain included, lower case): what boot scripts are given. */
export const SYSFS_PCI_ADDRESS = regex(
  /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/,
  "a full PCI address in lower case such as 0000:01:00.0",
);

/** A PCI vendor or device id: four lower-case hex digits. */
export const PCI_ID = regex(/^[0-9a-f]{4}$/, "a 4-digit PCI id such as 8086");

export const MAC = regex(/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/, "a MAC address such as 52:54:00:12:34:56");

/** Linux interface names: at most IFNAMSIZ-1 (15) bytes, never "." or "..", no "/" or blanks. */
export const INTERFACE_NAME = regex(
  /^[a-zA-Z0-9_.-]{1,15}$/,
  "an interface name of 1-15 letters, digits, '.', '-' or '_' (not '.' or '..')",
  (s) => s !== "." && s !== "..",
);

const LABEL = "[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?";

/** RFC 1123 host names: labels of 1-63 letters, digits and inner '-', 253 characters in all. */
export const HOSTNAME = regex(
  new RegExp(`^${LABEL}(?:\\.${LABEL})*$`),
  "a host name (RFC 1123): dot-separated labels of 1-63 letters, digits and '-', at most 253 characters",
  (s) => s.length <= 253,
);

/** A VM name: also its directory name and, by default, the guest's host name (one DNS label). */
export const VM_NAME = regex(
  /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/,
  "a VM name: 1-63 lower-case letters, digits and '-'",
);

/**
 * Names of libvirt objects and storage pools, which become file names (pool-NAME.xml, network-
 * NAME.xml), ZFS pool names and LVM volume group names: a letter or digit first, then letters,
 * digits, '_', '-' and single dots, at most 64 characters.
 */
export const OBJECT_NAME = regex(
  /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/,
  "a name of 1-64 letters, digits, '_', '-' and '.' starting with a letter or digit (no '/' or '..')",
  (s) => !s.includes(".."),
);

/** POSIX user names as useradd accepts them by default. */
export const USER_NAME = regex(/^[a-z_][a-z0-9_-]{0,31}$/, "a POSIX user name");

/**
 * crypt(3) hashes that libxcrypt (Debian's and the cloud images') verifies: MD5 $1$, SHA-256 $5$,
 * SHA-512 $6$, scrypt $7$, yescrypt $y$, gost-yescrypt $gy$, bcrypt $2a$/$2b$/$2y$. One line of the
 * crypt alphabet with at least a salt and a hash field; never a plain password.
 */
export const PASSWORD_HASH = regex(
  /^\$(?:1|5|6|7|y|gy|2[aby])\$[./A-Za-z0-9=,]+(?:\$[./A-Za-z0-9=,]+)+$/,
  "a crypt(3) hash such as the output of mkpasswd -m sha-512 ($6$salt$hash; $1$, $5$, $7$, $y$, $gy$, $2b$ too)",
);

/** OpenSSH public key types (and their certificates) that sshd accepts in authorized_keys. */
export const SSH_KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ssh-dss",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
] as const;

const KEY_TYPES: ReadonlySet<string> = new Set([
  ...SSH_KEY_TYPES,
  ...SSH_KEY_TYPES.map((t) => t.replace(/(@openssh\.com)?$/, "-cert-v01@openssh.com")),
]);

/**
 * The key blob starts with its own type as an SSH string (uint32 length, bytes): a body that is
 * not base64 of such a blob, or names another type, is not a key.
 */
function blobNamesType(body: string, type: string): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) return false;
  const blob = Buffer.from(body, "base64");
  if (blob.length < 4) return false;
  const len = blob.readUInt32BE(0);
  return len === type.length && blob.subarray(4, 4 + len).toString("latin1") === type;
}

/**
 * One authorized_keys line: a known type, a base64 body whose blob names that type, and an
 * optional comment; no options prefix, and nothing that could start a second line.
 */
export const SSH_PUBLIC_KEY: Grammar = {
  describe:
    "an OpenSSH public key on one line: TYPE BASE64 [comment] (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ...)",
  pattern: /^(ssh-|ecdsa-|sk-)[^\s]+ [A-Za-z0-9+/]+={0,2}( [^\r\n]*)?$/,
  test: (s) => {
    // No control character anywhere: a line break would start a second authorized_keys line.
    if ([...s].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f) || s.length > 16384)
      return false;
    const m = /^(\S+) (\S+)(?: .*)?$/.exec(s);
    if (!m) return false;
    const [, type, body] = m as unknown as [string, string, string];
    return KEY_TYPES.has(type) && blobNamesType(body, type);
  },
};
