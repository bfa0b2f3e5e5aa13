// The test VM's disk: the boot sector of verify-vm-boot.S followed by its message, padded to 1 MiB
// (a whole number of sectors for any disk controller). The code is kept assembled, as data, so the
// installed system needs no assembler; test/app/verify-vm-boot.test.ts proves it matches the source.
export const TESTVM_CODE_BASE64 = "+vwxwI7YjtC8AHy+I3y6+AOshMB0A+7r+LoEBrgAIO/06/0=";

/** What the guest prints on its serial console, followed by the run's nonce. */
export const TESTVM_MARKER = "KVMSTRAP-TESTVM-OK";

const SECTOR = 512;
export const TESTVM_DISK_BYTES = 1024 * 1024;

/** The raw disk image whose guest prints `${TESTVM_MARKER} ${nonce}` on COM1 and powers off. */
export function testVmDisk(nonce: string): Buffer {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(nonce))
    throw new Error(`test VM nonce must be [A-Za-z0-9-]{1,64}: ${nonce}`);
  const code = Buffer.from(TESTVM_CODE_BASE64, "base64");
  const message = Buffer.from(`\r\n${TESTVM_MARKER} ${nonce}\r\n\0`, "latin1");
  const disk = Buffer.alloc(TESTVM_DISK_BYTES);
  code.copy(disk, 0);
  message.copy(disk, code.length);
  disk[SECTOR - 2] = 0x55;
  disk[SECTOR - 1] = 0xaa;
  return disk;
}
