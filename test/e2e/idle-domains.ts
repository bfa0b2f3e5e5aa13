// Small domains that stay running on the test libvirtd for the metrics test and bench:vm: no OS,
// a 1 MiB raw disk whose boot sector idles, one NIC on an isolated network, 32 MiB, TCG. And
// prometheus-libvirt-exporter run as a test-owned process against the same libvirtd.
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa, type ResultPromise } from "execa";
import { freeTcp } from "../helpers/free-port.js";

/**
 * sti; hlt; jmp back to the hlt. The vCPU sleeps between timer interrupts, so under TCG twenty of
 * these cost little CPU, yet their CPU time grows (SeaBIOS's timer wakes them 18 times a second).
 * verify's test VM (src/app/verify-vm-boot.S) powers off after printing: it would not stay up.
 */
const IDLE_BOOT_SECTOR = [0xfb, 0xf4, 0xeb, 0xfd];

const virsh = (uri: string, ...args: string[]) =>
  execa("virsh", ["-c", uri, ...args], { env: { LC_ALL: "C" } });

export const IDLE_NET = { name: "kvst-metrics", bridge: "kvstm0" } as const;

/** An isolated network (a bridge in the test libvirtd's namespace, no DHCP, no NAT). */
export async function startIdleNetwork(uri: string, dir: string): Promise<void> {
  const file = path.join(dir, "net.xml");
  await writeFile(
    file,
    `<network><name>${IDLE_NET.name}</name><bridge name="${IDLE_NET.bridge}" stp="off"/></network>\n`,
  );
  await virsh(uri, "net-define", file);
  await virsh(uri, "net-start", IDLE_NET.name);
}

function idleDisk(): Buffer {
  const disk = Buffer.alloc(2 ** 20);
  Buffer.from(IDLE_BOOT_SECTOR).copy(disk);
  disk[510] = 0x55;
  disk[511] = 0xaa;
  return disk;
}

/** Defines NAME with DISKS disks (vda, vdb...) and one virtio NIC; starts it unless told not to. */
export async function defineIdleDomain(
  uri: string,
  dir: string,
  o: { name: string; disks?: number; start?: boolean },
): Promise<void> {
  let disks = "";
  for (let i = 0; i < (o.disks ?? 1); i++) {
    const file = path.join(dir, `${o.name}-${i}.img`);
    await writeFile(file, idleDisk());
    disks += `<disk type="file" device="disk"><driver name="qemu" type="raw"/><source file="${file}"/><target dev="vd${String.fromCharCode(97 + i)}" bus="virtio"/></disk>`;
  }
  const xml = `<domain type="qemu"><name>${o.name}</name><memory unit="MiB">32</memory><vcpu>1</vcpu>
<os><type arch="x86_64" machine="pc">hvm</type></os>
<devices>${disks}<interface type="network"><source network="${IDLE_NET.name}"/><model type="virtio"/></interface><memballoon model="virtio"/></devices></domain>
`;
  const file = path.join(dir, `${o.name}.xml`);
  await writeFile(file, xml);
  await virsh(uri, "define", file);
  if (o.start ?? true) await virsh(uri, "start", o.name);
}

/** Waits until each domain has read its boot sector from vda (SeaBIOS is done, the guest idles). */
export async function waitIdle(uri: string, names: readonly string[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const name of names) {
    for (;;) {
      const out = (await virsh(uri, "domblkstat", name, "vda")).stdout;
      if (Number(/rd_bytes\s+(\d+)/.exec(out)?.[1] ?? 0) >= 512) break;
      if (Date.now() > deadline)
        throw new Error(`${name} read no boot sector within ${timeoutMs} ms:\n${out}`);
      await sleep(100);
    }
  }
}

export interface LibvirtExporter {
  url: string;
  stop(): Promise<void>;
}

/** prometheus-libvirt-exporter (Debian's package; its service is never started) on a free port. */
export async function startLibvirtExporter(uri: string): Promise<LibvirtExporter> {
  const port = await freeTcp();
  const child: ResultPromise = execa(
    "prometheus-libvirt-exporter",
    [`--libvirt.uri=${uri}`, `--web.listen-address=127.0.0.1:${port}`],
    { reject: false, env: { LC_ALL: "C" } },
  );
  const url = `http://127.0.0.1:${port}/metrics`;
  const stop = async () => {
    child.kill("SIGTERM");
    await child;
  };
  for (let i = 0; ; i++) {
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { url, stop };
    if (i > 100 || child.exitCode !== null) {
      await stop();
      const r = await child;
      throw new Error(`prometheus-libvirt-exporter did not answer on ${url}: ${r.stderr}`);
    }
    await sleep(100);
  }
}
