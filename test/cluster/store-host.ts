// A storage server for the cluster tests: its own network and mount namespaces (unshare), joined
// to the cluster's migration bridge by a veth pair with its own address, a private /run (rpcbind's
// and tgtd's sockets and pid files must not meet the machine's or another test's), and the daemons a
// test starts in it (tgtd, rpcbind, ganesha.nfsd), each killed by its own pid at the end.
import { type ChildProcess, spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";

export type StoreHost = {
  address: string;
  pid: number;
  /** Runs a command in the store's namespaces and returns its stdout (throws on failure). */
  exec(file: string, args: readonly string[]): Promise<string>;
  /** Starts a long-running daemon there; its output goes to `log`. */
  daemon(file: string, args: readonly string[]): ChildProcess;
  stop(): Promise<void>;
};

/** Starts the namespace and puts ADDRESS/24 on a veth joined to `bridge` (in this namespace). */
export async function startStoreHost(bridge: string, address: string): Promise<StoreHost> {
  const holder = spawn(
    "unshare",
    ["-n", "-m", "--propagation", "private", "sh", "-c", "mount -t tmpfs tmpfs /run && exec sleep 3600"],
    { stdio: "ignore" },
  );
  const pid = holder.pid as number;
  const children: ChildProcess[] = [];
  const ns = ["-t", String(pid), "-n", "-m"];
  const exec = async (file: string, args: readonly string[]) =>
    (await execa("nsenter", [...ns, file, ...args], { env: { LC_ALL: "C" } })).stdout;
  const outer = `kvst${(pid % 0xffff).toString(16)}o`;
  const stop = async () => {
    // SIGKILL: ganesha waits out a grace period on SIGTERM; nothing of the store outlives the test.
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    holder.kill("SIGKILL");
    await execa("ip", ["link", "del", outer], { reject: false });
  };
  try {
    // The tmpfs on /run is mounted before the holder's sleep: wait for it.
    for (let i = 0; ; i++) {
      const r = await execa("nsenter", [...ns, "findmnt", "-n", "/run"], { reject: false });
      if (r.exitCode === 0 && r.stdout.includes("tmpfs")) break;
      if (i > 100) throw new Error("store host: no private /run");
      await sleep(20);
    }
    await execa("ip", ["link", "add", outer, "type", "veth", "peer", "name", "st0", "netns", String(pid)]);
    await execa("ip", ["link", "set", outer, "master", bridge, "up"]);
    await exec("ip", ["link", "set", "lo", "up"]);
    await exec("ip", ["addr", "add", `${address}/24`, "dev", "st0"]);
    await exec("ip", ["link", "set", "st0", "up"]);
  } catch (e) {
    await stop();
    throw e;
  }
  const daemon = (file: string, args: readonly string[]) => {
    const c = spawn("nsenter", [...ns, file, ...args], { stdio: "ignore" });
    children.push(c);
    return c;
  };
  return { address, pid, exec, daemon, stop };
}

/** Polls `probe` until it resolves true, or throws after `ms` with `what`. */
export async function until(what: string, ms: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
