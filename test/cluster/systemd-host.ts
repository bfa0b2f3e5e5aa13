// Test hosts with a real systemd as PID 1, for the cluster plan's applied path.
//
// The cluster plan's steps are systemd units (libvirtd-tls.socket on, libvirtd-tcp.socket off,
// corosync and pacemaker enabled and started, libvirtd restarted) and `leave` runs their inverses;
// this machine's PID 1 is not systemd, so hosts.ts's namespaced daemons cannot show those steps.
// Here each host is a systemd-nspawn container booting this machine's own Debian: its root an
// overlay (lowerdir=/, upper and work on a tmpfs of its own, so nothing of the machine's is written
// and teardown is one unmount), booted to a target of the harness's (basic.target: sockets, the
// machine's libvirt sockets among them) rather than everything the machine enables (postgresql,
// ganesha, ceph...), which are cut from the upper dir. Each has its own hostname, machine-id and
// libvirt host_uuid (libvirt refuses a migration between hosts with the same uuid, and status shows
// it), and a network namespace joined by a veth pair to a bridge in the machine's namespace (the
// machine is NET.254 on it, as in hosts.ts). Commands run inside with nsenter on the container's
// PID 1 (all its namespaces, its root): the built CLI is there because the repository and the
// test's directory are bound into every container at the same paths.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { projectRoot } from "../helpers/shared-hosts.js";
import { PATH_DIR } from "./cli.js";

export type Exec = { exitCode: number; stdout: string; stderr: string };

export type SystemdHost = {
  name: string;
  address: string;
  hostUuid: string;
  /** The container's root as the machine sees it (the overlay's merged directory). */
  root: string;
  /** The container's PID 1 (systemd), as the machine sees it. */
  leader: number;
  /** From nspawn's start to `systemctl is-system-running --wait` answering. */
  bootMs: number;
  /** argv inside the host (LC_ALL=C, the built CLI first on PATH as `kvmstrap`); never throws. */
  exec(argv: string[], env?: Record<string, string>): Promise<Exec>;
};

export type SystemdHosts = {
  hosts: SystemdHost[];
  /** The /24's first three octets; the machine is NET.254 on the bridge. */
  net: string;
  /** The test's directory: bound into every host at the same path. */
  dir: string;
  stop(): Promise<void>;
};

/** Everything the machine enables that a cluster member does not need, cut from the upper dir. */
const WANTS_CUT = [
  "basic",
  "ceph",
  "cloud-init",
  "default",
  "getty",
  "network",
  "network-online",
  "remote-fs",
  "shutdown",
  "sysinit",
  "timers",
];
/** Kept in multi-user.target.wants (the packages' own enablement, as a host has it before init). */
const KEEP_ENABLED = ["libvirtd.service", "corosync.service", "pacemaker.service"];
const MASK = [
  "NetworkManager.service",
  "NetworkManager-wait-online.service",
  "networking.service",
  "systemd-networkd.service",
  "systemd-resolved.service",
  "systemd-timesyncd.service",
  "lvm2-monitor.service",
  "lvm2-lvmpolld.service",
  "lvm2-lvmpolld.socket",
  "blk-availability.service",
  "dm-event.service",
  "dm-event.socket",
  "rpcbind.service",
  "rpcbind.socket",
  "uuidd.service",
  "uuidd.socket",
];
const TARGET = "kvmstrap-test.target";
/** What kvmstrap may have left on the machine: each host starts as a host kvmstrap never touched. */
const FRESH = ["etc/kvmstrap", "var/lib/kvmstrap", "etc/pki/CA", "etc/pki/libvirt", "etc/pki/qemu"];

const sh = (file: string, args: string[]) => execa(file, args, { env: { LC_ALL: "C" } });

/** The container's root made from the machine's own, as a host before kvmstrap. */
async function prepareRoot(root: string, name: string, hostUuid: string): Promise<void> {
  const etc = (p: string) => path.join(root, "etc", p);
  await writeFile(etc("hostname"), `${name}\n`);
  const id = await sh("systemd-id128", ["new"]);
  await writeFile(etc("machine-id"), `${id.stdout.trim()}\n`);
  const units = etc("systemd/system");
  for (const w of WANTS_CUT)
    await rm(path.join(units, `${w}.target.wants`), { recursive: true, force: true });
  const mu = path.join(units, "multi-user.target.wants");
  for (const f of await readdir(mu).catch(() => [] as string[]))
    if (!KEEP_ENABLED.includes(f)) await rm(path.join(mu, f), { force: true });
  for (const u of MASK) {
    await rm(path.join(units, u), { force: true });
    await symlink("/dev/null", path.join(units, u));
  }
  await writeFile(
    path.join(units, TARGET),
    "[Unit]\nDescription=kvmstrap test host\nRequires=basic.target\nAfter=basic.target\n",
  );
  for (const p of FRESH) await rm(path.join(root, p), { recursive: true, force: true });
  // libvirt's host uuid comes from SMBIOS, the same in every container: each host names its own.
  const conf = etc("libvirt/libvirtd.conf");
  const text = await readFile(conf, "utf8");
  await writeFile(
    conf,
    `${text}${text === "" || text.endsWith("\n") ? "" : "\n"}host_uuid = "${hostUuid}"\n`,
  );
}

/** The PID of nspawn's child that is systemd (the container's PID 1). */
async function leaderOf(nspawn: number, deadline: number): Promise<number> {
  for (;;) {
    const tasks = await readdir(`/proc/${nspawn}/task`).catch(() => [] as string[]);
    for (const t of tasks) {
      const kids = await readFile(`/proc/${nspawn}/task/${t}/children`, "utf8").catch(() => "");
      for (const k of kids.split(" ").filter(Boolean)) {
        const comm = await readFile(`/proc/${k}/comm`, "utf8").catch(() => "");
        if (comm.trim() === "systemd") return Number(k);
      }
    }
    if (Date.now() > deadline) throw new Error(`systemd-nspawn ${nspawn}: no systemd child`);
    await sleep(50);
  }
}

/** Until systemd says the boot is over ("running"; its bus is not there at first). */
async function bootedIn(name: string, exec: SystemdHost["exec"], deadline: number): Promise<void> {
  for (;;) {
    const r = await exec(["systemctl", "is-system-running", "--wait"]);
    const state = r.stdout.trim();
    if (state === "running") return;
    if (state === "degraded" || Date.now() > deadline) {
      const failed = await exec(["systemctl", "--failed", "--no-legend", "--plain"]);
      throw new Error(`${name}: systemd ${state || r.stderr.trim()}: ${failed.stdout}`);
    }
    await sleep(50);
  }
}

const execIn =
  (leader: number) =>
  (argv: string[], env: Record<string, string> = {}) =>
    execa("nsenter", ["-t", String(leader), "-a", "-r", "-w", ...argv], {
      reject: false,
      extendEnv: false,
      env: {
        LC_ALL: "C",
        HOME: "/root",
        PATH: `${PATH_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
        ...env,
      },
    }).then((r) => ({ exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr }));

type Started = {
  name: string;
  base: string;
  root: string;
  netns: string;
  nspawn?: ChildProcess;
  leader?: number;
};

/** Halts the container (nspawn's SIGTERM: a clean poweroff; after 15 s SIGKILL to its PID 1 and
 *  nspawn), then unmounts its overlay and tmpfs and deletes its network namespace. */
async function stopHost(s: Started): Promise<void> {
  const p = s.nspawn;
  if (p && p.exitCode === null && p.signalCode === null) {
    const exited = new Promise((res) => p.once("exit", res));
    p.kill("SIGTERM");
    const killed = await Promise.race([exited.then(() => false), sleep(15_000).then(() => true)]);
    if (killed) {
      // The container's PID 1 killed takes its whole PID namespace with it.
      try {
        if (s.leader) process.kill(s.leader, "SIGKILL");
      } catch {
        // Gone already.
      }
      p.kill("SIGKILL");
      await exited;
    }
  }
  for (const m of [s.root, s.base])
    if ((await sh("mountpoint", ["-q", m]).catch(() => null))?.exitCode === 0)
      await execa("umount", [m], { reject: false }).then((r) =>
        r.exitCode === 0 ? r : execa("umount", ["-l", m], { reject: false }),
      );
  await execa("ip", ["netns", "del", s.netns], { reject: false });
}

/** Boots hosts kvmcl-a (NET.1), kvmcl-b (NET.2)... under systemd, on a fresh bridge. */
export async function startSystemdHosts(o: { hosts?: number } = {}): Promise<SystemdHosts> {
  const dir = await mkdtemp(path.join(tmpdir(), `kvmstrap-sdhosts-${process.pid}-`));
  const tag = (process.pid % 0xffff).toString(16);
  const bridge = `kvsdbr${tag}`;
  const net = `10.${200 + ((process.pid + 7) % 50)}.${(process.pid + 7) % 250}`;
  const started: Started[] = [];
  const stop = async () => {
    await Promise.all(started.map((s) => stopHost(s).catch(() => {})));
    await execa("ip", ["link", "del", bridge], { reject: false });
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await sh("ip", ["link", "add", bridge, "type", "bridge"]);
    await sh("ip", ["addr", "add", `${net}.254/24`, "dev", bridge]);
    await sh("ip", ["link", "set", bridge, "up"]);
    const specs = Array.from({ length: o.hosts ?? 2 }, (_, i) => {
      const letter = String.fromCharCode(97 + i);
      return {
        name: `kvmcl-${letter}`,
        letter,
        address: `${net}.${i + 1}`,
        hostUuid: `6a0b3f7e-0000-4000-8000-5d00000000${letter}0`,
      };
    });
    // Settled, not all: a failed boot must not leave another one starting after the teardown.
    const settled = await Promise.allSettled(
      specs.map(async (h): Promise<SystemdHost> => {
        const base = path.join(dir, h.name);
        const s: Started = {
          name: h.name,
          base,
          root: path.join(base, "root"),
          netns: `kvsd${tag}${h.letter}`,
        };
        started.push(s);
        await mkdir(base);
        await sh("mount", ["-t", "tmpfs", "-o", "mode=0755", "tmpfs", base]);
        for (const d of ["upper", "work", "root"]) await mkdir(path.join(base, d));
        await sh("mount", [
          "-t",
          "overlay",
          "overlay",
          "-o",
          `lowerdir=/,upperdir=${base}/upper,workdir=${base}/work`,
          s.root,
        ]);
        await prepareRoot(s.root, h.name, h.hostUuid);
        // The network first: the host's address is there before anything in it starts.
        const outer = `kvsd${tag}${h.letter}o`;
        await sh("ip", ["netns", "add", s.netns]);
        await sh("ip", ["link", "add", outer, "type", "veth", "peer", "name", "mig0", "netns", s.netns]);
        await sh("ip", ["link", "set", outer, "master", bridge]);
        await sh("ip", ["link", "set", outer, "up"]);
        for (const args of [
          ["addr", "add", `${h.address}/24`, "dev", "mig0"],
          ["link", "set", "mig0", "up"],
          ["link", "set", "lo", "up"],
        ])
          await sh("ip", ["-n", s.netns, ...args]);
        const t0 = Date.now();
        const log = openSync(path.join(dir, `${h.name}-console.log`), "a");
        s.nspawn = spawn(
          "systemd-nspawn",
          [
            "-D",
            s.root,
            "-b",
            "-M",
            h.name,
            "--register=no",
            "--keep-unit",
            `--network-namespace-path=/run/netns/${s.netns}`,
            `--bind=${projectRoot}`,
            `--bind=${dir}`,
            "--console=passive",
            "--",
            `systemd.unit=${TARGET}`,
            "systemd.firstboot=off",
          ],
          { stdio: ["ignore", log, log] },
        );
        closeSync(log);
        const leader = await leaderOf(s.nspawn.pid ?? 0, Date.now() + 20_000);
        s.leader = leader;
        const exec = execIn(leader);
        await bootedIn(h.name, exec, Date.now() + 30_000);
        return {
          name: h.name,
          address: h.address,
          hostUuid: h.hostUuid,
          root: s.root,
          leader,
          bootMs: Date.now() - t0,
          exec,
        };
      }),
    );
    const failed = settled.find((x) => x.status === "rejected");
    if (failed) throw failed.reason;
    const hosts = settled.map((x) => (x as PromiseFulfilledResult<SystemdHost>).value);
    return { hosts, net, dir, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
