// Every command's --help lists exactly the options its parser accepts: the help text is held to the
// option table the command parses with, so a flag cannot be added, renamed or dropped in one place
// only.
import { describe, expect, it } from "vitest";
import { AGENT_HELP, AGENT_OPTIONS } from "../../src/cli/agent-command.js";
import { ANSWER_HELP, ANSWER_OPTIONS } from "../../src/cli/answer-command.js";
import {
  APPLY_HELP,
  APPLY_OPTIONS,
  CONFIRM_HELP,
  CONFIRM_OPTIONS,
  UNDO_HELP,
  UNDO_OPTIONS,
} from "../../src/cli/apply-command.js";
import { helpOptionNames, type OptionTable } from "../../src/cli/args.js";
import { CLUSTER_HELP, CLUSTER_OPTIONS } from "../../src/cli/cluster-command.js";
import { DETECT_HELP, DETECT_OPTIONS } from "../../src/cli/detect.js";
import { FLEET_HELP, FLEET_OPTIONS } from "../../src/cli/fleet-command.js";
import { FLEET_POWER_HELP, FLEET_POWER_OPTIONS } from "../../src/cli/fleet-power-command.js";
import { FLEET_ROLLOUT_HELP, FLEET_ROLLOUT_OPTIONS } from "../../src/cli/fleet-rollout-command.js";
import { FLEET_STORE_COPY_HELP, FLEET_STORE_COPY_OPTIONS } from "../../src/cli/fleet-store-command.js";
import { HOST_DRAIN_HELP, HOST_DRAIN_OPTIONS, HOST_HELP, HOST_OPTIONS } from "../../src/cli/host-command.js";
import { IMAGE_HELP, IMAGE_OPTIONS } from "../../src/cli/image-command.js";
import { INSTALL_HELP, INSTALL_OPTIONS } from "../../src/cli/install-command.js";
import { ISO_HELP, ISO_OPTIONS } from "../../src/cli/iso-command.js";
import { LIBVIRT_HOOK_HELP, LIBVIRT_HOOK_OPTIONS } from "../../src/cli/libvirt-hook-command.js";
import { METRICS_HELP, METRICS_OPTIONS } from "../../src/cli/metrics-command.js";
import { PKI_HELP, PKI_OPTIONS } from "../../src/cli/pki-command.js";
import { PLAN_HELP, PLAN_OPTIONS } from "../../src/cli/plan-command.js";
import { SERVE_HELP, SERVE_OPTIONS } from "../../src/cli/serve-command.js";
import { SNAPSHOT_HELP, SNAPSHOT_OPTIONS } from "../../src/cli/snapshot-command.js";
import { TUI_HELP, TUI_OPTIONS } from "../../src/cli/tui-command.js";
import { VERIFY_HELP, VERIFY_OPTIONS } from "../../src/cli/verify-command.js";
import { VM_HELP, VM_OPTIONS } from "../../src/cli/vm-command.js";
import { VM_CONSOLE_HELP, VM_CONSOLE_OPTIONS } from "../../src/cli/vm-console-command.js";
import { VM_MIGRATE_HELP, VM_MIGRATE_OPTIONS } from "../../src/cli/vm-migrate-command.js";
import {
  VM_BACKUP_HELP,
  VM_BACKUP_OPTIONS,
  VM_RESTORE_HELP,
  VM_RESTORE_OPTIONS,
  VM_SNAPSHOT_HELP,
  VM_SNAPSHOT_OPTIONS,
} from "../../src/cli/vm-protect-command.js";

const COMMANDS: { name: string; help: string; options: OptionTable; hidden?: string[] }[] = [
  { name: "detect", help: DETECT_HELP, options: DETECT_OPTIONS },
  { name: "plan", help: PLAN_HELP, options: PLAN_OPTIONS },
  { name: "answer", help: ANSWER_HELP, options: ANSWER_OPTIONS },
  { name: "tui", help: TUI_HELP, options: TUI_OPTIONS },
  { name: "vm", help: VM_HELP, options: VM_OPTIONS },
  { name: "vm console --vnc|--spice", help: VM_CONSOLE_HELP, options: VM_CONSOLE_OPTIONS },
  { name: "vm snapshot", help: VM_SNAPSHOT_HELP, options: VM_SNAPSHOT_OPTIONS },
  { name: "vm backup", help: VM_BACKUP_HELP, options: VM_BACKUP_OPTIONS },
  { name: "vm restore", help: VM_RESTORE_HELP, options: VM_RESTORE_OPTIONS },
  { name: "vm migrate", help: VM_MIGRATE_HELP, options: VM_MIGRATE_OPTIONS },
  { name: "snapshot", help: SNAPSHOT_HELP, options: SNAPSHOT_OPTIONS },
  { name: "image", help: IMAGE_HELP, options: IMAGE_OPTIONS },
  // --revert-network RUN is the network watchdog's own entry point, not an operator's option.
  { name: "apply", help: APPLY_HELP, options: APPLY_OPTIONS, hidden: ["revert-network"] },
  { name: "undo", help: UNDO_HELP, options: UNDO_OPTIONS },
  { name: "confirm", help: CONFIRM_HELP, options: CONFIRM_OPTIONS },
  { name: "serve", help: SERVE_HELP, options: SERVE_OPTIONS },
  { name: "install", help: INSTALL_HELP, options: INSTALL_OPTIONS },
  { name: "verify", help: VERIFY_HELP, options: VERIFY_OPTIONS },
  { name: "pki", help: PKI_HELP, options: PKI_OPTIONS },
  { name: "agent", help: AGENT_HELP, options: AGENT_OPTIONS },
  { name: "iso", help: ISO_HELP, options: ISO_OPTIONS },
  { name: "fleet", help: FLEET_HELP, options: FLEET_OPTIONS },
  { name: "fleet rollout", help: FLEET_ROLLOUT_HELP, options: FLEET_ROLLOUT_OPTIONS },
  { name: "fleet power", help: FLEET_POWER_HELP, options: FLEET_POWER_OPTIONS },
  { name: "fleet store-copy", help: FLEET_STORE_COPY_HELP, options: FLEET_STORE_COPY_OPTIONS },
  { name: "metrics", help: METRICS_HELP, options: METRICS_OPTIONS },
  { name: "host", help: HOST_HELP, options: HOST_OPTIONS },
  { name: "host drain", help: HOST_DRAIN_HELP, options: HOST_DRAIN_OPTIONS },
  { name: "cluster", help: CLUSTER_HELP, options: CLUSTER_OPTIONS },
  { name: "libvirt-hook", help: LIBVIRT_HOOK_HELP, options: LIBVIRT_HOOK_OPTIONS },
];

describe("help texts match the option tables", () => {
  for (const c of COMMANDS) {
    it(`kvmstrap ${c.name} --help lists every option it accepts, and no other`, () => {
      const accepted = Object.keys(c.options)
        .filter((k) => !(c.hidden ?? []).includes(k))
        .sort();
      expect(helpOptionNames(c.help)).toEqual(accepted);
    });
  }

  it("reads option lines the way the help texts write them", () => {
    const help =
      "Options:\n  --json         JSON\n  -h, --help     help\n  --root DIR     a root\n  --offline, --online  both\nNot an option: --nope\n";
    expect(helpOptionNames(help)).toEqual(["help", "json", "offline", "online", "root"]);
  });
});
