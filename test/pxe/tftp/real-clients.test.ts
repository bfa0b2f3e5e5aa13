// Real TFTP clients against the server, byte for byte: tftp-hpa (RFC 1350 lock-step, 512-byte
// blocks), atftp (blksize, windowsize, tsize), curl (blksize, tsize) and the npm package `tftp`
// (windowsize 4 by default, and a timeout option in milliseconds that the server must ignore).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Served, sampleFiles, serve } from "./helpers.js";

const has = (tool: string) => {
  try {
    execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};

const require = createRequire(import.meta.url);
let npmTftp: {
  createClient(o: object): { get(remote: string, local: string, cb: (e?: Error) => void): void };
};
let npmTftpMissing = "";
try {
  npmTftp = require("tftp");
} catch (error) {
  npmTftpMissing = `npm package tftp not installed (${(error as Error).message.split("\n")[0]})`;
}

const files = sampleFiles(1468);
const names = Object.keys(files);
let served: Served;
let out: string;

beforeAll(async () => {
  served = await serve(files);
  out = mkdtempSync(path.join(tmpdir(), "kvmstrap-tftp-out-"));
});
afterAll(async () => {
  await served.stop();
  rmSync(out, { recursive: true, force: true });
});

async function expectServed(name: string, local: string, clientOutcome = "completed") {
  const event = await served.eventFor(name);
  expect(event.outcome).toBe(clientOutcome);
  expect(readFileSync(local).equals(files[name] as Buffer)).toBe(true);
  expect(event.bytes).toBe((files[name] as Buffer).length);
  return event;
}

/** A suite title that says why it is skipped, when it is. */
const suite = (name: string, missing: string | false) => (missing ? `${name} (skipped: ${missing})` : name);

describe.skipIf(!has("tftp"))(
  suite("tftp-hpa client", !has("tftp") && "tftp from tftp-hpa not installed"),
  () => {
    it.each(names)("gets %s in binary mode, lock-step with 512-byte blocks", async (name) => {
      const local = path.join(out, `hpa-${name}`);
      await execa("tftp", ["127.0.0.1", String(served.port), "-m", "binary", "-c", "get", name, local], {
        timeout: 20_000,
      });
      const event = await expectServed(name, local);
      expect(event.blksize).toBe(512);
      expect(event.blocks).toBe(Math.floor((files[name] as Buffer).length / 512) + 1);
      expect(event.retransmits).toBe(0);
    });

    it("gets a text file in netascii mode, line ends converted back", async () => {
      // tftp-hpa turns CR LF back into LF on receipt: what arrives equals the file on disk.
      const text = Buffer.from("line one\nline two\n\nlast line without newline");
      const srv = await serve({ "notes.txt": text });
      try {
        const local = path.join(out, "hpa-notes.txt");
        await execa("tftp", ["127.0.0.1", String(srv.port), "-m", "ascii", "-c", "get", "notes.txt", local], {
          timeout: 20_000,
        });
        expect(readFileSync(local, "utf8")).toBe(text.toString());
        const event = await srv.eventFor("notes.txt");
        expect(event.bytes).toBe(text.length + 3); // three LF sent as CR LF
      } finally {
        await srv.stop();
      }
    });
  },
);

describe.skipIf(!has("atftp"))(suite("atftp client", !has("atftp") && "atftp not installed"), () => {
  it.each(names)("gets %s with blksize 1468, windowsize 16 and tsize", async (name) => {
    const local = path.join(out, `atftp-${name}`);
    await execa(
      "atftp",
      [
        "--option",
        "blksize 1468",
        "--option",
        "windowsize 16",
        "--option",
        "tsize",
        "-g",
        "-r",
        name,
        "-l",
        local,
        "127.0.0.1",
        String(served.port),
      ],
      { timeout: 20_000 },
    );
    const event = await expectServed(name, local);
    expect(event.blksize).toBe(1468);
    expect(event.windowsize).toBe(16);
    expect(event.retransmits).toBe(0);
  });
});

describe.skipIf(!has("curl"))(suite("curl client", !has("curl") && "curl not installed"), () => {
  // curl 7.88 cannot receive an empty file from any server: it exits 71 ("getpeername() failed",
  // errno 107) against tftpd-hpa too. That case is checked on its own below.
  it.each(names.filter((n) => n !== "empty.bin"))("gets %s with --tftp-blksize 1468", async (name) => {
    const local = path.join(out, `curl-${name}`);
    await execa(
      "curl",
      ["-sS", "--fail", "--tftp-blksize", "1468", "-o", local, `tftp://127.0.0.1:${served.port}/${name}`],
      { timeout: 20_000 },
    );
    const event = await expectServed(name, local);
    expect(event.blksize).toBe(1468);
    expect(event.retransmits).toBe(0);
  });

  it("serves an empty file to curl as far as curl goes (curl 7.88 drops it after the OACK)", async () => {
    // curl answers an OACK carrying tsize 0 by failing (exit 71, getpeername errno 107) without an
    // ACK, against tftpd-hpa as well. The server must then give up cleanly and quickly.
    const srv = await serve(
      { "empty.bin": Buffer.alloc(0) },
      { timeoutMs: 100, maxTimeoutMs: 200, retries: 3 },
    );
    try {
      const local = path.join(out, "curl-empty.bin");
      const result = await execa(
        "curl",
        ["-sS", "--tftp-blksize", "1468", "-o", local, `tftp://127.0.0.1:${srv.port}/empty.bin`],
        { reject: false, timeout: 20_000 },
      );
      const event = await srv.eventFor("empty.bin");
      if (result.exitCode === 0) {
        expect(readFileSync(local).length).toBe(0);
        expect(event.outcome).toBe("completed");
      } else {
        expect(result.exitCode).toBe(71);
        expect(["client-gone", "timed-out"]).toContain(event.outcome);
        // curl asks for timeout 6 (seconds): one wait, then the resend meets a closed port.
        expect(event.durationMs).toBeLessThan(9000);
      }
    } finally {
      await srv.stop();
    }
  });

  it("reports file not found as curl's TFTP error, and the server reports the refusal", async () => {
    const result = await execa(
      "curl",
      ["-sS", "-o", "/dev/null", `tftp://127.0.0.1:${served.port}/nope.bin`],
      {
        reject: false,
        timeout: 20_000,
      },
    );
    expect(result.exitCode).toBe(68); // curl: "TFTP server: file not found"
    const event = await served.eventFor("nope.bin");
    expect(event.outcome).toBe("refused");
  });
});

describe.skipIf(npmTftpMissing !== "")(
  `npm tftp 0.1.2 client ${npmTftpMissing ? `(skipped: ${npmTftpMissing})` : ""}`,
  () => {
    it.each(names)("gets %s (windowsize 4, blksize 1468)", async (name) => {
      const local = path.join(out, `npm-${name}`);
      const client = npmTftp.createClient({ host: "127.0.0.1", port: served.port });
      await new Promise<void>((resolve, reject) =>
        client.get(name, local, (e) => (e ? reject(e) : resolve())),
      );
      const event = await expectServed(name, local);
      expect(event.blksize).toBe(1468);
      expect(event.windowsize).toBe(4);
    });
  },
);
