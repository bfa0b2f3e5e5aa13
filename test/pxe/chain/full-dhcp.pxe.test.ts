// The boot chain on real firmware against `kvmstrap serve --dhcp full --dhcp-range A-B --interface
// br0` as the only DHCP server on an isolated segment (no dnsmasq): a QEMU guest under SeaBIOS (QEMU's
// iPXE ROM) and one under OVMF (EDK2's own PXE client, then Debian's ipxe.efi over TFTP) each take an
// address from kvmstrap's range, chain to their own iPXE script and fetch the appliance's kernel and
// initrd over HTTP. Each guest is killed once the server has sent it both: the fleet tier's rack
// rollout boots on into the appliance; what differs here is the DHCP. The server is restarted between the
// guests on the same state directory, so the second guest proves the leases were persisted: without
// STATE/leases.json it would be offered the first guest's address again.
// Serial logs and the event stream: iso-build/out/test-logs/pxe-full-*.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Netns, removeTempDirs, tempDir } from "../dhcp4/netns.js";
import { ensureNetboot, LOG_DIR, NETBOOT, type NetbootManifest, netbootManifest } from "./netboot.js";
import {
  bootUntilFetched,
  chainUnavailable,
  entered,
  expectFetched,
  expectTimeline,
  FETCH_MS,
  nodeStatus,
  ovmfUnavailable,
  type Serve,
  startServe,
} from "./rig.js";

const why = chainUnavailable();
const ovmfWhy = ovmfUnavailable();
const SERVER_IP = "10.82.0.1";
const SERVER = `http://${SERVER_IP}:8080`;
const RANGE = { first: 100, last: 119 };
const SEABIOS_MAC = "52:54:00:82:00:01";
const OVMF_MAC = "52:54:00:82:00:02";
const EVENTS = "pxe-full-serve.jsonl";

let ns: Netns;
let state: string;
let serve: Serve | undefined;
let missing: string | undefined;
let manifest: NetbootManifest;

type Lease = { mac: string; ip: string; state: string; expires: number };
const leases = (): Lease[] => {
  const file = path.join(state, "leases.json");
  if (!existsSync(file)) return [];
  return (JSON.parse(readFileSync(file, "utf8")) as { leases: Lease[] }).leases;
};
const inRange = (ip: string) => {
  const m = /^10\.82\.0\.(\d+)$/.exec(ip);
  return m !== null && Number(m[1]) >= RANGE.first && Number(m[1]) <= RANGE.last;
};

async function startFull(): Promise<Serve> {
  return startServe(
    ns,
    [
      ...["--dhcp", "full", "--dhcp-range", `10.82.0.${RANGE.first}-10.82.0.${RANGE.last}`],
      ...["--interface", "br0", "--http-port", "8080", "--netboot", NETBOOT, "--state-dir", state],
    ],
    EVENTS,
  );
}

beforeAll(async () => {
  if (why) return;
  missing = await ensureNetboot();
  if (missing) return;
  manifest = await netbootManifest();
  await mkdir(LOG_DIR, { recursive: true });
  writeFileSync(path.join(LOG_DIR, EVENTS), "");
  ns = new Netns(`kvms-fd-${process.pid}`);
  ns.bridge("br0", `${SERVER_IP}/24`);
  ns.tap("tap0", "br0");
  state = tempDir("full-state");
  serve = await startFull();
}, 1_800_000);
afterAll(async () => {
  await serve?.stop();
  ns?.destroy();
  removeTempDirs();
});

describe.skipIf(why)(`PXE chain against kvmstrap's full DHCP alone${why ? ` (skipped: ${why})` : ""}`, () => {
  it(
    "SeaBIOS + QEMU's iPXE ROM: an address from the range (persisted), the script, kernel and initrd over HTTP",
    async (ctx) => {
      if (missing) ctx.skip(missing);
      const s = serve as Serve;
      await bootUntilFetched(ns, s, "seabios", SEABIOS_MAC, path.join(LOG_DIR, "pxe-full-seabios.log"));
      expectFetched(s, SEABIOS_MAC, manifest);
      const node = nodeStatus(ns, SERVER, SEABIOS_MAC);
      // The ROM is iPXE: its first DHCP already gets the script URL (no TFTP stage).
      expectTimeline(node, ["ipxe", "script", "kernel", "initrd"]);
      const ipxe = entered(node, "ipxe")?.detail ?? "";
      expect(ipxe).toMatch(/^DISCOVER -> OFFER, boot file http:\/\/10\.82\.0\.1:8080\/boot\.ipxe, address /);
      const ip = /address (\S+)$/.exec(ipxe)?.[1] ?? "";
      expect(inRange(ip), `${ip} in the range`).toBe(true);
      // The ACK came from us too: the lease is bound, and on disk once the server has stopped.
      expect(s.lines.seen).toContainEqual(
        expect.objectContaining({
          mac: SEABIOS_MAC,
          input: "ipxe-dhcp",
          detail: expect.stringMatching(/^REQUEST -> ACK/),
        }),
      );
      expect(await s.stop()).toBe(0);
      serve = undefined;
      expect(leases()).toContainEqual(expect.objectContaining({ mac: SEABIOS_MAC, ip, state: "bound" }));
    },
    FETCH_MS + 60_000,
  );

  it.skipIf(ovmfWhy)(
    `OVMF: EDK2's PXE, ipxe.efi over TFTP, iPXE's script, kernel and initrd; the restarted server keeps the first lease${ovmfWhy ? ` (skipped: ${ovmfWhy})` : ""}`,
    async (ctx) => {
      if (missing) ctx.skip(missing);
      const before = leases().find((l) => l.mac === SEABIOS_MAC);
      if (!before) ctx.skip("the SeaBIOS guest left no lease (see the test before)");
      await serve?.stop(); // still running if the test before failed early
      serve = await startFull();
      const s = serve;
      await bootUntilFetched(ns, s, "ovmf", OVMF_MAC, path.join(LOG_DIR, "pxe-full-ovmf.log"));
      expectFetched(s, OVMF_MAC, manifest);
      const node = nodeStatus(ns, SERVER, OVMF_MAC);
      expectTimeline(node, ["offered", "tftp", "ipxe", "script", "kernel", "initrd"]);
      const offered = entered(node, "offered")?.detail ?? "";
      expect(offered).toMatch(/^DISCOVER -> OFFER, boot file ipxe\.efi, address /);
      const ip = /address (\S+)$/.exec(offered)?.[1] ?? "";
      expect(inRange(ip), `${ip} in the range`).toBe(true);
      // Persisted across the restart: the first guest's address was not offered again.
      expect(ip).not.toBe(before?.ip);
      // EDK2 fetched ipxe.efi from the address we leased it, and iPXE kept that address.
      const tftp = s.lines.seen.find((o) => o.type === "transfer" && o.outcome === "completed");
      expect(tftp).toMatchObject({ file: "ipxe.efi", client: expect.stringMatching(new RegExp(`^${ip}:`)) });
      expect(entered(node, "ipxe")?.detail).toMatch(new RegExp(`address ${ip.replaceAll(".", "\\.")}$`));
      expect(await s.stop()).toBe(0);
      serve = undefined;
      const after = leases();
      expect(after).toContainEqual(expect.objectContaining({ mac: OVMF_MAC, ip, state: "bound" }));
      expect(after).toContainEqual(
        expect.objectContaining({ mac: SEABIOS_MAC, ip: before?.ip, state: "bound" }),
      );
    },
    FETCH_MS + 60_000,
  );
});
