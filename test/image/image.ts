// Where the image tier finds the built appliance, and how it boots a guest: QEMU under TCG with the
// serial console captured to iso-build/out/test-logs/<name>.log, until a line appears or time runs out.
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";

export const IMAGE_OUT = path.resolve("iso-build/out");
export const LOG_DIR = path.join(IMAGE_OUT, "test-logs");
export const NETBOOT = path.join(IMAGE_OUT, "netboot");
/** Printed by iso-build/live/usr/local/lib/kvmstrap/live-console just before it starts the TUI. */
export const LIVE_MARKER = "KVMSTRAP-LIVE: READY on ttyS0";
/** The TUI's title line (src/tui/App.tsx): seen on the serial console once the TUI has drawn. */
export const TUI_TITLE = "kvmstrap installer";
/** The bound per boot; KVMSTRAP_IMAGE_BOOT_TIMEOUT (seconds) raises it on a slower machine. */
export const BOOT_TIMEOUT_MS = Number(process.env.KVMSTRAP_IMAGE_BOOT_TIMEOUT ?? 180) * 1000;

export type Manifest = {
  version: string;
  cmdline: string;
  node: string;
  files: Record<string, { size: number; sha256: string }>;
  iso: { name: string; size: number; sha256: string; elTorito: string[]; partitionTable: string };
  secureBootIso: { name: string; size: number; sha256: string; signedBy: Record<string, string> };
};

export async function manifest(): Promise<Manifest> {
  return JSON.parse(await readFile(path.join(NETBOOT, "manifest.json"), "utf8")) as Manifest;
}

export async function isoPath(): Promise<string> {
  const pkg = JSON.parse(await readFile("package.json", "utf8")) as { version: string };
  return path.join(IMAGE_OUT, `kvmstrap-${pkg.version}-amd64.iso`);
}

export async function secureBootIsoPath(): Promise<string> {
  return (await isoPath()).replace(/\.iso$/, "-secureboot.iso");
}

export type BootResult = { seen: Record<string, number>; log: string; logFile: string };

/**
 * Boots qemu-system-x86_64 (TCG) with args and waits for each of `expect` in order on the serial
 * console; resolves with the seconds at which each appeared, rejects with the log's tail on timeout
 * or when qemu exits first. The guest is killed either way.
 */
export async function bootUntil(name: string, args: string[], expect: string[]): Promise<BootResult> {
  await mkdir(LOG_DIR, { recursive: true });
  const logFile = path.join(LOG_DIR, `${name}.log`);
  const out = createWriteStream(logFile);
  const qemu = spawn(
    "qemu-system-x86_64",
    ["-accel", "tcg", "-m", "2048", "-smp", "1", "-display", "none", "-monitor", "none", "-no-reboot"].concat(
      ["-serial", "stdio"],
      args,
    ),
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const started = Date.now();
  let log = "";
  let stderr = "";
  const seen: Record<string, number> = {};
  try {
    return await new Promise<BootResult>((resolve, reject) => {
      const fail = (why: string) =>
        reject(
          new Error(
            `${name}: ${why}; waiting for "${expect.find((e) => !(e in seen))}"\n` +
              `serial log ${logFile}, last lines:\n${log.split("\n").slice(-15).join("\n")}\n${stderr}`,
          ),
        );
      const timer = setTimeout(() => fail(`no marker within ${BOOT_TIMEOUT_MS / 1000} s`), BOOT_TIMEOUT_MS);
      qemu.stdout.on("data", (chunk: Buffer) => {
        out.write(chunk);
        log += chunk.toString("latin1");
        let from = 0;
        for (const e of expect) {
          const at = log.indexOf(e, from);
          if (at < 0) return;
          seen[e] ??= (Date.now() - started) / 1000;
          from = at + e.length;
        }
        clearTimeout(timer);
        resolve({ seen, log, logFile });
      });
      qemu.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      qemu.on("exit", (code) => {
        clearTimeout(timer);
        fail(`qemu exited (${code}) before the marker`);
      });
    });
  } finally {
    qemu.stdout.removeAllListeners("data"); // output after the kill must not reach the closed log
    qemu.removeAllListeners("exit");
    qemu.kill("SIGKILL");
    await new Promise((r) => out.end(r));
  }
}
