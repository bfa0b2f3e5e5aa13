// GET /metrics of the shipped BootServer, driven by real clients (curl over TFTP and HTTP) through a
// node's whole life (script, appliance up, answer, install, installed), then checked twice: by
// Prometheus's own promtool (the exposition format is valid) and by reading the values back (each
// metric counts what happened, not just that it exists).
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BootServer } from "../../../src/pxe/server.js";
import { curl, MAC_A, makeNetboot, makeNodesFile, type NetbootFixture, tempDir } from "./helpers.js";

const tmp = tempDir("metrics");
let server: BootServer;
let base: string;
let netboot: NetbootFixture;
const scratch = path.join(tmp.dir, "scratch");
const TFTP_FILE = Buffer.alloc(100_000, 7);
const hasPromtool =
  (await execa("promtool", ["--version"], { reject: false }).catch(() => null))?.exitCode === 0;

beforeAll(async () => {
  netboot = makeNetboot(path.join(tmp.dir, "netboot"));
  const files = path.join(tmp.dir, "files");
  mkdirSync(files);
  mkdirSync(scratch);
  writeFileSync(path.join(files, "blob.bin"), TFTP_FILE);
  server = await BootServer.start({
    dhcp: "off",
    listen: "127.0.0.1",
    tftpPort: 0,
    httpPort: 0,
    filesDir: files,
    netbootDir: netboot.dir,
    ipxeDir: path.join(tmp.dir, "no-ipxe"),
    nodesFile: makeNodesFile(tmp.dir),
    stateDir: path.join(tmp.dir, "state"),
    tokenTtlSeconds: 3600,
    knownOnly: false,
  });
  base = server.info.http;
});
afterAll(async () => {
  await server?.close();
  tmp.remove();
});

const get = (p: string, args: string[] = []) => curl(scratch, `${base}${p}`, args);
const post = (mac: string, token: string, body: object) =>
  get(`/v1/nodes/${mac}/events`, [
    ...["-X", "POST", "-H", "content-type: application/json", "-H", `Authorization: Bearer ${token}`],
    ...["--data-binary", JSON.stringify({ ...body, time: new Date().toISOString() })],
  ]);

/** `name{labels} value` lines of the exposition, by their series text. */
function series(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

describe("GET /metrics", () => {
  it("counts a node's life, TFTP and HTTP bytes, and passes promtool check metrics", async () => {
    const tftpUrl = `tftp://${server.info.tftp}/blob.bin`;
    const t = await execa("curl", [
      "-sS",
      "--tftp-blksize",
      "1468",
      "-o",
      path.join(scratch, "blob"),
      tftpUrl,
    ]);
    expect(t.exitCode).toBe(0);

    const script = (await get(`/boot/${MAC_A.replaceAll(":", "-")}.ipxe`)).body.toString();
    const token = /kvmstrap\.token=(\S+)/.exec(script)?.[1] as string;
    const kernel = await get(`/netboot/vmlinuz?node=${encodeURIComponent(MAC_A)}`);
    expect(kernel.status).toBe(200);
    expect((await post(MAC_A, token, { type: "node", phase: "appliance-up" })).status).toBe(204);
    const answerUrl = /kvmstrap\.answer=(\S+)/.exec(script)?.[1] as string;
    expect((await curl(scratch, answerUrl, ["-H", `Authorization: Bearer ${token}`])).status).toBe(200);
    expect((await post(MAC_A, token, { type: "run", phase: "STARTED", runId: "r1" })).status).toBe(204);
    expect((await post(MAC_A, token, { type: "node", phase: "installed" })).status).toBe(204);

    const r = await get("/metrics");
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toContain("text/plain");
    const text = r.body.toString();
    const m = series(text);
    expect(m.get('kvmstrap_nodes{state="installed"}')).toBe(1);
    expect(m.get('kvmstrap_nodes{state="stalled"}')).toBe(0);
    expect(m.get('kvmstrap_tftp_transfers_total{outcome="completed"}')).toBe(1);
    expect(m.get('kvmstrap_tftp_bytes_total{outcome="completed"}')).toBe(TFTP_FILE.length);
    expect(m.get("kvmstrap_http_artifact_bytes_total")).toBe(kernel.body.length);
    expect(m.get("kvmstrap_node_boot_seconds_count")).toBe(1);
    expect(m.get("kvmstrap_node_install_seconds_count")).toBe(1);
    expect(m.get('kvmstrap_node_inputs_total{input="answer-fetched"}')).toBe(1);
    expect(m.get('kvmstrap_node_inputs_total{input="installed"}')).toBe(1);
    expect(m.get("kvmstrap_serve_process_resident_memory_bytes")).toBeGreaterThan(0);

    if (!hasPromtool) {
      console.warn("SKIPPED promtool check metrics: promtool (Debian package prometheus) is not installed");
      return;
    }
    const check = await execa("promtool", ["check", "metrics"], { input: text, reject: false });
    // promtool parses the exposition (a format error is reported and fails) and lints names. The
    // only lint findings allowed are prom-client's own default gauges named *_total (a known naming
    // of that library); kvmstrap's metrics must lint clean.
    const findings = (check.stderr + check.stdout).split("\n").filter(Boolean);
    const ours = findings.filter((l) => !/^kvmstrap_serve_nodejs_active_\w+_total non-counter/.test(l));
    expect(ours).toEqual([]);
    expect(findings.some((l) => /error|parsing/i.test(l))).toBe(false);
  });
});
