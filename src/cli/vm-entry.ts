// The `vm` command's entry from main.ts. `vm migrate` (and so every run of a drain or a bench) goes
// straight to vm-migrate-command.ts: vm-command.ts imports the deploy, answer and readiness modules
// at its top, about 0.2 s of node's time that a migration never uses. Every other subcommand, and
// migrate too when vm-command.ts is called directly, is vm-command.ts's.
export async function vmCommand(argv: string[]): Promise<number> {
  if (argv[0] === "migrate") return (await import("./vm-migrate-command.js")).vmMigrateCommand(argv.slice(1));
  return (await import("./vm-command.js")).vmCommand(argv);
}
