// A test-owned libvirtd that never touches the host's libvirt state or network.
//
// The root qemu driver's paths (/run/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt,
// /etc/libvirt) are compiled in; XDG_* and LIBVIRT_* variables do not move them for a root daemon.
// So libvirtd runs in its own namespaces (`unshare --mount --net --pid`):
// - mount: a tmpfs over /run and bind mounts of ROOT/{run,lib,log,cache,etc} over those five paths.
//   ROOT is a temporary directory, so the socket ROOT/run/libvirt-sock is reachable from outside;
// - net: bridges, dnsmasq, iptables rules and tap devices exist only in the private network namespace.
//   withHostLink() adds a veth pair so that host-side test servers are reachable from guests;
// - pid: killing the namespace's init (a bash that reaps the orphans libvirtd leaves, such as qemu's
//   capability probes) makes the kernel kill qemu, dnsmasq and everything else that was started in it.
// Private /etc/libvirt: the host's *.conf files and nwfilter rules, no domains/networks/pools, and a
// qemu.conf running qemu as root with no relabelling, no cgroups (no systemd here) and qemu's stdio
// written to files directly (stdio_handler = "file"), so no virtlogd is needed.
import { type ChildProcess, spawn } from "node:child_process";
import { openSync } from "node:fs";
import { appendFile, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";

export type TestLibvirtdDirs = {
  root: string;
  run: string;
  lib: string;
  log: string;
  cache: string;
  etc: string;
};
export type TestLibvirtd = {
  uri: string;
  dirs: TestLibvirtdDirs;
  /** Host pid of the namespaces' init, for nsenter. */
  pid: number;
  /** Runs a program inside libvirtd's network and mount namespaces. */
  nsExec(file: string, args: readonly string[]): Promise<string>;
  /**
   * Joins the host to BRIDGE (inside the namespace) with a veth pair; the host end gets HOSTCIDR.
   * Returns the host-side interface name. Removed by stop().
   */
  withHostLink(bridge: string, hostCidr: string): Promise<string>;
  stop(): Promise<void>;
};

const MOUNTED = ["run", "lib", "log", "cache", "etc"] as const;
const TARGETS = {
  run: "/run/libvirt",
  lib: "/var/lib/libvirt",
  log: "/var/log/libvirt",
  cache: "/var/cache/libvirt",
  etc: "/etc/libvirt",
};

// $1 = ROOT. Runs as pid 1 of the new pid namespace.
const INIT = `
set -e
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/libvirt
for d in ${MOUNTED.map((d) => `${d}:${TARGETS[d]}`).join(" ")}; do mount --bind "$1/\${d%%:*}" "\${d#*:}"; done
ip link set lo up
if [ -n "$2" ]; then hostname "$2"; fi
/usr/sbin/libvirtd --config /etc/libvirt/libvirtd.conf $3 &
daemon=$!
trap 'kill -TERM $daemon' TERM INT
set +e
while kill -0 $daemon 2>/dev/null; do wait; done
`;

const QEMU_CONF = `
# kvmstrap test libvirtd
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
stdio_handler = "file"
`;

const LIBVIRTD_CONF = `unix_sock_dir = "/run/libvirt"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
`;

/**
 * Lines appended to the daemon's qemu.conf and libvirtd.conf (libvirt keeps a key's last value);
 * hostname: a UTS namespace of its own with that name (two daemons that migrate between each other
 * must differ); listen: libvirtd --listen, for listen_tls in libvirtdConf.
 */
export type TestLibvirtdOptions = {
  qemuConf?: string;
  libvirtdConf?: string;
  hostname?: string;
  listen?: boolean;
  /**
   * Hook scripts by path under the daemon's /etc/libvirt/hooks (e.g. "qemu.d/x"), written executable
   * before libvirtd starts: it looks for hooks only when it starts.
   */
  hooks?: Record<string, string>;
};

async function privateEtc(etc: string, o: TestLibvirtdOptions): Promise<void> {
  for (const entry of await readdir("/etc/libvirt")) {
    if (entry.endsWith(".conf")) await cp(`/etc/libvirt/${entry}`, `${etc}/${entry}`);
  }
  await cp("/etc/libvirt/nwfilter", `${etc}/nwfilter`, { recursive: true }).catch(() => {});
  for (const d of ["qemu/networks/autostart", "qemu/autostart", "storage/autostart"]) {
    await mkdir(`${etc}/${d}`, { recursive: true });
  }
  await appendFile(`${etc}/qemu.conf`, `${QEMU_CONF}${o.qemuConf ?? ""}\n`);
  await writeFile(`${etc}/libvirtd.conf`, `${LIBVIRTD_CONF}${o.libvirtdConf ?? ""}\n`);
  for (const [name, content] of Object.entries(o.hooks ?? {})) {
    await mkdir(path.dirname(`${etc}/hooks/${name}`), { recursive: true });
    await writeFile(`${etc}/hooks/${name}`, content, { mode: 0o755 });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills namespaces that an earlier test run left behind (its node process died without stop()). */
async function reapStale(): Promise<void> {
  for (const entry of await readdir(tmpdir()).catch(() => [] as string[])) {
    if (!entry.startsWith("kvmstrap-libvirtd-")) continue;
    const dir = path.join(tmpdir(), entry);
    const read = (f: string) => readFile(path.join(dir, f), "utf8").then(Number, () => 0);
    const [owner, init] = [await read("owner.pid"), await read("init.pid")];
    if (owner && alive(owner)) continue;
    // No owner yet: one being started right now (hosts.ts starts several at once) unless it is old.
    const age = Date.now() - ((await stat(dir).catch(() => null))?.mtimeMs ?? 0);
    if (!owner && age < 60_000) continue;
    if (init && alive(init)) process.kill(init, "SIGKILL");
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

async function childPid(parent: number): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const children = await readFile(`/proc/${parent}/task/${parent}/children`, "utf8").catch(() => "");
    const pid = Number(children.trim().split(/\s+/)[0]);
    if (pid > 0) return pid;
    await sleep(50);
  }
  throw new Error("unshare did not start its child");
}

export async function startTestLibvirtd(options: TestLibvirtdOptions = {}): Promise<TestLibvirtd> {
  await reapStale();
  const root = await mkdtemp(path.join(tmpdir(), "kvmstrap-libvirtd-"));
  const dirs = { root } as TestLibvirtdDirs;
  for (const d of MOUNTED) {
    dirs[d] = path.join(root, d);
    await mkdir(dirs[d], { recursive: true });
  }
  await privateEtc(dirs.etc, options);
  await writeFile(path.join(root, "owner.pid"), String(process.pid));

  const out = openSync(path.join(root, "libvirtd.out"), "a");
  const unshare: ChildProcess = spawn(
    "unshare",
    ["--mount", "--net", "--pid", "--fork", "--mount-proc", "--propagation", "private"]
      .concat(options.hostname ? ["--uts"] : [])
      .concat(["bash", "-c", INIT, "init", root, options.hostname ?? "", options.listen ? "--listen" : ""]),
    { stdio: ["ignore", out, out], env: { ...process.env, LC_ALL: "C" } },
  );
  const unsharePid = unshare.pid;
  if (!unsharePid) throw new Error("could not spawn unshare");
  const pid = await childPid(unsharePid);
  await writeFile(path.join(root, "init.pid"), String(pid));
  const killAll = () => {
    if (alive(pid)) process.kill(pid, "SIGKILL");
  };
  process.once("exit", killAll);

  const uri = `qemu+unix:///system?socket=${dirs.run}/libvirt-sock`;
  const hostLinks: string[] = [];
  const nsExec = async (file: string, args: readonly string[]) =>
    (await execa("nsenter", ["-t", String(pid), "-n", "-m", "-p", file, ...args], { env: { LC_ALL: "C" } }))
      .stdout;

  const stop = async () => {
    process.off("exit", killAll);
    if (alive(pid)) {
      process.kill(pid, "SIGTERM"); // bash forwards it; libvirtd shuts down cleanly
      for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
      killAll(); // the kernel then kills everything left in the pid namespace
    }
    for (const link of hostLinks) await execa("ip", ["link", "del", link], { reject: false });
    await new Promise<void>((resolve) =>
      unshare.exitCode !== null ? resolve() : unshare.once("exit", () => resolve()),
    );
    await rm(root, { recursive: true, force: true });
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await execa("virsh", ["-c", uri, "version"], { reject: false, env: { LC_ALL: "C" } });
    if (r.exitCode === 0) break;
    if (Date.now() > deadline || unshare.exitCode !== null) {
      const log = await readFile(path.join(root, "libvirtd.out"), "utf8").catch(() => "");
      await stop();
      throw new Error(`test libvirtd did not answer within 30 s:\n${r.stderr}\n${log.slice(-3000)}`);
    }
    await sleep(200);
  }

  const withHostLink = async (bridge: string, hostCidr: string) => {
    const suffix = (pid % 0xffff).toString(16);
    const host = `kvst${suffix}h`;
    const guest = `kvst${suffix}g`;
    await execa("ip", ["link", "add", host, "type", "veth", "peer", "name", guest, "netns", String(pid)]);
    hostLinks.push(host);
    await execa("ip", ["addr", "add", hostCidr, "dev", host]);
    await execa("ip", ["link", "set", host, "up"]);
    await nsExec("ip", ["link", "set", guest, "master", bridge]);
    await nsExec("ip", ["link", "set", guest, "up"]);
    return host;
  };

  return { uri, dirs, pid, nsExec, withHostLink, stop };
}
