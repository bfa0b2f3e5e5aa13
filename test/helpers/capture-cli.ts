// Runs a CLI command function in process the way main() does (errors mapped to exit codes by
// reportError), capturing what it writes to stdout and stderr.
import { vi } from "vitest";
import { reportError } from "../../src/cli/main.js";

export async function captureCli(
  run: () => Promise<number>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const o = vi.spyOn(process.stdout, "write").mockImplementation((s) => {
    stdout += String(s);
    return true;
  });
  const e = vi.spyOn(process.stderr, "write").mockImplementation((s) => {
    stderr += String(s);
    return true;
  });
  try {
    const code = await run().catch((err: unknown) => reportError(err, false));
    return { code, stdout, stderr };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}
