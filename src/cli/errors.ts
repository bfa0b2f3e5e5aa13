// Errors the CLI turns into exit codes: usage and input errors exit 2 with one clear line, a
// failing check exits 1. Stack traces appear only with --debug.
export class UsageError extends Error {
  override name = "UsageError";
  readonly kind = "usage";
}

/** Bad input: a file, a device or a directory that cannot be used, said with where and why. */
export class InputError extends Error {
  override name = "InputError";
  readonly kind = "input";
}

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;
