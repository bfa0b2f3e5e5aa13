// The boot server's HTTP side, served by the shipped BootServer on loopback and asked by the real
// curl: the netboot set (Range, ETag, 304, HEAD), per-node scripts found by MAC, UUID or serial,
// token-guarded answers (401 missing, wrong, expired, another node's), the event intake (204, 400,
// 413), and boot once after "installed" until the operator re-arms the node.
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { BootServer } from "../../../src/pxe/server.js";
import { ADMIN_TOKEN_FILE, NodeTokens, TOKEN_KEY_FILE } from "../../../src/pxe/tokens.js";
import {
  ANSWER_A,
  curl,
  MAC_A,
  MAC_B,
  MAC_C,
  makeNetboot,
  makeNodesFile,
  type NetbootFixture,
  SERIAL_B,
  sha256,
  tempDir,
  UUID_B,
} from "./helpers.js";

const tmp = tempDir("http");
let server: BootServer;
let base: string;
let netboot: NetbootFixture;
const stateDir = path.join(tmp.dir, "state");
const scratch = path.join(tmp.dir, "scratch");

beforeAll(async () => {
  netboot = makeNetboot(path.join(tmp.dir, "netboot"));
  const nodesFile = makeNodesFile(tmp.dir);
  readFileSync(nodesFile);
  (await import("node:fs")).mkdirSync(scratch);
  server = await BootServer.start({
    dhcp: "off",
    listen: "127.0.0.1",
    tftpPort: 0,
    httpPort: 0,
    netbootDir: netboot.dir,
    ipxeDir: path.join(tmp.dir, "no-ipxe"),
    nodesFile,
    stateDir,
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
const tokenIn = (script: string) => /kvmstrap\.token=(\S+)/.exec(script)?.[1] as string;
const enc = encodeURIComponent;
const stateOf = async (mac: string) => {
  const s = JSON.parse((await get("/v1/status")).body.toString()) as {
    nodes: { mac: string; state: string }[];
  };
  return s.nodes.find((n) => n.mac === mac)?.state;
};

describe("netboot artifacts", () => {
  it("serves the whole file with its sha256 as a strong ETag", async () => {
    const r = await get("/netboot/filesystem.squashfs");
    const data = netboot.files["filesystem.squashfs"] as Buffer;
    expect(r.status).toBe(200);
    expect(sha256(r.body)).toBe(sha256(data));
    expect(r.headers.etag).toBe(`"${sha256(data)}"`);
    expect(r.headers["accept-ranges"]).toBe("bytes");
    expect(Number(r.headers["content-length"])).toBe(data.length);
  });

  it("answers a byte range with 206 and Content-Range, a suffix range, and 416 past the end", async () => {
    const data = netboot.files["initrd.img"] as Buffer;
    const r = await get("/netboot/initrd.img", ["-r", "1000-1999"]);
    expect(r.status).toBe(206);
    expect(r.headers["content-range"]).toBe(`bytes 1000-1999/${data.length}`);
    expect(r.body.equals(data.subarray(1000, 2000))).toBe(true);
    const tail = await get("/netboot/initrd.img", ["-H", "Range: bytes=-100"]);
    expect(tail.status).toBe(206);
    expect(tail.body.equals(data.subarray(data.length - 100))).toBe(true);
    const open = await get("/netboot/initrd.img", ["-r", `${data.length - 10}-`]);
    expect(open.body.equals(data.subarray(data.length - 10))).toBe(true);
    const past = await get("/netboot/initrd.img", ["-r", `${data.length}-`]);
    expect(past.status).toBe(416);
    expect(past.headers["content-range"]).toBe(`bytes */${data.length}`);
  });

  it("answers If-None-Match with the sha256 by 304, a stale one with the file", async () => {
    const etag = `"${sha256(netboot.files.vmlinuz as Buffer)}"`;
    const hit = await get("/netboot/vmlinuz", ["-H", `If-None-Match: ${etag}`]);
    expect(hit.status).toBe(304);
    expect(hit.body.length).toBe(0);
    const miss = await get("/netboot/vmlinuz", ["-H", `If-None-Match: "${"0".repeat(64)}"`]);
    expect(miss.status).toBe(200);
    // If-Range with another validator: the range is ignored and the whole file sent.
    const ifRange = await get("/netboot/vmlinuz", ["-r", "0-9", "-H", 'If-Range: "other"']);
    expect(ifRange.status).toBe(200);
    expect(ifRange.body.length).toBe((netboot.files.vmlinuz as Buffer).length);
  });

  it("answers HEAD with the length and no body; refuses the manifest and unknown names", async () => {
    const h = await get("/netboot/filesystem.squashfs", ["-I"]);
    expect(h.status).toBe(200);
    expect(Number(h.headers["content-length"])).toBe((netboot.files["filesystem.squashfs"] as Buffer).length);
    expect(h.body.toString()).not.toContain("\u0000");
    expect((await get("/netboot/manifest.json")).status).toBe(404);
    expect((await get("/netboot/..%2Fnodes.yaml")).status).toBe(404);
    expect((await get("/netboot/nope")).status).toBe(404);
  });
});

describe("iPXE scripts", () => {
  it("the generic script chains to the per-node one with MAC, UUID, serial and asset", async () => {
    const r = await get("/boot.ipxe");
    expect(r.status).toBe(200);
    const s = r.body.toString();
    expect(s.startsWith("#!ipxe\n")).toBe(true);
    expect(s).toContain(
      `chain ${base}/boot/\${mac:hexhyp}.ipxe?uuid=\${uuid}&serial=\${serial:uristring}&asset=\${asset:uristring}`,
    );
  });

  it("a known unattended node by MAC gets the kernel with every kvmstrap parameter and retries", async () => {
    const r = await get(`/boot/${MAC_A.replaceAll(":", "-")}.ipxe`);
    const s = r.body.toString();
    const squash = sha256(netboot.files["filesystem.squashfs"] as Buffer);
    const kernel = s.split("\n").find((l) => l.startsWith("kernel ")) as string;
    expect(kernel).toContain(`${base}/netboot/vmlinuz`);
    expect(kernel).toContain(" initrd=initrd.img ");
    expect(kernel).toContain(`fetch=${base}/netboot/filesystem.squashfs`);
    expect(kernel).toContain(`kvmstrap.server=${base} `);
    expect(kernel).toContain(`kvmstrap.node=${MAC_A} `);
    expect(kernel).toContain(`kvmstrap.answer=${base}/v1/nodes/${enc(MAC_A)}/answer`);
    expect(kernel).toContain(`kvmstrap.fetch-sha256=${squash}`);
    expect(kernel).toContain("kvmstrap.auto=install");
    expect(tokenIn(s)).toMatch(/^[0-9a-z]+\.[A-Za-z0-9_-]{43}$/);
    expect(s).toMatch(/^initrd .*\/netboot\/initrd\.img/m);
    expect(s).toContain("inc attempt");
    expect(s).toContain(`iseq \${attempt} 5 && goto failed ||`);
    expect(s).toContain("goto kernel_try");
    expect(s).toContain("goto initrd_try");
    expect(await stateOf(MAC_A)).toBe("script");
  });

  it("a node found by UUID or serial gets its entry (interactive: no kvmstrap.auto, but its answer)", async () => {
    for (const q of [`uuid=${UUID_B}`, `uuid=&serial=${enc(SERIAL_B)}&asset=`]) {
      const s = (await get(`/boot/${MAC_B.replaceAll(":", "-")}.ipxe?${q}`)).body.toString();
      expect(s).toContain("(node-b)");
      expect(s).toContain(`kvmstrap.answer=${base}/v1/nodes/${enc(MAC_B)}/answer`);
      expect(s).not.toContain("kvmstrap.auto");
    }
  });

  it("the query form /boot.ipxe?mac= is the node's script too", async () => {
    const s = (await get(`/boot.ipxe?mac=${MAC_B.toUpperCase()}&serial=${enc(SERIAL_B)}`)).body.toString();
    expect(s).toContain(`kvmstrap.node=${MAC_B}`);
    expect(s).toContain("(node-b)");
    expect((await get("/boot.ipxe?mac=nope")).status).toBe(404);
  });

  it("a HEAD of a node's script moves no node", async () => {
    const head = await get("/boot/52-54-00-ee-ee-01.ipxe", ["-I"]);
    expect(head.status).toBe(200);
    expect(await stateOf("52:54:00:ee:ee:01")).toBeUndefined();
  });

  it("an unknown node boots interactively, with no answer URL", async () => {
    const s = (await get(`/boot/${MAC_C.replaceAll(":", "-")}.ipxe`)).body.toString();
    expect(s).toContain(`kvmstrap.node=${MAC_C}`);
    expect(s).not.toContain("kvmstrap.auto");
    expect(s).not.toContain("kvmstrap.answer");
    expect((await get("/boot/not-a-mac.ipxe")).status).toBe(404);
  });
});

describe("answers and tokens", () => {
  it("refuses a missing, a wrong, an expired and another node's token with 401", async () => {
    const tokenB = tokenIn(
      (await get(`/boot/${MAC_B.replaceAll(":", "-")}.ipxe?uuid=${UUID_B}`)).body.toString(),
    );
    const url = `/v1/nodes/${MAC_A}/answer`;
    const missing = await get(url);
    expect(missing.status).toBe(401);
    expect(missing.body.toString()).toContain("missing");
    const wrong = await get(url, ["-H", "Authorization: Bearer zzz.not-a-token"]);
    expect(wrong.status).toBe(401);
    const other = await get(url, ["-H", `Authorization: Bearer ${tokenB}`]);
    expect(other.status).toBe(401);
    expect(other.body.toString()).toContain("invalid");
    // A genuine token (signed with this server's key) whose time ran out.
    const key = Buffer.from(readFileSync(path.join(stateDir, TOKEN_KEY_FILE), "utf8").trim(), "base64url");
    const old = new NodeTokens(key, 60, () => Date.now() - 2 * 3600_000).issue(MAC_A);
    const expired = await get(url, ["-H", `Authorization: Bearer ${old}`]);
    expect(expired.status).toBe(401);
    expect(expired.body.toString()).toContain("expired");
    const fresh = new NodeTokens(key, 60).issue(MAC_A);
    expect((await get(url, ["-H", `Authorization: Bearer ${fresh}`])).status).toBe(200);
  });

  it("serves the node's own answer with the webhook pointed at its intake, and nothing else", async () => {
    const script = (await get(`/boot/${MAC_A.replaceAll(":", "-")}.ipxe`)).body.toString();
    const token = tokenIn(script);
    // The URL exactly as the appliance reads it from its command line.
    const answerUrl = /kvmstrap\.answer=(\S+)/.exec(script)?.[1] as string;
    const r = await curl(scratch, answerUrl, ["-H", `Authorization: Bearer ${token}`]);
    expect(r.status).toBe(200);
    const text = r.body.toString();
    const served = parseYaml(text);
    const original = parseYaml(ANSWER_A);
    // The webhook's token is issued afresh at the answer fetch (its lifetime counts from there), so
    // it is the script's token only when both fall in one second: check it is this node's and valid.
    const key = Buffer.from(readFileSync(path.join(stateDir, TOKEN_KEY_FILE), "utf8").trim(), "base64url");
    const webhookToken = String(served.report?.headers?.Authorization ?? "").replace(/^Bearer /, "");
    expect(new NodeTokens(key, 60).check(MAC_A, webhookToken)).toEqual({ ok: true });
    expect(new NodeTokens(key, 60).check(MAC_B, webhookToken).ok).toBe(false);
    expect(served.report).toEqual({
      webhook: `${base}/v1/nodes/${enc(MAC_A)}/events`,
      headers: { "X-Site": "rack1", Authorization: `Bearer ${webhookToken}` },
    });
    const { report: _a, ...rest } = served;
    const { report: _b, ...want } = original;
    expect(rest).toEqual(want);
    expect(text).not.toContain("operators-own-token");
    expect(text).not.toContain("node-b");
    expect(await stateOf(MAC_A)).toBe("answer-fetched");
    // The webhook, as the appliance's apply will POST its events to it.
    const hook = await curl(scratch, served.report.webhook, [
      ...["-X", "POST", "-H", "content-type: application/json", "-H", `Authorization: Bearer ${token}`],
      ...[
        "--data-binary",
        JSON.stringify({ type: "run", phase: "STARTED", runId: "r1", time: new Date().toISOString() }),
      ],
    ]);
    expect(hook.status).toBe(204);
    expect(await stateOf(MAC_A)).toBe("installing");
  });

  it("404 for a node without an answer (with a valid token)", async () => {
    const token = tokenIn((await get(`/boot/${MAC_C.replaceAll(":", "-")}.ipxe`)).body.toString());
    const r = await get(`/v1/nodes/${MAC_C}/answer`, ["-H", `Authorization: Bearer ${token}`]);
    expect(r.status).toBe(404);
  });
});

describe("event intake, boot once and re-arm", () => {
  const post = (mac: string, token: string | undefined, body: string) =>
    get(`/v1/nodes/${mac}/events`, [
      "-X",
      "POST",
      "-H",
      "content-type: application/json",
      ...(token ? ["-H", `Authorization: Bearer ${token}`] : []),
      "--data-binary",
      body,
    ]);
  const event = (phase: string) => JSON.stringify({ type: "node", phase, time: new Date().toISOString() });

  it("takes lifecycle and apply events (204), refuses bad bodies (400), big ones (413), no token (401)", async () => {
    const token = tokenIn((await get(`/boot/${MAC_A.replaceAll(":", "-")}.ipxe`)).body.toString());
    expect((await post(MAC_A, token, event("appliance-up"))).status).toBe(204);
    expect(await stateOf(MAC_A)).toBe("appliance-up");
    const step = {
      type: "step",
      phase: "finished",
      id: "kvm.modules",
      summary: "load kvm",
      time: new Date().toISOString(),
    };
    expect((await post(MAC_A, token, JSON.stringify(step))).status).toBe(204);
    expect(await stateOf(MAC_A)).toBe("installing");
    expect((await post(MAC_A, token, '{"type":"node","phase":"exploded"}')).status).toBe(400);
    expect((await post(MAC_A, token, "not json")).status).toBe(400);
    const big = JSON.stringify({ type: "node", phase: "failed", time: "t", detail: "x".repeat(20_000) });
    expect((await post(MAC_A, token, big)).status).toBe(413);
    expect((await post(MAC_A, undefined, event("verified"))).status).toBe(401);
    expect(await stateOf(MAC_A)).toBe("installing");
  });

  it("after installed the node is sent to its local disk until re-armed by the admin", async () => {
    const mac = MAC_A.replaceAll(":", "-");
    const token = tokenIn((await get(`/boot/${mac}.ipxe`)).body.toString());
    expect((await post(MAC_A, token, event("installed"))).status).toBe(204);
    const local = (await get(`/boot/${mac}.ipxe`)).body.toString();
    expect(local).toMatch(/^exit 1$/m); // a failure, so UEFI tries its next boot option (the disk)
    expect(local).toMatch(/^set kvmstrap-local-boot 1$/m);
    expect(local).not.toContain("kernel");
    // This netboot set has no grub-local.efi: UEFI nodes only exit (local-boot.test.ts has the chain).
    expect(local).not.toContain("chain");
    expect(await stateOf(MAC_A)).toBe("local-boot");
    expect(JSON.parse(readFileSync(path.join(stateDir, "nodes-state.json"), "utf8")).installed).toEqual([
      MAC_A,
    ]);
    const rearm = `/v1/nodes/${MAC_A}/rearm`;
    expect((await get(rearm, ["-X", "POST"])).status).toBe(401);
    expect((await get(rearm, ["-X", "POST", "-H", `Authorization: Bearer ${token}`])).status).toBe(401);
    const admin = readFileSync(path.join(stateDir, ADMIN_TOKEN_FILE), "utf8").trim();
    expect((await get(rearm, ["-X", "POST", "-H", `Authorization: Bearer ${admin}`])).status).toBe(200);
    expect(await stateOf(MAC_A)).toBe("discovered");
    const again = (await get(`/boot/${mac}.ipxe`)).body.toString();
    expect(again).toContain("kvmstrap.auto=install");
  });
});

describe("--known-only", () => {
  it("refuses a script to a node the nodes file does not list, and serves one it finds by serial", async () => {
    const dir = path.join(tmp.dir, "known-only");
    const only = await BootServer.start({
      dhcp: "off",
      listen: "127.0.0.1",
      tftpPort: 0,
      httpPort: 0,
      netbootDir: netboot.dir,
      ipxeDir: path.join(tmp.dir, "no-ipxe"),
      nodesFile: makeNodesFile(tmp.dir),
      stateDir: path.join(dir, "state"),
      tokenTtlSeconds: 3600,
      knownOnly: true,
    });
    try {
      const unknown = await curl(scratch, `${only.info.http}/boot/${MAC_C.replaceAll(":", "-")}.ipxe`);
      expect(unknown.status).toBe(404);
      expect(unknown.body.toString()).not.toContain("kernel");
      expect(only.table.get(MAC_C)).toBeUndefined();
      const known = await curl(
        scratch,
        `${only.info.http}/boot/${MAC_B.replaceAll(":", "-")}.ipxe?serial=${enc(SERIAL_B)}`,
      );
      expect(known.status).toBe(200);
      expect(known.body.toString()).toContain("(node-b)");
    } finally {
      await only.close();
    }
  });
});
