// The disk and domain of the cluster tests' guest (counter-guest.S): a boot sector that prints a
// counter on its serial console 50 times a second and never halts, followed by random data that a
// storage copy must carry over unchanged. TCG (type 'qemu'), so it runs the same on any host CPU.
import { randomBytes } from "node:crypto";

export const COUNTER_CODE_BASE64 =
  "+vwxwI7YjtC8AHz7MdtDid6/BADBxgSJ8CQPBDA8OXYCBAe6+APuT3XqsArutIYxybogTs0V69Y=";
export const DISK_BYTES = 4 * 1024 * 1024;

export function counterDisk(): Buffer {
  const disk = randomBytes(DISK_BYTES);
  disk.fill(0, 0, 512);
  Buffer.from(COUNTER_CODE_BASE64, "base64").copy(disk, 0);
  disk[510] = 0x55;
  disk[511] = 0xaa;
  return disk;
}

/** Paths are the host's own (/var/lib/libvirt, /var/log/libvirt): each test host has its own. */
export function counterDomain(name: string, bridge: string): string {
  return `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/libvirt/images/${name}.raw'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <interface type='bridge'><source bridge='${bridge}'/><model type='e1000e'/></interface>
    <serial type='file'><source path='/var/log/libvirt/qemu/${name}-serial.log'/></serial>
  </devices>
</domain>`;
}

/** The counters printed across the given serial logs, in order (a partial line joins the next file). */
export function counters(...logs: string[]): number[] {
  return logs
    .join("")
    .split("\n")
    .filter((l) => /^[0-9A-F]{4}$/.test(l))
    .map((l) => Number.parseInt(l, 16));
}

/** Places where the counter did not go up by one (wrapping at 0x10000). */
export function gaps(values: number[]): string[] {
  const out: string[] = [];
  for (let i = 1; i < values.length; i++) {
    const [a, b] = [values[i - 1] as number, values[i] as number];
    if (b !== ((a + 1) & 0xffff)) out.push(`${a.toString(16)} -> ${b.toString(16)}`);
  }
  return out;
}
