// A one-node Ceph for the cluster tier's shared RBD storage: Debian's ceph 16, one mon, one mgr and
// one OSD on memstore (RAM, no disk to prepare: healthy in seconds instead of half a minute on
// file-backed bluestore), in a network namespace of its own joined to the cluster rig's migration
// bridge (test/cluster/hosts.ts), so both libvirtd hosts reach the monitor the way members reach a
// real Ceph cluster. cephx throughout; a pool with the rbd application and a client.USER whose key
// (`ceph auth get-key`, the base64 form libvirt's secret-set-value reads) is written to a 0600 file:
// the keyFile an answer's rbd store names.
//
// Nothing is cached: the fsid, the keys and the monmap are made fresh on each start (they name this
// machine's addresses). The namespace, veth and temp dir carry this process id and go at stop().
// Health: HEALTH_OK with every pool at the PG count the autoscaler chose (pg_num at its target) and
// every PG active+clean; a single OSD needs pool size 1, so the no-redundancy warning is turned off.
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { openSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";

export interface TestCeph {
  /** The monitor's address on the migration network. */
  address: string;
  monitors: string[];
  pool: string;
  /** The cephx user without "client.". */
  user: string;
  /** A root-only file holding client.USER's key (base64), as an answer's keyFile names it. */
  keyFile: string;
  /** The key itself, for tests that assert it never shows. */
  key: string;
  dir: string;
  /** Milliseconds from start to HEALTH_OK with the pool ready. */
  startMs: number;
  /** `ceph` as client.admin. */
  ceph(...args: string[]): Promise<string>;
  /** `rbd` as client.admin on the pool. */
  rbd(...args: string[]): Promise<string>;
  /** Resident memory of the three daemons, KiB. */
  rssKiB(): Promise<number>;
  stop(): Promise<void>;
}

export interface TestCephOptions {
  /** The bridge of the migration network (Cluster.bridge). */
  bridge: string;
  /** The monitor's address and prefix on that bridge, e.g. 10.201.7.3/24. */
  cidr: string;
  pool?: string;
  user?: string;
  /** memstore's capacity (RAM used only as objects are written). */
  storeBytes?: number;
}

/** The address a cluster rig's Ceph takes: .3 of the hosts' /24 (A is .1, B .2, the host .254). */
export function cephCidrFor(hostAddress: string): string {
  return `${hostAddress.split(".").slice(0, 3).join(".")}.3/24`;
}

const env = { LC_ALL: "C" };

function conf(dir: string, fsid: string, address: string, network: string, storeBytes: number): string {
  return `[global]
fsid = ${fsid}
mon initial members = a
mon host = [v2:${address}:3300,v1:${address}:6789]
public network = ${network}
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
ms bind ipv6 = false
# One OSD: pools of size 1, placement on that host, no warning for the missing replicas.
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon allow pool delete = true
osd objectstore = memstore
memstore device bytes = ${storeBytes}
# Everything under this test's directory: no /var/lib/ceph, /var/run/ceph or /etc/ceph.
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
pid file = ${dir}/run/$name.pid
log file = ${dir}/log/$name.log
mon cluster log file = ${dir}/log/cluster.log
crash dir = ${dir}/crash
keyring = ${dir}/$name.keyring
mon data = ${dir}/data/$name
mgr data = ${dir}/data/$name
osd data = ${dir}/data/$name
# A test machine's root disk may be fuller than a mon likes; that is not this cluster's health.
mon data avail warn = 1
mon data avail crit = 0
`;
}

export async function startTestCeph(o: TestCephOptions): Promise<TestCeph> {
  const started = Date.now();
  const dir = await mkdtemp(path.join(tmpdir(), `kvmstrap-ceph-${process.pid}-`));
  const ns = `kvceph${process.pid}`;
  const outer = `kvcp${(process.pid % 0xffff).toString(16)}o`;
  const address = o.cidr.split("/")[0] as string;
  const prefix = Number(o.cidr.split("/")[1]);
  const network = `${address.split(".").slice(0, 3).join(".")}.0/${prefix}`;
  const pool = o.pool ?? "kvmstrap";
  const user = o.user ?? "libvirt";
  const cfg = path.join(dir, "ceph.conf");
  const daemons: ChildProcess[] = [];

  const stop = async () => {
    for (const d of daemons.reverse()) if (d.exitCode === null && d.signalCode === null) d.kill("SIGTERM");
    for (const d of daemons) {
      for (let i = 0; i < 50 && d.exitCode === null && d.signalCode === null; i++) await sleep(100);
      if (d.exitCode === null && d.signalCode === null) d.kill("SIGKILL");
    }
    await execa("ip", ["netns", "del", ns], { reject: false });
    await execa("ip", ["link", "del", outer], { reject: false });
    await rm(dir, { recursive: true, force: true });
  };
  process.once("exit", () => {
    for (const d of daemons) d.kill("SIGKILL");
  });

  const tool = async (file: string, args: string[], timeoutMs = 30_000) => {
    const r = await execa(file, args, { reject: false, env, timeout: timeoutMs });
    if (r.exitCode !== 0) throw new Error(`${file} ${args.join(" ")}: ${r.stderr || r.stdout}`);
    return r.stdout;
  };
  const ceph = (...args: string[]) => tool("ceph", ["-c", cfg, "--connect-timeout", "20", ...args]);
  const daemon = (file: string, args: string[]) => {
    const out = openSync(path.join(dir, "log", `${path.basename(file)}.out`), "a");
    const child = spawn("ip", ["netns", "exec", ns, file, "-f", "-c", cfg, ...args], {
      stdio: ["ignore", out, out],
      env: { ...process.env, ...env },
    });
    daemons.push(child);
    return child;
  };
  let last = "";
  const until = async (what: string, ms: number, ok: () => Promise<boolean>) => {
    const deadline = Date.now() + ms;
    const attempt = () =>
      ok().catch((e) => {
        last = String(e);
        return false;
      });
    while (!(await attempt())) {
      if (Date.now() > deadline) throw new Error(`test ceph: ${what} not within ${ms / 1000} s: ${last}`);
      await sleep(250);
    }
  };

  try {
    for (const bin of ["ceph-mon", "ceph-mgr", "ceph-osd", "ceph", "rbd", "ceph-authtool", "monmaptool"]) {
      const found = await execa("sh", ["-c", `command -v ${bin}`], { reject: false });
      if (found.exitCode !== 0)
        throw new Error(
          `test ceph: ${bin} is not installed (scripts/setup-test-host.sh installs ceph-mon ceph-mgr ceph-osd ceph-common)`,
        );
    }
    for (const d of ["run", "log", "crash", "data/mgr.x", "data/osd.0"])
      await mkdir(path.join(dir, d), { recursive: true });
    await writeFile(cfg, conf(dir, randomUUID(), address, network, o.storeBytes ?? 512 * 1024 * 1024));

    // The namespace on the migration bridge.
    await tool("ip", ["netns", "add", ns]);
    await tool("ip", ["-n", ns, "link", "set", "lo", "up"]);
    await tool("ip", ["link", "add", outer, "type", "veth", "peer", "name", "ceph0", "netns", ns]);
    await tool("ip", ["link", "set", outer, "master", o.bridge]);
    await tool("ip", ["link", "set", outer, "up"]);
    await tool("ip", ["-n", ns, "addr", "add", o.cidr, "dev", "ceph0"]);
    await tool("ip", ["-n", ns, "link", "set", "ceph0", "up"]);

    // Keys: the mon's own, client.admin's (imported into the mon's keyring so it exists from mkfs).
    const monKeyring = path.join(dir, "mon.a.keyring");
    const adminKeyring = path.join(dir, "client.admin.keyring");
    await tool("ceph-authtool", [
      "--create-keyring",
      monKeyring,
      "--gen-key",
      "-n",
      "mon.",
      "--cap",
      "mon",
      "allow *",
    ]);
    await tool("ceph-authtool", [
      "--create-keyring",
      adminKeyring,
      "--gen-key",
      "-n",
      "client.admin",
      "--cap",
      "mon",
      "allow *",
      "--cap",
      "osd",
      "allow *",
      "--cap",
      "mgr",
      "allow *",
      "--cap",
      "mds",
      "allow *",
    ]);
    await tool("ceph-authtool", [monKeyring, "--import-keyring", adminKeyring]);
    const monmap = path.join(dir, "monmap");
    const fsid = /fsid = (\S+)/.exec(await readFile(cfg, "utf8"))?.[1] as string;
    await tool("monmaptool", [
      "--create",
      "--addv",
      "a",
      `[v2:${address}:3300,v1:${address}:6789]`,
      "--fsid",
      fsid,
      monmap,
    ]);
    await tool("ceph-mon", ["-c", cfg, "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", monKeyring]);
    daemon("ceph-mon", ["-i", "a"]);
    await until("the monitor's quorum", 20_000, async () => (await ceph("quorum_status")).includes('"a"'));

    // The manager (the autoscaler lives there) and the OSD, started side by side.
    await ceph(
      "auth",
      "get-or-create",
      "mgr.x",
      "mon",
      "allow profile mgr",
      "osd",
      "allow *",
      "mds",
      "allow *",
      "-o",
      path.join(dir, "mgr.x.keyring"),
    );
    daemon("ceph-mgr", ["-i", "x"]);
    const osdUuid = randomUUID();
    const id = (await ceph("osd", "new", osdUuid)).trim();
    if (id !== "0") throw new Error(`test ceph: the first OSD got id ${id}`);
    await ceph(
      "auth",
      "get-or-create",
      "osd.0",
      "mon",
      "allow profile osd",
      "mgr",
      "allow profile osd",
      "osd",
      "allow *",
      "-o",
      path.join(dir, "osd.0.keyring"),
    );
    await tool(
      "ip",
      ["netns", "exec", ns, "ceph-osd", "-c", cfg, "-i", "0", "--mkfs", "--osd-uuid", osdUuid],
      60_000,
    );
    daemon("ceph-osd", ["-i", "0"]);

    await ceph("osd", "pool", "create", pool);
    await tool("rbd", ["-c", cfg, "pool", "init", pool], 60_000);
    await ceph(
      "auth",
      "get-or-create",
      `client.${user}`,
      "mon",
      "profile rbd",
      "osd",
      `profile rbd pool=${pool}`,
      "mgr",
      `profile rbd pool=${pool}`,
    );
    const key = (await ceph("auth", "get-key", `client.${user}`)).trim();
    const keyFile = path.join(dir, `client.${user}.key`);
    await writeFile(keyFile, `${key}\n`, { mode: 0o600 });
    await chmod(keyFile, 0o600);

    await until("HEALTH_OK with every PG active+clean at the autoscaler's count", 90_000, async () => {
      const status = JSON.parse(await ceph("status", "-f", "json"));
      last = JSON.stringify(status.health);
      if (status.health?.status !== "HEALTH_OK") return false;
      const pools = JSON.parse(await ceph("osd", "pool", "ls", "detail", "-f", "json")) as {
        pg_num: number;
        pg_num_target: number;
        pg_placement_num: number;
        pg_placement_num_target: number;
      }[];
      last = JSON.stringify(pools);
      if (
        !pools.every((p) => p.pg_num === p.pg_num_target && p.pg_placement_num === p.pg_placement_num_target)
      )
        return false;
      const pgs = status.pgmap as { num_pgs: number; pgs_by_state?: { state_name: string; count: number }[] };
      const clean = (pgs.pgs_by_state ?? []).find((s) => s.state_name === "active+clean")?.count ?? 0;
      last = JSON.stringify(pgs.pgs_by_state);
      const total = pools.reduce((n, p) => n + p.pg_num, 0);
      return total === pgs.num_pgs && clean === total && status.osdmap?.num_up_osds === 1;
    });

    const rssKiB = async () => {
      let total = 0;
      for (const d of daemons) {
        // `ip netns exec` execs the daemon: the child's pid is the daemon's.
        const s = await readFile(`/proc/${d.pid}/status`, "utf8").catch(() => "");
        total += Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0);
      }
      return total;
    };
    return {
      address,
      monitors: [address],
      pool,
      user,
      keyFile,
      key,
      dir,
      startMs: Date.now() - started,
      ceph,
      rbd: (...args: string[]) => tool("rbd", ["-c", cfg, "-p", pool, ...args], 60_000),
      rssKiB,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
