import { defineConfig } from "vitest/config";

// The fleet tier (src/fleet/store/README.md): the store on embedded PGlite and on a test-owned
// PostgreSQL 15, with real processes killed (kill -9) and the server restarted mid-ingest.
// One file at a time: each starts its own PostgreSQL and the machine has 2 cores.
export default defineConfig({
  test: {
    include: ["test/fleet/**/*.fleet.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 1,
    fileParallelism: false,
  },
});
