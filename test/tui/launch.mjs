// Test launcher: runs `kvmstrap tui ARGS` from the build (until main.ts routes "tui" itself).
const { tuiCommand } = await import("../../dist/cli/tui-command.js");
const { reportError } = await import("../../dist/cli/main.js");
try {
  process.exitCode = await tuiCommand(process.argv.slice(2));
} catch (e) {
  process.exitCode = reportError(e, false);
}
