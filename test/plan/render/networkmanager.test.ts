// NetworkManager 1.42 (Debian 12) has `nmcli --offline`: `connection modify` reads a keyfile on stdin,
// normalizes and verifies it with libnm exactly as the daemon would, and prints it or fails.
import { describe, expect, it } from "vitest";
import { nmUuid, renderNmKeyfiles } from "../../../src/plan/render/networkmanager.js";
import type { NetworkDesired } from "../../../src/plan/render/types.js";
import { has, iniGet, MAC1, NETS, parseIni, run } from "./helpers.js";

const offline =
  has("nmcli") &&
  run(["nmcli", "--offline", "connection", "add", "type", "ethernet", "ifname", "x"]).code === 0;

describe("renderNmKeyfiles", () => {
  it("writes 0600 profiles: bridge with the uplink MAC, ports with master/slave-type, ipv4 auto/manual", () => {
    const files = renderNmKeyfiles(NETS["bridge over a NIC with DHCP"] as NetworkDesired);
    expect(files.map((f) => f.path)).toEqual([
      "/etc/NetworkManager/system-connections/kvmstrap-br0.nmconnection",
      "/etc/NetworkManager/system-connections/kvmstrap-eno1.nmconnection",
    ]);
    expect(files.every((f) => f.mode === 0o600)).toBe(true);
    const br = parseIni(files[0]?.content ?? "");
    expect(iniGet(br, "connection", "type")).toEqual(["bridge"]);
    expect(iniGet(br, "ethernet", "cloned-mac-address")).toEqual([MAC1]);
    expect(iniGet(br, "ipv4", "method")).toEqual(["auto"]);
    const port = parseIni(files[1]?.content ?? "");
    expect(iniGet(port, "connection", "master")).toEqual(["br0"]);
    expect(iniGet(port, "connection", "slave-type")).toEqual(["bridge"]);
    expect(port.has("ipv4")).toBe(false);
    const st = parseIni(
      renderNmKeyfiles(NETS["static bridge with gateway and DNS"] as NetworkDesired)[0]?.content ?? "",
    );
    expect(iniGet(st, "ipv4", "method")).toEqual(["manual"]);
    expect(iniGet(st, "ipv4", "address1")).toEqual(["192.0.2.10/24"]);
    expect(iniGet(st, "ipv6", "address1")).toEqual(["2001:db8::10/64"]);
    expect(iniGet(st, "ipv4", "route1")).toEqual(["198.51.100.0/24,192.0.2.254,50"]);
  });

  it("a bond under a bridge brings its own ports up: activating the bridge is enough", () => {
    const files = renderNmKeyfiles(NETS["bond under a bridge"] as NetworkDesired);
    const ini = (name: string) =>
      parseIni(files.find((f) => f.path.endsWith(`/kvmstrap-${name}.nmconnection`))?.content ?? "");
    expect(iniGet(ini("vmbr0"), "connection", "autoconnect-slaves")).toEqual(["1"]);
    expect(iniGet(ini("bond0"), "connection", "master")).toEqual(["vmbr0"]);
    expect(iniGet(ini("bond0"), "connection", "autoconnect-slaves")).toEqual(["1"]);
    expect(iniGet(ini("eno1"), "connection", "autoconnect-slaves")).toEqual([]);
  });

  it("UUIDs are stable and RFC 4122 shaped", () => {
    expect(nmUuid("kvmstrap-br0")).toBe(nmUuid("kvmstrap-br0"));
    expect(nmUuid("kvmstrap-br0")).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });

  if (!offline) it.skip("nmcli --offline verification: nmcli missing or without --offline", () => {});
  for (const [name, n] of Object.entries(NETS)) {
    it.skipIf(!offline)(`nmcli --offline accepts every profile: ${name}`, () => {
      for (const f of renderNmKeyfiles(n)) {
        const r = run(["nmcli", "--offline", "connection", "modify", "connection.autoconnect", "yes"], {
          input: f.content,
        });
        expect(r.code, `${f.path}: ${r.stderr}`).toBe(0);
        const back = parseIni(r.stdout);
        const mine = parseIni(f.content);
        expect(iniGet(back, "connection", "uuid")).toEqual(iniGet(mine, "connection", "uuid"));
        expect(iniGet(back, "connection", "master")).toEqual(iniGet(mine, "connection", "master"));
      }
    });
  }

  it.skipIf(!offline)("nmcli --offline really verifies (out-of-range forward-delay is refused)", () => {
    const text = `[connection]\nid=x\nuuid=${nmUuid("x")}\ntype=bridge\ninterface-name=brx\n\n[bridge]\nforward-delay=0\n`;
    expect(
      run(["nmcli", "--offline", "connection", "modify", "connection.autoconnect", "yes"], { input: text })
        .code,
    ).not.toBe(0);
  });
});
