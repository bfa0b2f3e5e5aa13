// Opening the fleet store: which driver a setting names, and a PostgreSQL that cannot be reached
// is an input error naming the URL (without its password), not a stack trace.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { InputError } from "../../../src/core/errors.js";
import { openStore, redact } from "../../../src/fleet/store/index.js";

describe("openStore", () => {
  it("takes a postgresql:// URL as a PostgreSQL, and says so when it cannot reach it", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), `kvmstrap-fleet-open-${process.pid}-`));
    try {
      // A socket directory with no server in it: the connection fails at once.
      const url = `postgresql://fleet:s3cret@localhost:5432/fleet?host=${encodeURIComponent(dir)}`;
      const err = await openStore(url).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InputError);
      expect((err as Error).message).toMatch(/cannot reach the fleet's PostgreSQL/);
      expect((err as Error).message).toContain("fleet:***@localhost");
      expect((err as Error).message).not.toContain("s3cret");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("redacts only the password", () => {
    expect(redact("postgres://u:p@h:5432/db")).toBe("postgres://u:***@h:5432/db");
    expect(redact("postgresql://u@h/db")).toBe("postgresql://u@h/db");
  });
});
