// `kvmstrap fleet power NODE`: a node's power settings on a running `kvmstrap serve` (what the
// rollout runner powers it on with). Passwords come from the environment only: a flag would show in
// every user's `ps` and in shell history. The settings are checked here with the server's own schema
// (src/fleet/power/settings.ts) so a bad flag is named before anything is sent.
import { describePower, FleetClient, type PowerSettings, parsePowerSettings } from "../app/fleet-client.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const FLEET_POWER_HELP = `Usage: kvmstrap fleet power NODE [server options]
       kvmstrap fleet power NODE --libvirt DOMAIN [--uri URI] [server options]
       kvmstrap fleet power NODE --ipmi HOST --user USER [--port N] [--lan] [server options]
       kvmstrap fleet power NODE --redfish URL --user USER [--system PATH] [--insecure] [server options]

How a rollout powers NODE on (a node id, one of its MACs or its name). Without a driver option,
prints the stored settings, every password shown as "(set)"; with one, replaces them.

Options:
  --libvirt DOMAIN  A libvirt domain (virsh start DOMAIN)
  --uri URI         Its libvirt connection (default qemu:///system)
  --ipmi HOST       A BMC over IPMI 2.0 (ipmitool -I lanplus); the password from IPMI_PASSWORD
  --port N          The BMC's IPMI port (default 623)
  --lan             IPMI 1.5 (ipmitool -I lan), for old BMCs
  --redfish URL     A BMC's Redfish service, https://HOST[:PORT]; the password from REDFISH_PASSWORD
  --system PATH     The Redfish system, e.g. /redfish/v1/Systems/1 (default: the only one listed)
  --insecure        Accept the BMC's certificate without verifying it (self-signed)
  --user USER       The BMC user (--ipmi, --redfish)
  --server URL      The running server (default KVMSTRAP_SERVER, else http://127.0.0.1:8080)
  --token-file F    The server's admin token (default KVMSTRAP_ADMIN_TOKEN, else admin.token in
                    serve's default state directory)
  --json            Print the (redacted) settings as JSON
  -h, --help        Print this help

Passwords are never options: set IPMI_PASSWORD or REDFISH_PASSWORD in the environment. The server
keeps them in its fleet store and never shows them again (not in events, logs or this command).
Exit 0 done, 2 for a bad option, an unknown node, no settings stored or a refused token, 1 when the
server cannot be reached.
`;

export const FLEET_POWER_OPTIONS = {
  libvirt: { type: "string" },
  uri: { type: "string" },
  ipmi: { type: "string" },
  port: { type: "string" },
  lan: { type: "boolean" },
  redfish: { type: "string" },
  system: { type: "string" },
  insecure: { type: "boolean" },
  user: { type: "string" },
  server: { type: "string" },
  "token-file": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

type Values = ReturnType<typeof parse<typeof FLEET_POWER_OPTIONS>>["values"];

/** A node as the fleet routes take it: a store id, a MAC or a name. */
export const NODE_REF = /^[A-Za-z0-9:._-]{1,64}$/;

/** Where each field of the settings came from, for an error the operator can act on. */
const SOURCE: Record<string, string> = {
  domain: "--libvirt",
  uri: "--uri",
  host: "--ipmi",
  port: "--port",
  user: "--user",
  url: "--redfish",
  system: "--system",
};

export async function fleetPowerCommand(argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(argv, FLEET_POWER_OPTIONS);
  if (v.help || positionals[0] === "help") {
    process.stdout.write(FLEET_POWER_HELP);
    return EXIT.ok;
  }
  const [node, extra] = positionals;
  if (!node) throw new UsageError("fleet power needs a NODE (an id, a MAC or a name)");
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  if (!NODE_REF.test(node)) throw new UsageError(`fleet power: "${node}" is not a node id, MAC or name`);
  const settings = settingsOf(v);
  const client = await FleetClient.connect({ server: v.server, tokenFile: v["token-file"] });
  const shown = settings ? await client.setPower(node, settings) : await client.power(node);
  process.stdout.write(
    v.json
      ? `${JSON.stringify(shown, null, 2)}\n`
      : `node ${node}${settings ? " now powers on through" : ":"} ${describePower(shown)}\n`,
  );
  return EXIT.ok;
}

/** The settings the flags give, checked; undefined: none given (show the stored ones). */
function settingsOf(v: Values): PowerSettings | undefined {
  const drivers = (["libvirt", "ipmi", "redfish"] as const).filter((d) => v[d] !== undefined);
  if (drivers.length > 1)
    throw new UsageError(`--${drivers[0]} and --${drivers[1]}: one power driver per node`);
  const driver = drivers[0];
  const only = (flag: "uri" | "port" | "lan" | "system" | "insecure" | "user", ...allowed: string[]) => {
    if (v[flag] !== undefined && !allowed.includes(driver ?? ""))
      throw new UsageError(`--${flag} is for ${allowed.map((a) => `--${a}`).join(" or ")}`);
  };
  only("uri", "libvirt");
  only("port", "ipmi");
  only("lan", "ipmi");
  only("system", "redfish");
  only("insecure", "redfish");
  only("user", "ipmi", "redfish");
  if (!driver) return undefined;
  let input: Record<string, unknown>;
  if (driver === "libvirt") input = { driver, domain: v.libvirt, ...(v.uri ? { uri: v.uri } : {}) };
  else {
    const env = driver === "ipmi" ? "IPMI_PASSWORD" : "REDFISH_PASSWORD";
    if (!v.user) throw new UsageError(`--${driver} needs --user USER`);
    const password = process.env[env];
    if (!password)
      throw new UsageError(
        `--${driver} needs the BMC password in ${env} (never an option: ps shows options)`,
      );
    if (driver === "ipmi") {
      if (v.port !== undefined && !/^\d{1,5}$/.test(v.port))
        throw new UsageError(`--port ${v.port}: expected a port number 1-65535`);
      input = {
        driver,
        host: v.ipmi,
        user: v.user,
        password,
        ...(v.port !== undefined ? { port: Number(v.port) } : {}),
        ...(v.lan ? { interface: "lan" } : {}),
      };
    } else
      input = {
        driver,
        url: v.redfish,
        user: v.user,
        password,
        ...(v.system !== undefined ? { system: v.system } : {}),
        ...(v.insecure ? { insecure: true } : {}),
      };
  }
  const r = parsePowerSettings(input);
  if (r.ok) return r.settings;
  const from =
    r.field === "password" ? (driver === "ipmi" ? "IPMI_PASSWORD" : "REDFISH_PASSWORD") : SOURCE[r.field];
  throw new UsageError(`${from ?? r.field}: ${r.error}`);
}
