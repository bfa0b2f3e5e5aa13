/* The cluster tests' guest: a boot sector that never halts. It prints a counter on COM1 (0x3f8),
 * four hex digits and a newline, then waits 20 ms through the BIOS (int 0x15, ah=0x86), forever:
 * a guest that keeps running, whose serial output shows any gap or repeat across a migration.
 * counter-guest.ts embeds the assembled bytes.
 * Build: as --32 -o c.o counter-guest.S && ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o c.bin c.o
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
  sti
  xor %bx,%bx
line:
  inc %bx
  mov %bx,%si
  mov $4,%di
digit:
  rol $4,%si
  mov %si,%ax
  and $0xf,%al
  add $0x30,%al
  cmp $0x39,%al
  jbe out
  add $7,%al
out:
  mov $0x3f8,%dx
  out %al,%dx
  dec %di
  jnz digit
  mov $0x0a,%al
  out %al,%dx
  mov $0x86,%ah
  xor %cx,%cx
  mov $20000,%dx
  int $0x15
  jmp line
