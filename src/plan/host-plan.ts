// The host's identity and logins: hostname, timezone, users with password hashes and SSH keys.
// What the rule set refused (a bad host name, a user whose key or hash does not parse) is not planned.
import type { PlanContext } from "./context.js";
import { isRefused, planCommand, planFile } from "./context.js";

export function planHost(ctx: PlanContext): void {
  const host = ctx.answer.host;
  if (!host) return;
  if (host.hostname && host.hostname !== ctx.report.hostname && !isRefused(ctx, "host.hostname")) {
    planFile(ctx, {
      id: "host.hostname",
      path: "/etc/hostname",
      content: `${host.hostname}\n`,
      effect: "none",
      summary: `hostname ${host.hostname}`,
    });
    planCommand(ctx, {
      id: "host.hostname-live",
      argv: ["hostname", host.hostname],
      undo: ctx.report.hostname ? ["hostname", ctx.report.hostname] : null,
      effect: "none",
      summary: `set the running hostname to ${host.hostname}`,
    });
  }
  if (host.timezone && !isRefused(ctx, "host.timezone")) {
    planCommand(ctx, {
      id: "host.timezone",
      argv: ["timedatectl", "set-timezone", host.timezone],
      effect: "none",
      summary: `timezone ${host.timezone}`,
    });
  }
  for (const [i, u] of host.users.entries()) {
    if (isRefused(ctx, `host.users[${i}]`)) continue;
    planCommand(ctx, {
      id: `host.user.${u.name}`,
      argv: [
        "useradd",
        "--create-home",
        "--shell",
        "/bin/bash",
        ...(u.groups.length ? ["--groups", u.groups.join(",")] : []),
        u.name,
      ],
      undo: ["userdel", "--remove", u.name],
      check: ["id", u.name],
      effect: "none",
      summary: `user ${u.name}`,
    });
    if (u.passwordHash) {
      planCommand(ctx, {
        id: `host.user.${u.name}.password`,
        argv: ["usermod", "--password", u.passwordHash, u.name],
        secretArgs: [2],
        effect: "none",
        summary: `password hash for ${u.name}`,
      });
    }
    if (u.sshKeys.length) {
      const dir = u.name === "root" ? "/root/.ssh" : `/home/${u.name}/.ssh`;
      planFile(ctx, {
        id: `host.user.${u.name}.ssh`,
        path: `${dir}/authorized_keys`,
        content: `${u.sshKeys.join("\n")}\n`,
        mode: 0o600,
        effect: "none",
        summary: `${u.sshKeys.length} SSH key(s) for ${u.name}`,
      });
      planCommand(ctx, {
        id: `host.user.${u.name}.ssh-owner`,
        argv: ["chown", "-R", `${u.name}:`, dir],
        effect: "none",
        summary: `${dir} owned by ${u.name}`,
      });
    }
    if (u.sudo) {
      planFile(ctx, {
        id: `host.user.${u.name}.sudo`,
        path: `/etc/sudoers.d/kvmstrap-${u.name}`,
        content: `${u.name} ALL=(ALL:ALL) ALL\n`,
        mode: 0o440,
        effect: "none",
        summary: `sudo for ${u.name}`,
      });
    }
  }
}
