// The CLI's errors are the core's: see src/core/errors.ts.
export { EXIT, InputError, UsageError } from "../core/errors.js";
