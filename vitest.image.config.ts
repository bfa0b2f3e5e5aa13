import { defineConfig } from "vitest/config";

// The appliance image tier (test/image/README.md): builds the ISO and netboot set once (globalSetup,
// with the cached live root), then boots them under QEMU TCG, one guest at a time (2 cores).
export default defineConfig({
  test: {
    include: ["test/image/**/*.image.test.ts"],
    globalSetup: ["test/image/global-setup.ts"],
    testTimeout: 900_000, // a boot is bounded by its own hang detector (test/image/image.ts, 600 s)
    hookTimeout: 1_800_000, // a cold build (mmdebstrap, mksquashfs) takes 6-15 minutes on a busy machine
    pool: "forks",
    maxWorkers: 1,
    fileParallelism: false,
  },
});
