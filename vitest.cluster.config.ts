import { defineConfig } from "vitest/config";

// The cluster tier (test/cluster/): two private libvirtd hosts in namespaces joined over TLS by
// kvmstrap's PKI, real qemu (TCG) guests migrated between them. Machine-wide, so one file at a time.
export default defineConfig({
  test: {
    include: ["test/cluster/**/*.cluster.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 1,
    fileParallelism: false,
  },
});
