import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
    exclude: [
      "test/e2e/**",
      "test/image/**",
      "test/**/*.pxe.test.ts",
      "test/**/*.fleet.test.ts",
      "test/**/*.cluster.test.ts",
    ], // the slow tiers have their own configs
    testTimeout: 20_000,
    pool: "forks",
  },
});
