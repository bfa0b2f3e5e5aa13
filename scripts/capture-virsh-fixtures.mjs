#!/usr/bin/env node
// Recaptures test/vm/fixtures/virsh/*.txt from a real libvirtd (root; see test/vm/capture-virsh.ts,
// which does the work when imported). It is TypeScript outside the build: scripts/import-ts.mjs
// bundles it.
import { projectRoot, withTsModule } from "./import-ts.mjs";

process.chdir(projectRoot);
await withTsModule("test/vm/capture-virsh.ts", async () => {});
