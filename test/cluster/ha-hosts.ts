// corosync and pacemaker inside the cluster tier's test hosts (hosts.ts), and a power controller
// standing in for the BMCs the hosts do not have.
//
// Each test host's namespaces (network, mount, PID, UTS) get, beside its libvirtd:
// - a private, writable /etc (an overlay over the machine's /etc, whose upper layer holds the files
//   kvmstrap renders: /etc/corosync/corosync.conf and authkey, /etc/kvmstrap/ha/*), with the host's
//   private /etc/libvirt bound back over it;
// - the test fence agent (fence_kvmstrap_test) in /usr/sbin through a read-only overlay, so
//   pacemaker-fenced finds it by name while the machine's /usr/sbin is never written;
// - private /var/lib/pacemaker, /var/lib/corosync, /var/log/pacemaker and /dev/shm (libqb's IPC
//   buffers carry pids in their names, which two PID namespaces share);
// - corosync -f and pacemakerd, started with nsenter so they belong to the host's PID namespace and
//   die with its init. IPC sockets are abstract, so each network namespace has its own.
//
// The power controller is an HTTP server on the bridge's host address. POST /off/NAME kills NAME's
// PID namespace init with SIGKILL (the kernel then kills every process in it) and answers "off" only
// once the init is gone; GET /status/NAME says on or off from the init's liveness.
import { type ChildProcess, spawn } from "node:child_process";
import { chmod, chown, copyFile, mkdir, readdir, readFile, readlink, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { CRM_MON_ARGV, type CrmStatus, parseCrmMon } from "../../src/host/crm-mon.js";
import type { ClusterHost } from "./hosts.js";

export const FENCE_AGENT = "fence_kvmstrap_test";

export type PowerEvent = { host: string; action: "off"; requestedAt: number; offAt: number };
export type PowerController = {
  address: string;
  port: number;
  events: PowerEvent[];
  stop(): Promise<void>;
};

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * What keeps a killed namespace's init from going: its own state and every process still in its PID
 * namespace, with the kernel function each sleeps in (a process in D state holds the namespace up).
 */
async function whatHoldsOn(pid: number): Promise<string> {
  const line = async (p: string) => {
    const stat = await readFile(`/proc/${p}/stat`, "utf8").catch(() => "");
    const wchan = await readFile(`/proc/${p}/wchan`, "utf8").catch(() => "?");
    const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    return `${p} ${stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))} state ${state} wchan ${wchan}`;
  };
  const ns = await readlink(`/proc/${pid}/ns/pid`).catch(() => null);
  const inNs: string[] = [];
  for (const p of await readdir("/proc")) {
    if (!/^\d+$/.test(p) || Number(p) === pid) continue;
    if (ns && (await readlink(`/proc/${p}/ns/pid`).catch(() => null)) === ns) inNs.push(await line(p));
  }
  return [`init ${await line(String(pid))}`, ...inNs].join("; ");
}

export async function startPowerController(address: string, hosts: ClusterHost[]): Promise<PowerController> {
  const events: PowerEvent[] = [];
  const server = createServer(async (req, res) => {
    const [, verb, name] = (req.url ?? "/").split("/");
    // Looked up per request: a caller may add hosts once they are up (the controller comes first).
    const host = name ? hosts.find((h) => h.name === name) : undefined;
    if (!verb) return res.end("ok\n");
    if (verb === "list") return res.end(`${hosts.map((h) => h.name).join("\n")}\n`);
    if (!host) {
      res.statusCode = 404;
      return res.end(`no host ${name}\n`);
    }
    if (verb === "status" && req.method === "GET") return res.end(alive(host.daemon.pid) ? "on" : "off");
    if (verb === "off" && req.method === "POST") {
      const requestedAt = Date.now();
      if (alive(host.daemon.pid)) process.kill(host.daemon.pid, "SIGKILL");
      for (let i = 0; i < 200 && alive(host.daemon.pid); i++) await sleep(50);
      if (alive(host.daemon.pid)) {
        // Said where the test's output shows it: a fence that cannot complete is otherwise silent.
        console.error(
          `power controller: ${host.name} still on 10 s after SIGKILL: ${await whatHoldsOn(host.daemon.pid)}`,
        );
        res.statusCode = 500;
        return res.end("still on");
      }
      events.push({ host: host.name, action: "off", requestedAt, offAt: Date.now() });
      return res.end("off");
    }
    res.statusCode = 400;
    res.end("bad request\n");
  });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    address,
    port,
    events,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export type HaNode = {
  host: ClusterHost;
  /** Runs a program in the host's namespaces (network, mount, PID, UTS). */
  exec(file: string, args: readonly string[]): Promise<string>;
  crmMon(): Promise<CrmStatus>;
  /** crm_mon's XML as printed (HA_CRM_MON_DIR keeps samples for test/host/crm-mon.test.ts). */
  crmMonXml(): Promise<string>;
  /** The host's pacemaker and corosync logs (for failure messages). */
  logs(): Promise<string>;
};

// $1 = this node's directory, $2 = its private /etc/libvirt, $3 = the directory holding the fence agent.
const SETUP = `
set -e
mount -t overlay kvmha-etc -o "lowerdir=/etc,upperdir=$1/etc-up,workdir=$1/etc-work" /etc
mount --bind "$2" /etc/libvirt
mount -t overlay kvmha-sbin -o "lowerdir=$3:/usr/sbin" /usr/sbin
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount --bind "$1/lib-pacemaker" /var/lib/pacemaker
mount --bind "$1/lib-corosync" /var/lib/corosync
mount --bind "$1/log-pacemaker" /var/log/pacemaker
`;

/** A CIB to start from: only a short dc-deadtime (a test's speed; kvmstrap's configuration replaces it). */
const SEED_CIB = `<cib validate-with="pacemaker-3.9" admin_epoch="0" epoch="1" num_updates="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="test-start"><nvpair id="test-start-dc-deadtime" name="dc-deadtime" value="2s"/></cluster_property_set>
    </crm_config>
    <nodes/><resources/><constraints/>
  </configuration>
  <status/>
</cib>
`;

async function hacluster(): Promise<{ uid: number; gid: number }> {
  const uid = Number((await execa("id", ["-u", "hacluster"])).stdout);
  const gid = Number((await execa("id", ["-g", "hacluster"])).stdout);
  return { uid, gid };
}

/**
 * Starts corosync and then pacemaker in HOST's namespaces. etcFiles: paths under /etc (such as
 * "corosync/corosync.conf") and their content, mode 0600 for a name ending in "authkey".
 */
export async function startHaNode(
  host: ClusterHost,
  dir: string,
  etcFiles: Record<string, string | Buffer>,
  agentFile = path.join(import.meta.dirname, FENCE_AGENT),
): Promise<HaNode> {
  const base = path.join(dir, `ha-${host.name}`);
  const { uid, gid } = await hacluster();
  for (const d of ["etc-up", "etc-work", "lib-corosync", "sbin"])
    await mkdir(path.join(base, d), { recursive: true });
  for (const d of [
    "lib-pacemaker/cib",
    "lib-pacemaker/pengine",
    "lib-pacemaker/blackbox",
    "lib-pacemaker/cores",
    "log-pacemaker",
  ]) {
    await mkdir(path.join(base, d), { recursive: true });
    await chown(path.join(base, d), uid, gid);
  }
  await chown(path.join(base, "lib-pacemaker"), uid, gid);
  const seed = path.join(base, "lib-pacemaker/cib/cib.xml");
  await writeFile(seed, SEED_CIB, { mode: 0o600 });
  await chown(seed, uid, gid);
  for (const [rel, content] of Object.entries(etcFiles)) {
    const file = path.join(base, "etc-up", rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content, { mode: rel.endsWith("authkey") ? 0o400 : 0o644 });
  }
  await copyFile(agentFile, path.join(base, "sbin", FENCE_AGENT));
  await chmod(path.join(base, "sbin", FENCE_AGENT), 0o755);

  const ns = ["-t", String(host.daemon.pid), "-n", "-m", "-p", "-u"];
  const exec = async (file: string, args: readonly string[]) =>
    (await execa("nsenter", [...ns, file, ...args], { env: { LC_ALL: "C", PATH: process.env.PATH ?? "" } }))
      .stdout;
  await exec("bash", ["-c", SETUP, "setup", base, host.daemon.dirs.etc, path.join(base, "sbin")]);

  const daemon = (name: string, argv: string[], env: Record<string, string> = {}): ChildProcess => {
    const out = path.join(base, `${name}.out`);
    return spawn("bash", ["-c", `exec nsenter ${ns.join(" ")} "$@" >>"${out}" 2>&1`, name, ...argv], {
      stdio: "ignore",
      detached: false,
      env: { ...process.env, LC_ALL: "C", ...env },
    });
  };
  daemon("corosync", ["corosync", "-f"]);
  const deadline = Date.now() + 20_000;
  while ((await execa("nsenter", [...ns, "corosync-cfgtool", "-s"], { reject: false })).exitCode !== 0) {
    if (Date.now() > deadline)
      throw new Error(
        `${host.name}: corosync did not start:\n${await readFile(path.join(base, "corosync.out"), "utf8").catch(() => "")}`,
      );
    await sleep(200);
  }
  daemon("pacemaker", ["pacemakerd"], {
    PCMK_logfile: "/var/log/pacemaker/pacemaker.log",
    PCMK_logfacility: "none",
  });

  return {
    host,
    exec,
    crmMon: async () => parseCrmMon(await exec(CRM_MON_ARGV[0], CRM_MON_ARGV.slice(1))),
    crmMonXml: () => exec(CRM_MON_ARGV[0], CRM_MON_ARGV.slice(1)),
    logs: async () => {
      const read = (f: string) => readFile(path.join(base, f), "utf8").catch(() => "");
      return [
        await read("corosync.out"),
        await read("pacemaker.out"),
        (await read("log-pacemaker/pacemaker.log")).split("\n").slice(-80).join("\n"),
      ].join("\n");
    },
  };
}
