// The checks of `kvmstrap verify` that ask libvirt: the storage pools the answer promised are active,
// and a small test VM boots.
//
// The test VM is a 512-byte boot sector (verify-vm-boot.S) that prints a marker with this run's
// nonce on its serial console and powers itself off. Why not a Linux guest: verify runs on the
// installed system's first boot, where the host itself may be a TCG guest (the image tests) and a
// nested TCG kernel boot takes minutes; the boot sector proves the same chain (libvirt defines and
// starts a domain, qemu runs firmware and guest code, the serial console reaches the host) in about
// a second, needs no kernel or image on the host, and is x86 code for any x86 vendor. The domain
// goes through the project's libvirt port and domain XML: defined, started, then undefined at once
// so libvirt holds it as a transient domain that vanishes when it powers off, even if verify dies.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { renderDomainXml } from "../vm/domain-xml.js";
import type { Libvirt } from "../vm/libvirt.js";
import { LibvirtError } from "../vm/libvirt-error.js";
import type { VerifyCheck } from "./verify-result.js";
import { TESTVM_MARKER, testVmDisk } from "./verify-vm-boot.js";

export const TESTVM_NAME = "kvmstrap-verify";
const LOG_GRACE_MS = 2000;

const where = (libvirt: Libvirt, extra: string[]) => [...extra, `virsh -c ${libvirt.uri} list --all`];
const describeError = (e: unknown) =>
  e instanceof LibvirtError ? `${e.code}: ${e.message}` : (e as Error).message;

/** Each promised pool is defined and active. An inactive pool refuses vol-list: that is the probe. */
export async function poolChecks(libvirt: Libvirt, pools: string[]): Promise<VerifyCheck[]> {
  const out: VerifyCheck[] = [];
  for (const name of pools) {
    const base = {
      id: `pool.${name}`,
      expected: `storage pool ${name} active`,
      where: where(libvirt, [`virsh -c ${libvirt.uri} pool-info ${name}`]),
    };
    try {
      const vols = await libvirt.volList(name);
      out.push({ ...base, status: "pass", found: `active, ${vols.length} volume(s)` });
    } catch (e) {
      const code = e instanceof LibvirtError ? e.code : "other";
      const found =
        code === "invalid-state"
          ? "defined but not active"
          : code === "no-pool"
            ? "not defined"
            : `libvirt did not answer: ${describeError(e)}`;
      out.push({ ...base, status: "fail", found });
    }
  }
  return out;
}

export interface TestVmOptions {
  libvirt: Libvirt;
  /** Holds the disk and the serial log while the VM runs; qemu must be able to read it. */
  dir: string;
  /** The functional probe found KVM usable: the domain is type kvm, else qemu (TCG). */
  kvm: boolean;
  nonce: string;
  timeoutMs?: number;
  /** Node's name for the host architecture (process.arch by default). */
  hostArch?: string;
}

async function quietly(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch {
    /* already gone */
  }
}

/** Boots the test VM and waits for its marker; always leaves no domain behind. */
export async function testVmCheck(o: TestVmOptions): Promise<VerifyCheck> {
  const { libvirt } = o;
  const serialLog = path.join(o.dir, "serial.log");
  const disk = path.join(o.dir, "disk.img");
  const expected = "a test VM boots and prints its marker on its serial console";
  const check = (status: VerifyCheck["status"], found: string): VerifyCheck => ({
    id: "vm.boot",
    status,
    expected,
    found,
    where: where(libvirt, [serialLog, "/var/log/libvirt/qemu/kvmstrap-verify.log"]),
  });
  const arch = o.hostArch ?? process.arch;
  if (arch !== "x64") return check("unknown", `the test VM is x86 code; this host is ${arch}`);
  const type = o.kvm ? "kvm" : "qemu";
  const marker = `${TESTVM_MARKER} ${o.nonce}`;
  const timeoutMs = o.timeoutMs ?? 90_000;
  const t0 = Date.now();
  let defined = false;
  try {
    // A domain left by a verify that was killed: the name is ours.
    if (await libvirt.domainExists(TESTVM_NAME)) {
      await quietly(() => libvirt.destroy(TESTVM_NAME));
      await quietly(() => libvirt.undefineDomain(TESTVM_NAME));
    }
    // qemu runs as its own user on a real host: the directory must be searchable, the disk readable.
    await mkdir(o.dir, { recursive: true, mode: 0o755 });
    await writeFile(disk, testVmDisk(o.nonce), { mode: 0o644 });
    await rm(serialLog, { force: true });
    const xml = renderDomainXml({
      name: TESTVM_NAME,
      domainType: type,
      vcpus: 1,
      memoryMiB: 64,
      disk: { path: disk, format: "raw" },
      nics: [],
      serialLog,
      vhostNet: false,
    });
    await libvirt.defineDomain(xml);
    defined = true;
    await libvirt.start(TESTVM_NAME);
    await libvirt.undefineDomain(TESTVM_NAME);
    defined = false;
    for (;;) {
      const log = await readFile(serialLog, "latin1").catch(() => "");
      if (log.includes(marker)) {
        return check(
          "pass",
          `booted (${type === "kvm" ? "KVM" : "TCG"}) and printed its marker in ${Date.now() - t0} ms`,
        );
      }
      const running = await libvirt.domainExists(TESTVM_NAME);
      if (!running || Date.now() - t0 > timeoutMs) {
        // The guest powers off right after the marker, and the log's writer (virtlogd, or qemu) may
        // flush after the domain is gone: read again for a short while before calling it a failure.
        let last = "";
        for (const end = Date.now() + LOG_GRACE_MS; ; ) {
          last = await readFile(serialLog, "latin1").catch(() => "");
          if (last.includes(marker) || Date.now() > end) break;
          await sleep(100);
        }
        if (last.includes(marker))
          return check(
            "pass",
            `booted (${type === "kvm" ? "KVM" : "TCG"}) and printed its marker in ${Date.now() - t0} ms`,
          );
        const tail = last
          .replace(/[^\x20-\x7e\n]/g, "")
          .trim()
          .split("\n")
          .slice(-3)
          .join(" | ");
        const why = running
          ? `no marker within ${Math.round(timeoutMs / 1000)} s`
          : "the VM stopped without printing its marker";
        return check("fail", `${why} (${type}); serial console: ${tail || "empty"}`);
      }
      await sleep(200);
    }
  } catch (e) {
    return check("fail", `could not run the test VM (${type}): ${describeError(e)}`);
  } finally {
    await quietly(async () => {
      if (await libvirt.domainExists(TESTVM_NAME)) await libvirt.destroy(TESTVM_NAME);
    });
    if (defined) await quietly(() => libvirt.undefineDomain(TESTVM_NAME));
    await rm(o.dir, { recursive: true, force: true });
  }
}
