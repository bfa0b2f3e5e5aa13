// The backup chain's manifest, its order and its checksums, and the XML kvmstrap hands libvirt for
// snapshots, backups and a restored domain: each refusal names the file or the entry and says why.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { InputError } from "../../src/core/errors.js";
import { backupXmlFor, checkpointXmlFor } from "../../src/vm/backup.js";
import {
  type BackupEntry,
  checkChain,
  type Manifest,
  parseManifest,
  readManifest,
  sha256File,
  verifyChainFiles,
} from "../../src/vm/backup-manifest.js";
import { chainImage, restoredDomainXml } from "../../src/vm/restore.js";
import {
  checkSnapshotName,
  overlayPath,
  parseSnapshotXml,
  readonlyTargets,
  snapshotXmlFor,
  type VmDisk,
} from "../../src/vm/snapshot.js";
import { parseDomBlkList, parseJobInfo } from "../../src/vm/virsh-parse.js";

const sum = (c: string) => c.repeat(64).slice(0, 64);
const entry = (seq: number, since: string | null, over: Partial<BackupEntry> = {}): BackupEntry => ({
  seq,
  kind: seq === 0 ? "full" : "incremental",
  checkpoint: `kvmstrap-T-${seq}`,
  since,
  takenAt: "2026-12-06T09:00:00.000Z",
  durationMs: 100,
  files: [
    {
      disk: "vda",
      file: `${seq}-${seq === 0 ? "full" : "incremental"}/vda.qcow2`,
      size: 3,
      virtualSize: 1024,
      sha256: sum("a"),
    },
  ],
  ...over,
});
const chain = (...entries: BackupEntry[]): Manifest => ({
  format: "kvmstrap-backup/1",
  vm: "web",
  domainXml: "domain.xml",
  entries,
});
const refusal = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as Error).message;
  }
  return "accepted";
};

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe("the chain's order", () => {
  it("a full backup then incrementals each counted from the checkpoint before: accepted", () => {
    expect(
      refusal(() =>
        checkChain(chain(entry(0, null), entry(1, "kvmstrap-T-0"), entry(2, "kvmstrap-T-1")), "m.json"),
      ),
    ).toBe("accepted");
  });
  it("an incremental counted from another checkpoint is a broken chain, named by entry", () => {
    expect(refusal(() => checkChain(chain(entry(0, null), entry(1, "kvmstrap-X")), "/b/m.json"))).toBe(
      '/b/m.json: entries[1] (1-incremental): counts changes since checkpoint "kvmstrap-X", but the backup before it made "kvmstrap-T-0": broken chain',
    );
  });
  it("a missing backup, an incremental first, a full inside, no backups: each refused", () => {
    expect(refusal(() => checkChain(chain(entry(0, null), entry(2, "kvmstrap-T-0")), "m"))).toMatch(
      /seq 2, expected 1: a backup is missing/,
    );
    expect(refusal(() => checkChain(chain(entry(0, "kvmstrap-T-9", { kind: "incremental" })), "m"))).toMatch(
      /must start with a full backup/,
    );
    expect(refusal(() => checkChain(chain(entry(0, null), entry(1, null, { kind: "full" })), "m"))).toMatch(
      /a full backup inside a chain/,
    );
    expect(refusal(() => checkChain(chain(), "m"))).toMatch(/no backups/);
  });
  it("an incremental that covers other disks than the one before it is refused", () => {
    const other = entry(1, "kvmstrap-T-0", {
      files: [{ ...entry(1, "").files[0], disk: "vdb" } as BackupEntry["files"][0]],
    });
    expect(refusal(() => checkChain(chain(entry(0, null), other), "m"))).toMatch(/disks vdb differ from vda/);
  });
});

describe("the manifest", () => {
  it("not JSON, or a bad key, is refused naming the file and the key", () => {
    expect(refusal(() => parseManifest("{", "/b/manifest.json"))).toMatch(/^\/b\/manifest\.json: not JSON/);
    const bad = JSON.stringify({
      ...chain(entry(0, null)),
      entries: [{ ...entry(0, null), files: [{ ...entry(0, null).files[0], sha256: "xyz" }] }],
    });
    expect(refusal(() => parseManifest(bad, "/b/manifest.json"))).toBe(
      "/b/manifest.json: entries.0.files.0.sha256: 64 hex digits",
    );
    const outside = JSON.stringify({ ...chain(entry(0, null)), domainXml: "../../etc/passwd" });
    expect(refusal(() => parseManifest(outside, "m"))).toMatch(/domainXml: a relative path inside the chain/);
  });
  it("a missing manifest says so; an oversized one is not read", async () => {
    const d = await mkdtemp(path.join(tmpdir(), "kvmstrap-manifest-"));
    dirs.push(d);
    await expect(readManifest(d)).rejects.toThrow(`${d}/manifest.json: no backup manifest here`);
    await writeFile(path.join(d, "manifest.json"), " ".repeat(2 << 20));
    await expect(readManifest(d)).rejects.toThrow(/more than a manifest can be/);
  });
});

describe("the files' checksums", () => {
  const setup = async () => {
    const d = await mkdtemp(path.join(tmpdir(), "kvmstrap-chain-"));
    dirs.push(d);
    await mkdir(path.join(d, "0-full"));
    await mkdir(path.join(d, "1-incremental"));
    await writeFile(path.join(d, "0-full/vda.qcow2"), "full");
    await writeFile(path.join(d, "1-incremental/vda.qcow2"), "inc");
    const f0 = path.join(d, "0-full/vda.qcow2");
    const f1 = path.join(d, "1-incremental/vda.qcow2");
    const m = chain(
      entry(0, null, {
        files: [
          { disk: "vda", file: "0-full/vda.qcow2", size: 4, virtualSize: 1, sha256: await sha256File(f0) },
        ],
      }),
      entry(1, "kvmstrap-T-0", {
        files: [
          {
            disk: "vda",
            file: "1-incremental/vda.qcow2",
            size: 3,
            virtualSize: 1,
            sha256: await sha256File(f1),
          },
        ],
      }),
    );
    return { d, f0, f1, m };
  };
  it("every file as recorded: accepted", async () => {
    const { d, m } = await setup();
    await expect(verifyChainFiles(d, m)).resolves.toBeUndefined();
  });
  it("a changed byte is refused naming the file; a file past --upto is not read", async () => {
    const { d, f1, m } = await setup();
    await writeFile(f1, "inX");
    await expect(verifyChainFiles(d, m)).rejects.toThrow(
      new RegExp(`^${f1}: sha256 [0-9a-f]{64} does not match the manifest's`),
    );
    await expect(verifyChainFiles(d, m, 0)).resolves.toBeUndefined();
  });
  it("a truncated or missing file is refused naming it", async () => {
    const { d, f0, m } = await setup();
    await writeFile(f0, "fu");
    await expect(verifyChainFiles(d, m)).rejects.toThrow(`${f0}: 2 bytes, the manifest says 4`);
    await rm(f0);
    await expect(verifyChainFiles(d, m)).rejects.toThrow(`${f0}: missing (backup 0-full, disk vda)`);
  });
});

const DISKS: VmDisk[] = [
  { type: "file", device: "disk", target: "vda", source: "/vms/web/disk.qcow2", readonly: false },
  { type: "file", device: "disk", target: "vdb", source: "/vms/web/seed.iso", readonly: true },
];

describe("what libvirt is given", () => {
  it("a disk-only snapshot: an overlay beside each writable disk, the seed left out", () => {
    expect(snapshotXmlFor("s1", DISKS)).toBe(`<domainsnapshot>
  <name>s1</name>
  <description>kvmstrap vm snapshot</description>
  <disks>
    <disk name='vda' snapshot='external'><driver type='qcow2'/><source file='/vms/web/disk.s1.qcow2'/></disk>
    <disk name='vdb' snapshot='no'/>
  </disks>
</domainsnapshot>
`);
    expect(overlayPath("/vms/a&b/disk", "s1")).toBe("/vms/a&b/disk.s1.qcow2");
    expect(snapshotXmlFor("s1", [{ ...(DISKS[0] as VmDisk), source: "/vms/a&b/d.qcow2" }])).toContain(
      "file='/vms/a&amp;b/d.s1.qcow2'",
    );
    expect(refusal(() => checkSnapshotName("../x"))).toMatch(/snapshot name "..\/x"/);
  });
  it("a push backup (incremental from a checkpoint) and its checkpoint, the seed left out", () => {
    const files = new Map([["vda", "/b/chain-T/1-incremental.kvmstrap-tmp-1/vda.qcow2"]]);
    expect(backupXmlFor(DISKS, files, "kvmstrap-T-0")).toBe(`<domainbackup mode='push'>
  <incremental>kvmstrap-T-0</incremental>
  <disks>
    <disk name='vda' backup='yes' type='file'><driver type='qcow2'/><target file='/b/chain-T/1-incremental.kvmstrap-tmp-1/vda.qcow2'/></disk>
    <disk name='vdb' backup='no'/>
  </disks>
</domainbackup>
`);
    expect(backupXmlFor(DISKS, files, null)).not.toContain("<incremental>");
    expect(checkpointXmlFor("kvmstrap-T-1", DISKS, new Set(["vda"]))).toContain(
      "<disk name='vda' checkpoint='bitmap'/>\n    <disk name='vdb' checkpoint='no'/>",
    );
  });
  it("restore reads each disk as the newest incremental over the ones before over the full backup", () => {
    const m = chain(entry(0, null), entry(1, "kvmstrap-T-0"));
    expect(chainImage("/b/chain-T", m.entries, "vda")).toEqual({
      driver: "qcow2",
      file: { driver: "file", filename: "/b/chain-T/1-incremental/vda.qcow2" },
      backing: {
        driver: "qcow2",
        file: { driver: "file", filename: "/b/chain-T/0-full/vda.qcow2" },
        backing: null,
      },
    });
  });
  it("a restored domain under a new name: its disk, no UUID, MAC, metadata or old serial log; the seed kept", () => {
    const xml = `<domain type='qemu'>
  <name>web</name>
  <uuid>0b3e1d2a-0000-4000-8000-000000000001</uuid>
  <metadata>
    <kvmstrap:vm xmlns:kvmstrap="urn:kvmstrap:vm:1" spec="abc"/>
  </metadata>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/vms/web/disk.qcow2'/>
      <backingStore type='file'><format type='qcow2'/><source file='/images/debian.qcow2'/></backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/vms/web/seed.iso'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:aa:bb:cc'/>
      <source network='default'/>
    </interface>
    <serial type='pty'>
      <log file='/vms/web/serial.log' append='off'/>
    </serial>
  </devices>
</domain>
`;
    expect(readonlyTargets(xml)).toEqual(new Set(["vdb"]));
    const out = restoredDomainXml(xml, new Map([["vda", "/vms/new.qcow2"]]), {
      name: "new",
      serialLog: "/vms/new.serial.log",
    });
    expect(out).toContain("<name>new</name>");
    expect(out).not.toMatch(/<uuid>|<mac |<metadata>|backingStore|\/vms\/web\/disk|\/vms\/web\/serial/);
    expect(out).toContain("<source file='/vms/new.qcow2'/>");
    expect(out).toContain("<source file='/vms/web/seed.iso'/>");
    expect(out).toContain("<log file='/vms/new.serial.log' append='off'/>");
    // --replace keeps the identity and changes only the disk.
    const same = restoredDomainXml(xml, new Map([["vda", "/vms/web.restored.qcow2"]]), null);
    expect(same).toContain("<uuid>0b3e1d2a-0000-4000-8000-000000000001</uuid>");
    expect(same).toContain("52:54:00:aa:bb:cc");
  });
});

describe("what libvirt answers", () => {
  it("snapshot-dumpxml: name, time, state, parent and the overlays", () => {
    const s = parseSnapshotXml(`<domainsnapshot>
  <name>s2</name>
  <state>running</state>
  <parent><name>s1</name></parent>
  <creationTime>1796547600</creationTime>
  <memory snapshot='no'/>
  <disks>
    <disk name='vda' snapshot='external' type='file'><driver type='qcow2'/><source file='/vms/web/disk.s1.s2.qcow2'/></disk>
    <disk name='vdb' snapshot='no'/>
  </disks>
  <domain type='qemu'><name>web</name></domain>
</domainsnapshot>`);
    expect(s).toEqual({
      name: "s2",
      createdAt: "2026-12-06T09:00:00.000Z",
      domainState: "running",
      parent: "s1",
      disks: [{ target: "vda", file: "/vms/web/disk.s1.s2.qcow2" }],
      addresses: null, // no description with them (test/vm/snapshot-addresses.test.ts has them)
    });
  });
  it("snapshot names that look like numbers stay as written (the names allow a leading digit)", () => {
    const s = parseSnapshotXml(
      "<domainsnapshot><name>1.0</name><state>shutoff</state><parent><name>0</name></parent></domainsnapshot>",
    );
    expect([s.name, s.parent]).toEqual(["1.0", "0"]);
    expect(parseSnapshotXml("<domainsnapshot><name>0</name></domainsnapshot>").name).toBe("0");
    expect(parseSnapshotXml("<domainsnapshot><name>007</name></domainsnapshot>").name).toBe("007");
    expect(() => parseSnapshotXml("<domain><name>web</name></domain>")).toThrow(/not a domainsnapshot/);
  });
  it("a read-only disk however the element is written; a <disk> outside <devices> is not the domain's", () => {
    const xml = `<domain type="kvm"><metadata><app xmlns="urn:other"><disk><target dev="vdz"/><readonly/></disk></app></metadata>
  <devices>
    <disk device="disk" type="file"><target bus="virtio" dev="vda"/></disk>
    <disk device="cdrom" type="file"><target bus="sata" dev="sda"></target><readonly></readonly></disk>
    <disk type='file' device='disk'><target dev='vdb' bus='virtio'/><readonly/></disk>
  </devices>
</domain>`;
    expect(readonlyTargets(xml)).toEqual(new Set(["sda", "vdb"]));
  });
  it("domblklist --details and domjobinfo", () => {
    expect(
      parseDomBlkList(` Type   Device   Target   Source
------------------------------------------------------------
 file   disk     vda      /vms/web/disk.qcow2
 file   cdrom    sda      -
`),
    ).toEqual([
      { type: "file", device: "disk", target: "vda", source: "/vms/web/disk.qcow2" },
      { type: "file", device: "cdrom", target: "sda", source: null },
    ]);
    expect(
      parseJobInfo(
        "Job type:         Completed\nOperation:        Backup\nTime elapsed:     120          ms\n",
      ),
    ).toEqual({
      "Job type": "Completed",
      Operation: "Backup",
      "Time elapsed": "120          ms",
    });
  });
});
