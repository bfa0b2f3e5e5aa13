/* The guest of kvmstrap verify's test VM: a boot sector that SeaBIOS loads at 0x7c00. It copies the
 * NUL-terminated message that follows it (verify-vm-boot.ts appends "KVMSTRAP-TESTVM-OK <nonce>")
 * to the first serial port (COM1, 0x3f8), then powers the machine off through the ACPI PM1a control
 * register QEMU puts at 0x604 (SLP_EN with sleep type 0: QEMU's soft-off), so a domain with
 * on_poweroff=destroy ends by itself. hlt in a loop if the power-off is not there.
 * verify-vm-boot.ts embeds the assembled bytes; its test re-assembles this file with GNU as/ld,
 * when they are installed, and compares.
 * Build: as --32 -o v.o verify-vm-boot.S && ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o v.bin v.o
 */
.code16
.globl _start
_start:
  cli
  cld
  xor %ax,%ax
  mov %ax,%ds
  mov %ax,%ss
  mov $0x7c00,%sp
  mov $msg,%si
  mov $0x3f8,%dx
next:
  lodsb
  test %al,%al
  jz done
  out %al,%dx
  jmp next
done:
  mov $0x604,%dx
  mov $0x2000,%ax
  out %ax,%dx
halt:
  hlt
  jmp halt
msg:
