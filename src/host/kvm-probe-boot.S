/* The first stage of kvmstrap's functional KVM probe: a 512-byte boot sector that SeaBIOS loads at
 * 0x7c00. It walks the path a kernel walks (real mode, 32-bit protected mode, PAE paging, long mode),
 * writes "R", "P", "L", "OK" to the debugcon port 0x402 at each step and leaves through
 * isa-debug-exit (QEMU exits with status 33). kvm-probe-boot.ts embeds the assembled bytes; its
 * test re-assembles this file with GNU as/ld, when they are installed, and compares.
 * Build: as --32 -o p.o kvm-probe-boot.S && ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o p.bin p.o
 */
.code16
.globl _start
_start:
  cli
  xor %ax,%ax
  mov %ax,%ds
  mov %ax,%es
  mov %ax,%ss
  mov $0x7c00,%sp
  mov $0x402,%dx
  mov $'R',%al
  out %al,%dx
  lgdt gdtr
  mov %cr0,%eax
  or $1,%eax
  mov %eax,%cr0
  ljmp $0x18,$pm32
.code32
pm32:
  mov $0x10,%ax
  mov %ax,%ds
  mov %ax,%es
  mov %ax,%ss
  mov $0x402,%dx
  mov $'P',%al
  out %al,%dx
  mov $0x1000,%edi
  mov $0xc00,%ecx
  xor %eax,%eax
  rep stosl
  movl $0x2003,0x1000
  movl $0x3003,0x2000
  movl $0x0083,0x3000
  mov %cr4,%eax
  or $0x20,%eax
  mov %eax,%cr4
  mov $0x1000,%eax
  mov %eax,%cr3
  mov $0xC0000080,%ecx
  rdmsr
  or $0x100,%eax
  wrmsr
  mov %cr0,%eax
  or $0x80000000,%eax
  mov %eax,%cr0
  ljmp $0x08,$long_entry
.code64
long_entry:
  mov $0x402,%dx
  mov $'L',%al
  out %al,%dx
  xor %eax,%eax
  cpuid
  mov $0x402,%dx
  mov $'O',%al
  out %al,%dx
  mov $'K',%al
  out %al,%dx
  mov $0x10,%al
  out %al,$0xf4
1: hlt
  jmp 1b
.p2align 3
gdt:
  .quad 0
  .quad 0x00209A0000000000
  .quad 0x00CF92000000FFFF
  .quad 0x00CF9A000000FFFF
gdt_end:
gdtr:
  .word gdt_end - gdt - 1
  .long gdt
.org 510
.word 0xaa55
