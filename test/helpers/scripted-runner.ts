// A command runner for tests that knows exactly which programs a plan may run: each call must match
// one entry of the script (by its joined argv), which gives its exit code and output. Anything else
// is recorded as unexpected and fails with exit 127, so a test cannot pass by a runner saying yes to
// whatever the engine happens to run.
import type { CommandResult, CommandRunner } from "../../src/host/commands.js";

export interface ScriptEntry {
  /** Matched against the whole command line (program and arguments joined by spaces). */
  match: RegExp;
  exitCode?: number;
  stdout?: string;
}

export interface ScriptedRunner extends CommandRunner {
  ran: string[];
  unexpected: string[];
}

export function scriptedRunner(script: ScriptEntry[], programs: readonly string[] = []): ScriptedRunner {
  const ran: string[] = [];
  const unexpected: string[] = [];
  return {
    ran,
    unexpected,
    run: async (file, args): Promise<CommandResult> => {
      const line = [file, ...args].join(" ");
      ran.push(line);
      const entry = script.find((e) => e.match.test(line));
      if (!entry) {
        unexpected.push(line);
        return { exitCode: 127, stdout: "", stderr: `not in the test's script: ${line}`, timedOut: false };
      }
      return { exitCode: entry.exitCode ?? 0, stdout: entry.stdout ?? "", stderr: "", timedOut: false };
    },
    which: async (p) => (programs.length === 0 || programs.includes(p) ? `/usr/bin/${p}` : null),
  };
}
