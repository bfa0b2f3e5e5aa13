#!/usr/bin/env node
// Builds (or finds cached) the e2e tier's Debian guest image: `npm run guest-image`.
// test/e2e/guest-image.ts is TypeScript outside the build: scripts/import-ts.mjs bundles it.
import { withTsModule } from "./import-ts.mjs";

await withTsModule("test/e2e/guest-image.ts", async ({ ensureGuestImage }) => {
  console.log(JSON.stringify(await ensureGuestImage(), null, 2));
});
