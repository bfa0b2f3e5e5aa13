// "installed" reported by many nodes at once, against the shipped BootServer over real HTTP: every
// report is acknowledged (204) only once the installed-nodes file holds its node, and the server
// writes that file by group commit (a handful of writes for 60 reports, counted by inotify on the
// state directory), not once per report one after another.
import { watch } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BootServer } from "../../../src/pxe/server.js";
import { makeNetboot, tempDir } from "./helpers.js";

const tmp = tempDir("commit");
const stateDir = path.join(tmp.dir, "state");
const stateFile = path.join(stateDir, "nodes-state.json");
let server: BootServer;

beforeAll(async () => {
  await mkdir(stateDir, { recursive: true });
  server = await BootServer.start({
    dhcp: "off",
    listen: "127.0.0.1",
    tftpPort: 0,
    httpPort: 0,
    netbootDir: makeNetboot(path.join(tmp.dir, "netboot")).dir,
    ipxeDir: path.join(tmp.dir, "no-ipxe"),
    stateDir,
    tokenTtlSeconds: 3600,
    knownOnly: false,
  });
});
afterAll(async () => {
  await server?.close();
  tmp.remove();
});

const N = 60;
const mac = (i: number) => `52:54:00:77:00:${i.toString(16).padStart(2, "0")}`;

describe("installed reports from many nodes at once", () => {
  it("acknowledges each once the file holds it, with far fewer writes than reports", async () => {
    const base = server.info.http;
    const tokens = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const script = await (await fetch(`${base}/boot/${mac(i)}.ipxe`)).text();
        return /kvmstrap\.token=(\S+)/.exec(script)?.[1] as string;
      }),
    );
    let writes = 0;
    const watcher = watch(stateDir, (_kind, name) => {
      if (name === "nodes-state.json") writes++;
    });
    try {
      const inFile = async () =>
        (JSON.parse(await readFile(stateFile, "utf8")) as { installed: string[] }).installed;
      const acked = await Promise.all(
        tokens.map(async (token, i) => {
          const res = await fetch(`${base}/v1/nodes/${mac(i)}/events`, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
            body: JSON.stringify({ type: "node", phase: "installed", time: new Date().toISOString() }),
          });
          // Read right at the acknowledgement: the node must be on disk already.
          return { status: res.status, durable: (await inFile()).includes(mac(i)) };
        }),
      );
      expect(acked.filter((a) => a.status !== 204)).toEqual([]);
      expect(acked.filter((a) => !a.durable)).toEqual([]);
      expect((await inFile()).sort()).toEqual(Array.from({ length: N }, (_, i) => mac(i)).sort());
      await new Promise((r) => setTimeout(r, 100)); // let inotify's last events arrive
    } finally {
      watcher.close();
    }
    expect(writes).toBeGreaterThan(0);
    expect(writes, `${writes} writes for ${N} reports`).toBeLessThan(N / 3);
  });
});
