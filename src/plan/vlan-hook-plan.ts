// The qemu hook that keeps a VM's VLAN on a VLAN-aware Linux bridge (src/vm/vlan-hook.ts), planned
// when the answer gives a VM such a VLAN. It goes in libvirt's hooks/qemu.d/ directory (libvirt >= 6.5
// runs every executable there as well as hooks/qemu), so an operator's own /etc/libvirt/hooks/qemu is
// neither refused nor wrapped: both run, and kvmstrap never edits a file it did not write. libvirtd
// looks for hooks only when it starts, so it is restarted after the file is written and, on undo,
// after the file is removed (undo runs in reverse). Running guests keep running through the restart.
import { currentOf, isRefused, type PlanContext, planCommand, planFile } from "./context.js";

export const VLAN_HOOK_PATH = "/etc/libvirt/hooks/qemu.d/kvmstrap-vlan";

/**
 * The hook script: a wrapper exec'ing kvmstrap, which reads the domain XML libvirtd gives on stdin.
 * Written by hand: a shell wrapper so libvirtd's other lifecycle calls do not each start Node.
 * program: how kvmstrap is run (the test tier runs the built CLI with node).
 */
export function vlanHookScript(program = "/usr/bin/env kvmstrap"): string {
  return [
    "#!/bin/sh",
    "# Managed by kvmstrap: sets each VM's VLAN on its Linux bridge port when libvirt starts the VM",
    "# (the VLAN is in the domain's kvmstrap metadata). Called by libvirtd as: DOMAIN OP SUBOP EXTRA.",
    "# Only a start needs kvmstrap: every other call drains the XML on stdin and returns at once.",
    'case "$2" in start) ;; *) cat >/dev/null; exit 0 ;; esac',
    `exec ${program} libvirt-hook qemu -- "$@"`,
    "",
  ].join("\n");
}

export function planVlanHook(ctx: PlanContext): void {
  const tagged = ctx.answer.vms.some((vm, i) =>
    vm.nics.some((n, j) => "bridge" in n && n.vlan !== undefined && !isRefused(ctx, `vms[${i}].nics[${j}]`)),
  );
  if (!tagged) return;
  const content = vlanHookScript();
  if (currentOf(ctx, VLAN_HOOK_PATH) === content) return;
  planCommand(ctx, {
    id: "vlan-hook.libvirtd-restart-on-undo",
    argv: ["true"],
    undo: ["systemctl", "try-restart", "libvirtd.service"],
    effect: "none",
    summary: "on undo: restart libvirtd once the VLAN hook is removed",
  });
  planFile(ctx, {
    id: "vlan-hook.script",
    path: VLAN_HOOK_PATH,
    content,
    mode: 0o755,
    effect: "none",
    summary:
      "libvirt qemu hook: each VM's VLAN set on its Linux bridge port at every start and incoming migration",
  });
  planCommand(ctx, {
    id: "vlan-hook.libvirtd-restart",
    argv: ["systemctl", "try-restart", "libvirtd.service"],
    effect: "none",
    summary: "restart libvirtd so it finds the new hook",
  });
}
