import { defineConfig } from "vitest/config";

// The PXE tier: real firmware (SeaBIOS with QEMU's iPXE ROM, OVMF PXE and HTTP Boot) booting under
// TCG in network namespaces against kvmstrap's DHCP, beside dnsmasq as the site DHCP. Guests run one
// after another (2 cores).
export default defineConfig({
  test: {
    include: ["test/pxe/**/*.pxe.test.ts"],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: "forks",
    maxWorkers: 1,
    fileParallelism: false,
  },
});
