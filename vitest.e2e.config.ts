import { defineConfig } from "vitest/config";

// The e2e tier (test/e2e/README.md): real libvirtd, qemu (TCG) and a Debian guest with cloud-init.
// Slow and machine-wide (a private libvirtd, a fixed test subnet), so one file at a time.
export default defineConfig({
  test: {
    include: ["test/e2e/**/*.e2e.test.ts"],
    testTimeout: 300_000,
    hookTimeout: 600_000, // beforeAll may build the guest image (about 2 minutes) and boot it
    pool: "forks",
    maxWorkers: 1,
    fileParallelism: false,
  },
});
