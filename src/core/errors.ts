// Errors that know their exit code, so every front end (CLI, TUI, server) maps them the same way:
// 0 success, 1 a check or step failed, 2 usage or input error, 70 an internal error (a bug, never
// "a check failed"). Stack traces are shown only with --debug.
export const EXIT = { ok: 0, failed: 1, usage: 2, internal: 70 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The command line itself is wrong: a bad flag, a missing argument. */
export class UsageError extends Error {
  override name = "UsageError";
  readonly kind = "usage";
  readonly exitCode: ExitCode = EXIT.usage;
}

/** Bad input: a file, a device or a directory that cannot be used, said with where and why. */
export class InputError extends Error {
  override name = "InputError";
  readonly kind = "input";
  readonly exitCode: ExitCode = EXIT.usage;
}

/** The exit code an error stands for: its own, or internal for anything unexpected. */
export function exitCodeOf(e: unknown): ExitCode {
  if (e instanceof UsageError || e instanceof InputError) return e.exitCode;
  return EXIT.internal;
}
