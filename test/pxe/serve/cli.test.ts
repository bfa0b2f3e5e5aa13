// The real CLI (bin/kvmstrap.js -> dist/) as `kvmstrap serve --dhcp off --listen 127.0.0.1
// --tftp-port P --http-port Q --files DIR`: tftp-hpa, atftp (blksize, windowsize) and curl (TFTP and
// HTTP) fetch a file whose sha256 matches; `serve status --json` reads it; SIGTERM stops it cleanly
// (exit 0, a "stopped" event, no temporary files left). Usage and input errors exit 2 with one line.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freeTcp } from "../../helpers/free-port.js";
import { projectRoot } from "../../helpers/shared-hosts.js";
import { makeNetboot, sha256, tempDir } from "./helpers.js";

const bin = path.join(projectRoot, "bin/kvmstrap.js");
const built = existsSync(path.join(projectRoot, "dist/cli/serve-command.js"));
const has = (tool: string) =>
  execa("sh", ["-c", `command -v ${tool}`], { reject: false }).then((r) => r.exitCode === 0);

const tmp = tempDir("cli");
const files = path.join(tmp.dir, "files");
const state = path.join(tmp.dir, "state");
const out = path.join(tmp.dir, "out");
const big = randomBytes(3 * 1024 * 1024 + 777);
const efi = randomBytes(200_000);
let child: ChildProcess;
let events: Record<string, unknown>[] = [];
let stdout = "";
let stderr = "";
let tftpPort = 0;
let httpPort = 0;

const freeUdp = () =>
  new Promise<number>((resolve) => {
    const s = createSocket("udp4");
    s.bind(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const waitFor = async (pred: (e: Record<string, unknown>) => boolean, what: string, ms = 15_000) => {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const hit = events.find(pred);
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `no ${what} within ${ms} ms; stdout: ${stdout.slice(0, 2000)} stderr: ${stderr.slice(0, 2000)}`,
  );
};

beforeAll(async () => {
  if (!built) return;
  for (const d of [files, state, out]) mkdirSync(d, { recursive: true });
  writeFileSync(path.join(files, "big.bin"), big);
  // Debian links /usr/lib/ipxe/ipxe.efi to /boot/ipxe.efi: an --ipxe-dir image may live elsewhere,
  // while a link out of --files stays refused.
  mkdirSync(path.join(tmp.dir, "ipxe"));
  mkdirSync(path.join(tmp.dir, "boot"));
  writeFileSync(path.join(tmp.dir, "boot", "ipxe.efi"), efi);
  symlinkSync(path.join(tmp.dir, "boot", "ipxe.efi"), path.join(tmp.dir, "ipxe", "ipxe.efi"));
  symlinkSync(path.join(tmp.dir, "boot", "ipxe.efi"), path.join(files, "outside.efi"));
  const netboot = makeNetboot(path.join(tmp.dir, "netboot")).dir;
  [tftpPort, httpPort] = [await freeUdp(), await freeTcp()];
  child = spawn(process.execPath, [
    bin,
    "serve",
    ...["--dhcp", "off", "--listen", "127.0.0.1"],
    ...["--tftp-port", String(tftpPort), "--http-port", String(httpPort), "--tftp-max", "7"],
    ...["--files", files, "--netboot", netboot, "--ipxe-dir", path.join(tmp.dir, "ipxe")],
    ...["--state-dir", state, "--json"],
  ]);
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
    events = stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l));
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  await waitFor((e) => e.type === "listening", "listening event");
});
afterAll(() => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  tmp.remove();
});

const cli = (args: string[]) =>
  execa(process.execPath, [bin, ...args], { reject: false, timeout: 20_000, env: { NO_COLOR: "1" } });

describe.skipIf(!built)(
  `kvmstrap serve as the real CLI${built ? "" : " (skipped: dist/ not built, run npm run build)"}`,
  () => {
    it("says where it listens", async () => {
      expect(events[0]).toMatchObject({
        type: "listening",
        http: `http://127.0.0.1:${httpPort}`,
        tftp: `127.0.0.1:${tftpPort}`,
        dhcp: "off",
      });
    });

    it("tftp-hpa gets a --files file byte for byte (lock-step, 512-byte blocks)", async () => {
      if (!(await has("tftp"))) return expect.soft("tftp-hpa missing").toBe("skipped");
      const local = path.join(out, "hpa.bin");
      await execa("tftp", ["127.0.0.1", String(tftpPort), "-m", "binary", "-c", "get", "big.bin", local], {
        timeout: 60_000,
      });
      expect(sha256(readFileSync(local))).toBe(sha256(big));
      await waitFor(
        (e) => e.type === "transfer" && e.outcome === "completed" && e.blksize === 512,
        "tftp-hpa transfer event",
      );
    });

    it("atftp gets it with blksize 1468 and windowsize 16", async () => {
      if (!(await has("atftp"))) return expect.soft("atftp missing").toBe("skipped");
      const local = path.join(out, "atftp.bin");
      await execa(
        "atftp",
        [
          "--option",
          "blksize 1468",
          "--option",
          "windowsize 16",
          "-g",
          "-r",
          "big.bin",
          "-l",
          local,
          "127.0.0.1",
          String(tftpPort),
        ],
        { timeout: 60_000 },
      );
      expect(sha256(readFileSync(local))).toBe(sha256(big));
      const e = await waitFor((x) => x.type === "transfer" && x.windowsize === 16, "atftp transfer event");
      expect(e).toMatchObject({ file: "big.bin", outcome: "completed", bytes: big.length, blksize: 1468 });
    });

    it("curl gets it over TFTP and over HTTP (/files/NAME)", async () => {
      const viaTftp = path.join(out, "curl-tftp.bin");
      await execa(
        "curl",
        ["-sS", "--fail", "--tftp-blksize", "1468", "-o", viaTftp, `tftp://127.0.0.1:${tftpPort}/big.bin`],
        {
          timeout: 60_000,
        },
      );
      expect(sha256(readFileSync(viaTftp))).toBe(sha256(big));
      const viaHttp = path.join(out, "curl-http.bin");
      await execa("curl", ["-sS", "--fail", "-o", viaHttp, `http://127.0.0.1:${httpPort}/files/big.bin`], {
        timeout: 60_000,
      });
      expect(sha256(readFileSync(viaHttp))).toBe(sha256(big));
      const missing = await execa("curl", [
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        `http://127.0.0.1:${httpPort}/files/../state/token.key`,
      ]);
      expect(missing.stdout).toBe("404");
    });

    it("serves an iPXE image linked from out of --ipxe-dir, refuses a link out of --files", async () => {
      const local = path.join(out, "ipxe.efi");
      await execa("curl", ["-sS", "--fail", "-o", local, `tftp://127.0.0.1:${tftpPort}/ipxe.efi`], {
        timeout: 20_000,
      });
      expect(sha256(readFileSync(local))).toBe(sha256(efi));
      const outside = await execa(
        "curl",
        ["-sS", "-o", path.join(out, "x"), `tftp://127.0.0.1:${tftpPort}/outside.efi`],
        {
          reject: false,
          timeout: 20_000,
        },
      );
      expect(outside.exitCode).not.toBe(0);
      await waitFor(
        (e) => e.type === "transfer" && e.file === "outside.efi" && e.outcome === "refused",
        "the refusal",
      );
    });

    it("serve status --json reads the running server; the human form names it", async () => {
      await execa("curl", [
        "-sS",
        "--fail",
        "-o",
        "/dev/null",
        `http://127.0.0.1:${httpPort}/boot/52-54-00-0c-11-01.ipxe`,
      ]);
      const r = await cli(["serve", "status", "--server", `http://127.0.0.1:${httpPort}`, "--json"]);
      expect(r.exitCode).toBe(0);
      const status = JSON.parse(r.stdout);
      expect(status.server).toMatchObject({ http: `http://127.0.0.1:${httpPort}`, dhcp: "off", tftpMax: 7 });
      // The server's own footprint and how many nodes it tracks.
      expect(status.server.nodeCount).toBe(status.nodes.length);
      expect(status.server.memory.rss).toBeGreaterThan(status.server.memory.heapUsed);
      expect(status.server.memory.heapUsed).toBeGreaterThan(1_000_000);
      expect(status.nodes).toContainEqual(
        expect.objectContaining({ mac: "52:54:00:0c:11:01", state: "script" }),
      );
      const human = await cli(["serve", "status", "--server", `http://127.0.0.1:${httpPort}`]);
      expect(human.exitCode).toBe(0);
      expect(human.stdout).toMatch(/52:54:00:0c:11:01\s+script/);
      expect(human.stdout).toMatch(/^\d+ nodes tracked, server RSS \d+ MiB, heap \d+ MiB$/m);
    });

    it("serve status --follow --json streams the server's events as they happen", async () => {
      const follow = spawn(process.execPath, [
        bin,
        "serve",
        "status",
        "--follow",
        "--json",
        "--server",
        `http://127.0.0.1:${httpPort}`,
      ]);
      let got = "";
      follow.stdout.on("data", (d: Buffer) => {
        got += d.toString();
      });
      try {
        const t0 = Date.now();
        while (!got.includes('"type":"hello"') && Date.now() - t0 < 10_000)
          await new Promise((r) => setTimeout(r, 50));
        await execa("curl", [
          "-sS",
          "--fail",
          "-o",
          "/dev/null",
          `http://127.0.0.1:${httpPort}/boot/52-54-00-0c-11-02.ipxe`,
        ]);
        while (!got.includes("52:54:00:0c:11:02") && Date.now() - t0 < 10_000)
          await new Promise((r) => setTimeout(r, 50));
        const line = got.split("\n").find((l) => l.includes("52:54:00:0c:11:02")) as string;
        expect(JSON.parse(line)).toMatchObject({
          type: "node-state",
          from: "discovered",
          state: "script",
          input: "script",
        });
      } finally {
        follow.kill("SIGTERM");
      }
    });

    it("serve rearm with the state directory's admin token", async () => {
      const r = await cli([
        "serve",
        "rearm",
        "52-54-00-0C-11-01",
        "--server",
        `http://127.0.0.1:${httpPort}`,
        "--state-dir",
        state,
      ]);
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      await waitFor((e) => e.type === "node-state" && e.input === "rearm", "rearm event");
    });

    it("SIGTERM stops it cleanly: exit 0, a stopped event, no temporary files", async () => {
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(events.at(-1)).toMatchObject({ type: "stopped" });
      // The state it keeps on purpose (the re-arm above saved nodes-state.json), and nothing else.
      expect(readdirSync(state).sort()).toEqual(["admin.token", "nodes-state.json", "token.key"]);
      expect(readdirSync(files).sort()).toEqual(["big.bin", "outside.efi"]);
      expect(stderr).toBe("");
    });
  },
);

describe.skipIf(!built)("kvmstrap serve stopped the moment it says it listens", () => {
  // A script that starts the server, waits for "listening" and stops it at once must get a clean
  // stop (exit 0, a stopped event), not death by the signal's default action.
  it("SIGTERM on the listening line: exit 0 and a stopped event, every time", async () => {
    for (let i = 0; i < 3; i++) {
      const dir = path.join(tmp.dir, `quick-${i}`);
      mkdirSync(dir);
      const quick = spawn(process.execPath, [
        bin,
        "serve",
        ...["--dhcp", "off", "--listen", "127.0.0.1", "--tftp-port", "0", "--http-port", "0"],
        ...["--ipxe-dir", path.join(dir, "none"), "--state-dir", dir, "--json"],
      ]);
      let out = "";
      const exited = new Promise<number | null>((resolve) => quick.once("exit", (code) => resolve(code)));
      quick.stdout?.on("data", (d: Buffer) => {
        const first = !out.includes('"listening"');
        out += d.toString();
        if (first && out.includes('"listening"')) quick.kill("SIGTERM");
      });
      expect(await exited, out).toBe(0);
      expect(out).toContain('"type":"stopped"');
    }
  });
});

describe.skipIf(!built)("kvmstrap serve usage and input errors (exit 2, one line)", () => {
  it.each([
    [["serve", "--dhcp", "bogus"], /--dhcp bogus: expected proxy, full or off/],
    [["serve", "--dhcp", "full"], /--dhcp full needs --dhcp-range/],
    [["serve", "--dhcp", "proxy", "--state-dir", "/nonexistent/x"], /needs --interface IF or --listen ADDR/],
    [["serve", "--tftp-port", "70000"], /--tftp-port 70000: expected a port/],
    [["serve", "--token-ttl", "soon"], /--token-ttl soon: expected a duration/],
    [["serve", "--tftp-max", "0"], /--tftp-max 0: expected a whole number/],
    [["serve", "rearm", "not-a-mac"], /not a MAC address/],
    [["serve", "status", "--dhcp", "off"], /--dhcp is an option of the server/],
    [["serve", "frobnicate"], /unknown serve subcommand/],
  ])("kvmstrap %j", async (args, message) => {
    const r = await cli(args);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.split("\n")[0]).toMatch(message);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
  });

  it("a bad answer in the nodes file is an exit-2 error naming the nodes file line and the answer's", async () => {
    const dir = path.join(tmp.dir, "bad");
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "a.yaml"), "version: 1\nhost:\n  hostnme: x\n");
    writeFileSync(path.join(dir, "nodes.yaml"), "nodes:\n  - mac: 52:54:00:00:00:01\n    answer: a.yaml\n");
    const r = await cli([
      "serve",
      ...["--dhcp", "off", "--listen", "127.0.0.1", "--tftp-port", "0", "--http-port", "0"],
      ...["--nodes", path.join(dir, "nodes.yaml"), "--state-dir", path.join(dir, "state")],
    ]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`${path.join(dir, "nodes.yaml")}:2:5`);
    expect(r.stderr).toMatch(/a\.yaml:3:3: host\.hostnme/);
  });
});
