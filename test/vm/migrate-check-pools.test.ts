// A VM whose disk is a shared pool's volume (a cluster store) is refused before anything starts when
// that pool is not active on the target; network disks and copied file disks ask nothing of it.
import { describe, expect, it } from "vitest";
import { localDisks, type MigrationFacts, migrationRefusals } from "../../src/vm/migrate-check.js";

const report: MigrationFacts["targetReport"] = {
  cpu: { vendor: null, model: null, flags: [] },
  pci: [],
  nics: [],
  memory: { hugepageSizeKiB: null, hugepages: {} },
};
const xml = `<domain type='qemu'><name>web</name><memory unit='MiB'>32</memory><devices>
  <disk type='volume' device='disk'><source pool='san1' volume='unit:0:0:1'/><target dev='vda' bus='virtio'/></disk>
  <disk type='network' device='disk'><source protocol='nfs' name='/srv/vms/d.raw'><host name='10.0.0.8'/></source><target dev='vdb' bus='virtio'/></disk>
</devices></domain>`;
const facts = (activePools?: string[]): MigrationFacts => ({
  vm: "web",
  domainXml: xml,
  sourceHostname: "hv1",
  sourceHostCpu: null,
  targetReport: report,
  target: {
    hostname: "hv2",
    hostCpu: null,
    usableCpuModels: [],
    activeNetworks: [],
    ...(activePools ? { activePools } : {}),
  },
});

describe("migration check: shared pools", () => {
  it("refuses when the volume's pool is not active on the target, naming disk, pool and host", () => {
    expect(migrationRefusals(facts(["default"]))).toEqual([
      'storage: disk vda is a volume of pool "san1", which is not active on hv2 (the cluster\'s storage plan defines it on every member)',
    ]);
  });

  it("goes when the pool is active there; the network disk asks nothing; neither is copied", () => {
    expect(migrationRefusals(facts(["san1"]))).toEqual([]);
    expect(localDisks(xml)).toEqual([]);
  });

  it("facts without the pool list (an older caller) do not refuse", () => {
    expect(migrationRefusals(facts())).toEqual([]);
  });
});
