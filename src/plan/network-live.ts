// The live bridge takeover as plan actions, for the confirm-or-revert gate: the takeover commands
// themselves, preceded by guard actions whose inverses put the port back as it was (bridge deleted,
// addresses and routes returned to the port). The engine reverts in reverse order, so the guards are
// laid out last-step-first and their undo commands run in the right order after a timeout.
import type { Action, RunCommandAction } from "./actions.js";
import { bridgeTakeoverCommands } from "./render/iproute.js";
import type { NetBridge } from "./render/types.js";

/** `ip ...` argv run inside a network namespace (ip -n NS ...), or unchanged. */
const inNetns = (argv: string[], netns?: string) =>
  netns && argv[0] === "ip" ? ["ip", "-n", netns, ...argv.slice(1)] : argv;

export function bridgeRevertCommands(bridge: NetBridge, port: { name: string }): string[][] {
  const cmds: string[][] = [["ip", "link", "del", "dev", bridge.name]];
  for (const a of bridge.addresses) cmds.push(["ip", "address", "replace", a, "dev", port.name]);
  cmds.push(["ip", "link", "set", "dev", port.name, "up"]);
  if (bridge.gateway)
    cmds.push(["ip", "route", "replace", "default", "via", bridge.gateway, "dev", port.name]);
  for (const r of bridge.routes ?? [])
    cmds.push(["ip", "route", "replace", r.to, "via", r.via, "dev", port.name]);
  return cmds;
}

export function bridgeTakeoverActions(
  bridge: NetBridge,
  port: { name: string; mac: string },
  netns?: string,
): Action[] {
  const guards: RunCommandAction[] = bridgeRevertCommands(bridge, port)
    .map((undo, i) => ({
      kind: "run-command" as const,
      id: `network.live.${bridge.name}.revert-${i}`,
      argv: ["true"],
      undo: inNetns(undo, netns),
      check: null,
      effect: "network" as const,
      summary: `on revert: ${undo.join(" ")}`,
    }))
    .reverse();
  const steps: RunCommandAction[] = bridgeTakeoverCommands(bridge, port).map((argv, i) => ({
    kind: "run-command",
    id: `network.live.${bridge.name}.step-${i}`,
    argv: inNetns(argv, netns),
    undo: null,
    check: null,
    effect: "network",
    summary: argv.join(" "),
  }));
  return [...guards, ...steps];
}
