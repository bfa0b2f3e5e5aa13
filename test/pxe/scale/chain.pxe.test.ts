// 1,000 simulated nodes through the whole chain against the real `kvmstrap serve` (a process in a
// network namespace, --dhcp full on its veth): DHCP as a PXE ROM, iPXE over TFTP, DHCP as iPXE, the
// generic and per-node scripts, kernel, initrd and root image over HTTP (each checked by sha256),
// the appliance's events and answer with its token, then a second network boot sent to the local
// disk and the installed system's reports. Zero failures at every stage, and the server's own
// timeline (`kvmstrap serve status --json`) shows every node at "verified" having passed through
// every state in order. Durations are printed, never asserted (they belong to bench:pxe).
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { has, netnsUnavailable, removeTempDirs } from "../dhcp4/netns.js";
import { Lab, SERIAL } from "../sim/lab.js";
import type { BootReport } from "../sim/main.js";
import { SERVER_STATE, STAGES } from "../sim/node.js";

const NODES = Number(process.env.KVMSTRAP_SIM_NODES ?? 1000);
const why =
  netnsUnavailable() ??
  (has("cc") ? undefined : "cc missing (the DHCP interface binding is a small native addon)") ??
  (existsSync("/usr/lib/ipxe/undionly.kpxe")
    ? undefined
    : "/usr/lib/ipxe/undionly.kpxe missing (package ipxe)");

let lab: Lab;
beforeAll(async () => {
  if (why) return;
  lab = new Lab({ tag: "scale" });
  await lab.start();
}, 120_000);
afterAll(async () => {
  await lab?.stop();
  removeTempDirs();
});

/** The states a node passes through, in order, when the simulator drives it to "verified". */
const PATH = [
  "offered",
  "tftp",
  "ipxe",
  "script",
  "kernel",
  "initrd",
  "rootfs",
  "appliance-up",
  "answer-fetched",
  "installing",
  "installed",
  "local-boot",
  "rebooted",
  "verified",
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

describe.skipIf(why)(
  `${NODES} simulated nodes through kvmstrap serve${why ? ` (skipped: ${why})` : ""}`,
  () => {
    it("every node reaches every stage, and the server's timeline shows each at verified", async () => {
      const report = await lab.run<BootReport>(
        {
          mode: "boot",
          nodes: NODES,
          concurrency: 100,
          windowsizes: [1, 4, 8],
          node: {
            tftpPort: 69,
            sha256: lab.sha256,
            serial: SERIAL,
            blksize: 1456,
            kind: "pxe-bios",
            through: "verified",
            timeoutMs: 120_000,
          },
        },
        (line) => console.log(line),
      );
      console.log(
        `sim: ${report.ok}/${report.nodes} nodes in ${report.wallMs} ms, ${report.dhcpRetries} DHCP retries, ${report.tftpResends} TFTP resends, ${(report.bytes / 2 ** 20).toFixed(0)} MiB; stages ${JSON.stringify(report.stages)}`,
      );
      expect(report.failures).toEqual([]);
      expect(report.ok).toBe(NODES);
      for (const s of STAGES) expect(report.stages[s], s).toMatchObject({ ok: NODES, failed: 0 });

      const status = lab.status();
      const byMac = new Map(status.nodes.map((n) => [n.mac, n]));
      const inState = new Map<string, number[]>();
      let regressions = 0;
      for (const mac of report.macs) {
        const n = byMac.get(mac);
        expect(n, mac).toBeDefined();
        if (!n) continue;
        expect(n.state, mac).toBe(SERVER_STATE.verified);
        expect(n.installed, mac).toBe(true);
        expect(
          n.timeline.filter((t) => t.unexpected),
          mac,
        ).toEqual([]);
        // Every state of the path entered, in order, and none entered twice: a TFTP transfer's end
        // reported after iPXE's DHCP (the ROM's last ACK and iPXE's DISCOVER race on two sockets)
        // must not move the node back to "tftp".
        const entered = n.timeline.filter((t) => t.state !== t.from).map((t) => t.state);
        let at = 0;
        for (const s of entered) if (s === PATH[at]) at++;
        expect(at, `${mac} entered ${entered.join(" > ")}`).toBe(PATH.length);
        if (entered.length !== PATH.length) regressions++;
        for (const t of n.timeline) {
          expect(t.durationMs, mac).toBeGreaterThanOrEqual(0);
          if (t.state !== t.from) inState.set(t.from, [...(inState.get(t.from) ?? []), t.durationMs]);
        }
      }
      console.log(`nodes whose timeline went back a state on the way: ${regressions}`);
      expect(regressions).toBe(0);
      console.log(
        `time in each state at the server (median ms): ${PATH.slice(0, -1)
          .map((s) => `${s} ${median(inState.get(s) ?? [])}`)
          .join(", ")}`,
      );
      const warnings = lab.events?.seen.filter((e) => e.type === "warning") ?? [];
      expect(warnings).toEqual([]);
      const mem = lab.memory();
      console.log(
        `server RSS ${mem.rssKiB} KiB (peak ${mem.hwmKiB} KiB) with ${status.nodes.length} nodes tracked`,
      );
      expect(lab.alive).toBe(true);
    }, 1_200_000);
  },
);
