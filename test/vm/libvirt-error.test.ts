// The error classifier and message on the stderr of real virsh failures (test/vm/fixtures/virsh/err-*,
// captured from the e2e tier's libvirtd by scripts/capture-virsh-fixtures.mjs; INDEX.md lists the
// commands). Every capture must be recognised: none may fall through to "other".
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  classifyVirshError,
  type LibvirtErrorCode,
  libvirtRemedy,
  virshErrorMessage,
} from "../../src/vm/libvirt-error.js";

const DIR = path.join(import.meta.dirname, "fixtures/virsh");
const stderr = (f: string) => readFileSync(path.join(DIR, f), "utf8");

const EXPECTED: Record<string, { code: LibvirtErrorCode; message: RegExp }> = {
  "err-connect.txt": {
    code: "connect",
    message:
      /^failed to connect to the hypervisor: Failed to connect socket to '.*no-such-socket': No such file or directory$/,
  },
  "err-no-domain.txt": { code: "no-domain", message: /^failed to get domain 'kvst-missing'$/ },
  "err-no-domain-uuid.txt": { code: "no-domain", message: /^failed to get domain 'kvst-missing'$/ },
  "err-no-network.txt": {
    code: "no-network",
    message:
      /^failed to get network 'kvst-missing': Network not found: no network with matching name 'kvst-missing'$/,
  },
  "err-no-network-leases.txt": { code: "no-network", message: /Network not found/ },
  "err-no-pool.txt": {
    code: "no-pool",
    message: /^failed to get pool 'kvst-missing': Storage pool not found/,
  },
  "err-no-pool-vol-list.txt": { code: "no-pool", message: /Storage pool not found/ },
  "err-no-volume.txt": {
    code: "no-volume",
    message: /^failed to get vol 'kvst-missing\.qcow2': Storage volume not found/,
  },
  "err-pool-exists.txt": {
    code: "exists",
    message: /^Failed to define pool from .*: pool 'kvst-pool' already exists with uuid [0-9a-f-]{36}$/,
  },
  "err-domain-exists.txt": { code: "exists", message: /domain 'kvst-capture' already exists/ },
  "err-start-running.txt": { code: "invalid-state", message: /^Domain is already active$/ },
  "err-destroy-stopped.txt": {
    code: "invalid-state",
    message:
      /^Failed to destroy domain 'kvst-stopped': Requested operation is not valid: domain is not running$/,
  },
  "err-agent-not-running.txt": { code: "invalid-state", message: /domain is not running/ },
  "err-agent-not-connected.txt": { code: "agent", message: /QEMU guest agent is not connected/ },
  // The two a host without vhost-net or hugepages gives: libvirt says "unsupported configuration" and
  // "internal error", which printed as is read as a kvmstrap bug.
  "err-vhost-net.txt": {
    code: "host-lacks",
    message:
      /^Failed to start domain 'kvst-vhost': vhost-net was requested for an interface, but is unavailable$/,
  },
  "err-hugepages.txt": {
    code: "host-lacks",
    message:
      /^Failed to start domain 'kvst-huge': hugetlbfs filesystem is not mounted or disabled by administrator config$/,
  },
};

describe("libvirt errors captured from real virsh", () => {
  const files = readdirSync(DIR).filter((f) => f.startsWith("err-"));

  it("every captured failure has an expectation here (a new capture needs one)", () => {
    expect(files.sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const [file, want] of Object.entries(EXPECTED)) {
    it(`${file}: ${want.code}`, () => {
      const text = stderr(file);
      expect(classifyVirshError(text)).toBe(want.code);
      const message = virshErrorMessage(text);
      expect(message).toMatch(want.message);
      expect(message).not.toMatch(/^error: |internal error/);
    });
  }

  it("says what to do where the message alone does not", () => {
    expect(libvirtRemedy("host-lacks")).toMatch(/vhost_net.*hugepages/);
    expect(libvirtRemedy("connect")).toMatch(/systemctl start libvirtd/);
    expect(libvirtRemedy("no-domain")).toBeUndefined();
  });

  it("an unknown failure stays 'other' with its last line", () => {
    expect(classifyVirshError("error: something new\n")).toBe("other");
    expect(virshErrorMessage("error: something new\n")).toBe("something new");
    expect(virshErrorMessage("")).toBe("virsh failed without a message");
  });
});
