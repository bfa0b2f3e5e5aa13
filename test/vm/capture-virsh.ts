// Recaptures test/vm/fixtures/virsh/*.txt from a real libvirtd: `node scripts/capture-virsh-fixtures.mjs`
// (root, the e2e tier's packages and guest image; see test/e2e/README.md). It starts the e2e tier's
// private libvirtd, boots one guest (TCG, the cached Debian image) and stores what `virsh` prints
// (LC_ALL=C, as VirshLibvirt runs it) for each command src/vm/virsh-libvirt.ts runs, and the stderr
// of the failures the error classifier has to recognise. The fast tier parses these files.
// Each file holds the output exactly; what made it is listed in INDEX.md beside them.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { renderDomainXml } from "../../src/vm/domain-xml.js";
import { createOverlay, networkXml, sshPublicKey, TEST_NET, writeSeed } from "../e2e/guest-fixture.js";
import { ensureGuestImage } from "../e2e/guest-image.js";
import { startTestLibvirtd } from "../e2e/libvirtd.js";

const OUT = path.resolve(process.argv[2] ?? "test/vm/fixtures/virsh");
/** The values the fast-tier tests assert against: fixed here so the captures can be checked. */
export const CAPTURED = {
  guest: "kvst-capture",
  stopped: "kvst-stopped",
  mac: "52:54:00:5e:a1:01",
  network: TEST_NET.name,
  pool: "kvst-pool",
  volume: "kvst-vol.qcow2",
} as const;

async function main() {
  const image = await ensureGuestImage();
  const daemon = await startTestLibvirtd();
  const work = await mkdtemp(path.join("/var/tmp", "kvmstrap-capture-"));
  const index: string[] = [];
  const virsh = (args: string[], uri = daemon.uri) =>
    execa("virsh", ["-c", uri, ...args], { reject: false, env: { LC_ALL: "C" } });
  /** Stores stdout of a command that must succeed, or stderr of one that must fail. */
  const capture = async (file: string, args: string[], expect: "ok" | "fail", uri?: string) => {
    const r = await virsh(args, uri);
    const ok = r.exitCode === 0;
    if (ok !== (expect === "ok")) {
      throw new Error(`virsh ${args.join(" ")}: expected ${expect}, exit ${r.exitCode}: ${r.stderr}`);
    }
    await writeFile(path.join(OUT, file), ok ? `${r.stdout}\n` : r.stderr);
    index.push(`| ${file} | \`virsh ${args.join(" ")}\` | ${ok ? "stdout" : `stderr, exit ${r.exitCode}`} |`);
    console.log(`[capture] ${file}`);
    return r.stdout;
  };
  try {
    await mkdir(OUT, { recursive: true });
    const put = async (name: string, body: string) => {
      const file = path.join(work, `${name}.xml`);
      await writeFile(file, body);
      return file;
    };
    await capture("version.txt", ["version"], "ok");
    await capture("net-define.txt", ["net-define", await put("net", networkXml())], "ok");
    await virsh(["net-start", TEST_NET.name]);
    await capture("net-list-all.txt", ["net-list", "--all"], "ok");
    await capture("net-dumpxml.txt", ["net-dumpxml", TEST_NET.name], "ok");

    const poolDir = path.join(work, "pool");
    await mkdir(poolDir);
    const poolXml = `<pool type="dir"><name>${CAPTURED.pool}</name><target><path>${poolDir}</path></target></pool>\n`;
    await capture("pool-define.txt", ["pool-define", await put("pool", poolXml)], "ok");
    await virsh(["pool-start", CAPTURED.pool]);
    await execa("qemu-img", ["create", "-q", "-f", "qcow2", path.join(poolDir, CAPTURED.volume), "64M"]);
    await virsh(["pool-refresh", CAPTURED.pool]);
    await capture("pool-list-all.txt", ["pool-list", "--all"], "ok");
    await capture("vol-list.txt", ["vol-list", CAPTURED.pool], "ok");
    await capture("vol-path.txt", ["vol-path", "--pool", CAPTURED.pool, CAPTURED.volume], "ok");

    // The guest: the product's domain XML on an overlay of the cached e2e image.
    const overlay = path.join(work, "disk.qcow2");
    await createOverlay(image.qcow2, overlay);
    const seed = await writeSeed({
      dir: work,
      hostname: CAPTURED.guest,
      user: image.user,
      sshKey: sshPublicKey("capture@kvmstrap"),
      phoneHome: `http://${TEST_NET.host}:9/phone-home/$INSTANCE_ID`,
    });
    const domain = (name: string, over: Partial<Parameters<typeof renderDomainXml>[0]> = {}) =>
      renderDomainXml({
        name,
        domainType: "qemu",
        vcpus: 1,
        memoryMiB: 768,
        disk: { path: overlay, format: "qcow2" },
        seed: { path: seed.iso },
        nics: [{ kind: "network", network: TEST_NET.name, mac: CAPTURED.mac }],
        kernel: { path: image.kernel, initrd: image.initrd, cmdline: image.append },
        serialLog: path.join(work, `${name}.log`),
        ...over,
      });
    await capture("define-domain.txt", ["define", await put("guest", domain(CAPTURED.guest))], "ok");
    await virsh(["define", await put("stopped", domain(CAPTURED.stopped))]);
    await capture("domstate-shut-off.txt", ["domstate", CAPTURED.guest], "ok");
    await virsh(["start", CAPTURED.guest]);
    await capture("domstate-running.txt", ["domstate", CAPTURED.guest], "ok");
    await capture("list-all.txt", ["list", "--all"], "ok");
    await capture("domifaddr-lease-none.txt", ["domifaddr", CAPTURED.guest, "--source", "lease"], "ok");
    await capture("err-start-running.txt", ["start", CAPTURED.guest], "fail");
    await capture("err-destroy-stopped.txt", ["destroy", CAPTURED.stopped], "fail");
    await capture(
      "err-agent-not-running.txt",
      ["qemu-agent-command", CAPTURED.stopped, '{"execute":"guest-ping"}'],
      "fail",
    );
    await capture(
      "err-agent-not-connected.txt",
      ["qemu-agent-command", CAPTURED.guest, '{"execute":"guest-ping"}', "--timeout", "5"],
      "fail",
    );

    // Failures that name a missing object, a taken name, a dead daemon.
    await capture("err-no-domain.txt", ["domstate", "kvst-missing"], "fail");
    await capture("err-no-domain-uuid.txt", ["domuuid", "kvst-missing"], "fail");
    await capture("err-no-network.txt", ["net-start", "kvst-missing"], "fail");
    await capture("err-no-network-leases.txt", ["net-dhcp-leases", "kvst-missing"], "fail");
    await capture("err-no-pool.txt", ["pool-uuid", "kvst-missing"], "fail");
    await capture("err-no-pool-vol-list.txt", ["vol-list", "kvst-missing"], "fail");
    await capture("err-no-volume.txt", ["vol-path", "--pool", CAPTURED.pool, "kvst-missing.qcow2"], "fail");
    const dup = poolXml.replace(
      `<name>${CAPTURED.pool}</name>`,
      `<name>${CAPTURED.pool}</name><uuid>00000000-0000-4000-8000-000000000001</uuid>`,
    );
    await capture("err-pool-exists.txt", ["pool-define", await put("dup", dup)], "fail");
    await capture(
      "err-domain-exists.txt",
      [
        "create",
        await put("dupdom", domain(CAPTURED.guest, { uuid: "00000000-0000-4000-8000-000000000002" })),
      ],
      "fail",
    );
    const gone = `qemu+unix:///system?socket=${work}/no-such-socket`;
    await capture("err-connect.txt", ["list", "--all"], "fail", gone);

    // Devices the host lacks: /dev/vhost-net (a KVM domain asks for it with multi-queue NICs) and
    // hugepages (none reserved here). libvirt reports both as "internal error" or "unsupported".
    const vhost = domain("kvst-vhost", { domainType: "kvm", vcpus: 2 });
    await virsh(["define", await put("vhost", vhost)]);
    await capture("err-vhost-net.txt", ["start", "kvst-vhost"], "fail");
    await virsh(["define", await put("huge", domain("kvst-huge", { hugepages: true }))]);
    await capture("err-hugepages.txt", ["start", "kvst-huge"], "fail");

    // The guest's address by DHCP lease and by the agent, then one guest-exec round trip.
    const deadline = Date.now() + 240_000;
    for (;;) {
      const r = await virsh(["domifaddr", CAPTURED.guest, "--source", "lease"]);
      if (r.stdout.includes("ipv4")) break;
      if (Date.now() > deadline) throw new Error("no DHCP lease within 240 s");
      await sleep(2000);
    }
    await capture("domifaddr-lease.txt", ["domifaddr", CAPTURED.guest, "--source", "lease"], "ok");
    await capture("net-dhcp-leases.txt", ["net-dhcp-leases", TEST_NET.name], "ok");
    for (;;) {
      const r = await virsh(["domifaddr", CAPTURED.guest, "--source", "agent"]);
      if (r.exitCode === 0 && r.stdout.includes("ipv4")) break;
      if (Date.now() > deadline) throw new Error("no guest agent answer within 240 s");
      await sleep(2000);
    }
    await capture("domifaddr-agent.txt", ["domifaddr", CAPTURED.guest, "--source", "agent"], "ok");
    const started = await capture(
      "agent-guest-exec.txt",
      [
        "qemu-agent-command",
        CAPTURED.guest,
        JSON.stringify({
          execute: "guest-exec",
          arguments: { path: "/bin/echo", arg: ["captured"], "capture-output": true },
        }),
      ],
      "ok",
    );
    const pid = (JSON.parse(started) as { return: { pid: number } }).return.pid;
    await sleep(1000);
    await capture(
      "agent-guest-exec-status.txt",
      [
        "qemu-agent-command",
        CAPTURED.guest,
        JSON.stringify({ execute: "guest-exec-status", arguments: { pid } }),
      ],
      "ok",
    );
    await capture(
      "agent-host-name.txt",
      ["qemu-agent-command", CAPTURED.guest, '{"execute":"guest-get-host-name"}'],
      "ok",
    );

    await writeFile(
      path.join(OUT, "INDEX.md"),
      [
        "# Captured virsh output",
        "",
        "Recaptured by `node scripts/capture-virsh-fixtures.mjs` (test/vm/capture-virsh.ts) from the e2e",
        `tier's private libvirtd (${(await virsh(["version"])).stdout.split("\n").find((l) => l.startsWith("Using library")) ?? "?"}). Do not edit by hand.`,
        "",
        "| file | command | what is stored |",
        "| ---- | ------- | -------------- |",
        ...index,
        "",
      ].join("\n"),
    );
  } finally {
    await daemon.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
