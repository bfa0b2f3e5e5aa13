// A Dhcp4Server in its own process, so a test can start it inside a network namespace
// (`ip netns exec NS node runner.mjs CONFIG`): sockets belong to the namespace of the process that
// creates them. Prints one JSON line per server event, and "ready" once listening.
import { bootPolicy } from "../../../src/pxe/boot-policy.js";
import { JsonFileLeaseStore, LeaseTable, parseRange } from "../../../src/pxe/dhcp4/leases.js";
import { Dhcp4Server } from "../../../src/pxe/dhcp4/server.js";
import type { Binding } from "../../../src/pxe/dhcp4/socket.js";

export interface RunnerConfig {
  binding: Binding;
  serverIp: string;
  httpBase: string;
  full?: { range: string; subnetMask: string; leaseFile: string; leaseTime: number; router?: string };
}

const cfg = JSON.parse(process.argv[2] ?? "{}") as RunnerConfig;
const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

async function main() {
  let mode: Parameters<typeof Dhcp4Server.start>[0]["mode"] = { kind: "proxy" };
  if (cfg.full) {
    const range = parseRange(cfg.full.range);
    if (!range) throw new Error(`bad range ${cfg.full.range}`);
    const store = new JsonFileLeaseStore(cfg.full.leaseFile);
    mode = {
      kind: "full",
      config: {
        serverIp: cfg.serverIp,
        subnetMask: cfg.full.subnetMask,
        leaseTime: cfg.full.leaseTime,
        ...(cfg.full.router ? { router: cfg.full.router } : {}),
      },
      table: new LeaseTable(range, await store.load()),
      store,
    };
  }
  const server = await Dhcp4Server.start({
    binding: cfg.binding,
    serverIp: cfg.serverIp,
    mode,
    booter: bootPolicy({ httpBase: cfg.httpBase }),
    onEvent: out,
  });
  out({ type: "ready" });
  process.on("SIGTERM", () => {
    server.close().then(() => process.exit(0));
  });
}

main().catch((e) => {
  out({ type: "fatal", message: (e as Error).message });
  process.exit(1);
});
