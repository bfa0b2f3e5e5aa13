// 200 real TFTP clients at once against `kvmstrap serve --files` (the shipped CLI as a process, not
// the library): 100 curl (lock-step, blksize 1468), 50 atftp (windowsize 8) and 50 tftp-hpa
// (plain RFC 1350, 512-byte blocks). The server caps concurrent transfers; a client refused with
// "server busy" tries again after a pause, as PXE ROMs do. Every client ends with the file byte
// for byte, and the server's transfer events show nothing but completions and busy refusals.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { has, Lines, removeTempDirs, tempDir } from "../dhcp4/netns.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const missing = ["curl", "atftp", "tftp"].find((t) => !has(t));
const why = missing ? `${missing} missing (scripts/setup-test-host.sh)` : undefined;
const DATA = randomBytes(300 * 1024 + 17);

let dir = "";
let serve: ReturnType<typeof spawn> | undefined;
let lines: Lines;
let port = 0;

beforeAll(async () => {
  if (why) return;
  dir = tempDir("tftp200");
  const files = path.join(dir, "files");
  mkdirSync(files);
  writeFileSync(path.join(files, "f.bin"), DATA);
  serve = spawn(
    process.execPath,
    [
      path.join(root, "bin/kvmstrap.js"),
      "serve",
      ...["--dhcp", "off", "--listen", "127.0.0.1", "--tftp-port", "0", "--http-port", "0"],
      ...["--files", files, "--state-dir", path.join(dir, "state"), "--json"],
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  lines = new Lines(serve);
  const listening = await lines.wait((e) => e.type === "listening", 30_000, "kvmstrap serve listening");
  port = Number(String(listening.tftp).split(":").pop());
}, 60_000);
afterAll(() => {
  serve?.kill("SIGTERM");
  removeTempDirs();
});

function run(cmd: string, args: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: "ignore", timeout: 120_000 });
    child.on("close", resolve);
    child.on("error", () => resolve(-1));
  });
}

const clients: Record<string, (out: string) => [string, string[]]> = {
  curl: (out) => [
    "curl",
    ["-sS", "--fail", "--tftp-blksize", "1468", "-o", out, `tftp://127.0.0.1:${port}/f.bin`],
  ],
  atftp: (out) => [
    "atftp",
    [
      "--option",
      "blksize 1468",
      "--option",
      "windowsize 8",
      "-g",
      "-r",
      "f.bin",
      "-l",
      out,
      "127.0.0.1",
      String(port),
    ],
  ],
  "tftp-hpa": (out) => ["tftp", ["-m", "binary", "127.0.0.1", String(port), "-c", "get", "f.bin", out]],
};

/** One client until it has the file intact (at most 20 tries); returns the tries it took. */
async function fetchIntact(kind: string, i: number): Promise<number> {
  const out = path.join(dir, `${kind}-${i}.bin`);
  for (let attempt = 1; attempt <= 20; attempt++) {
    const [cmd, args] = (clients[kind] as (o: string) => [string, string[]])(out);
    writeFileSync(out, "");
    await run(cmd, args);
    if (readFileSync(out).equals(DATA)) return attempt;
    await new Promise((r) => setTimeout(r, 300 + Math.random() * 700));
  }
  throw new Error(`${kind} #${i} never got the file intact`);
}

describe.skipIf(why)(
  `200 real TFTP clients at once through kvmstrap serve --files${why ? ` (skipped: ${why})` : ""}`,
  () => {
    it("every client gets the file byte for byte; the only refusals are 'server busy'", async () => {
      const kinds = Array.from({ length: 200 }, (_, i) =>
        i % 4 < 2 ? "curl" : i % 4 === 2 ? "atftp" : "tftp-hpa",
      );
      const tries = await Promise.all(kinds.map((k, i) => fetchIntact(k, i)));
      expect(tries).toHaveLength(200);
      // Transfer events trail the clients by the server's last-ACK handling: wait until they add up.
      const transfers = () => lines.seen.filter((e) => e.type === "transfer" && e.file === "f.bin");
      const needed = tries.reduce((a, b) => a + b, 0);
      for (let i = 0; i < 100 && transfers().length < needed; i++)
        await new Promise((r) => setTimeout(r, 100));
      const byOutcome = new Map<string, number>();
      for (const e of transfers()) {
        const key = `${e.outcome}${e.detail ? ` (${e.detail})` : ""}`;
        byOutcome.set(key, (byOutcome.get(key) ?? 0) + 1);
      }
      console.log(
        `200 clients: ${tries.filter((t) => t > 1).length} needed more than one try (max ${Math.max(...tries)}); server transfer events: ${JSON.stringify(Object.fromEntries(byOutcome))}`,
      );
      expect(byOutcome.get("completed")).toBeGreaterThanOrEqual(200);
      for (const key of byOutcome.keys()) expect(["completed", "refused (server busy)"]).toContain(key);
      expect(serve?.exitCode).toBeNull();
    }, 600_000);
  },
);
