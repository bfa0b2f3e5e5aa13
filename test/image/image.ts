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
/**
 * A hang detector per boot, not a performance bound (the boot's figures are bench:image's): TCG on
 * a busy 2-core machine takes three times as long as on a quiet one. KVMSTRAP_IMAGE_BOOT_TIMEOUT
 * (seconds) changes it.
 */
export const BOOT_TIMEOUT_MS = Number(process.env.KVMSTRAP_IMAGE_BOOT_TIMEOUT ?? 600) * 1000;

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
 * A boot script: text (or a pattern) to wait for on the serial console, in order, or keys to type
 * there; `every` retypes them at that interval until the next awaited text appears.
 */
export type Step = string | RegExp | { send: string; every?: number } | { exit: true };
/** The last step of a boot that ends by itself: QEMU runs with -no-reboot, so a reboot exits it. */
export const EXIT: Step = { exit: true };

export interface BootOptions {
  /** Fails the boot at once when this appears on the serial console (a reported failure). */
  failOn?: RegExp;
}

/**
 * Boots qemu-system-x86_64 (TCG) with args and plays `script` on the serial console; resolves with
 * the seconds at which each awaited text appeared, rejects with the log's tail on timeout or when
 * qemu exits first. The guest is killed either way.
 */
export async function bootUntil(
  name: string,
  args: string[],
  script: Step[],
  options: BootOptions = {},
): Promise<BootResult> {
  await mkdir(LOG_DIR, { recursive: true });
  const logFile = path.join(LOG_DIR, `${name}.log`);
  const out = createWriteStream(logFile);
  const qemu = spawn(
    "qemu-system-x86_64",
    ["-accel", "tcg", "-m", "2048", "-smp", "1", "-display", "none", "-monitor", "none", "-no-reboot"].concat(
      ["-serial", "stdio"],
      args,
    ),
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  const started = Date.now();
  let log = "";
  let stderr = "";
  let step = 0;
  let from = 0; // where in the log the next awaited text may start
  let repeat: NodeJS.Timeout | undefined;
  const seen: Record<string, number> = {};
  try {
    return await new Promise<BootResult>((resolve, reject) => {
      const fail = (why: string) =>
        reject(
          new Error(
            `${name}: ${why}; waiting for ${String(script[step])}\n` +
              `serial log ${logFile}, last lines:\n${log.split("\n").slice(-15).join("\n")}\n${stderr}`,
          ),
        );
      const timer = setTimeout(() => fail(`not done within ${BOOT_TIMEOUT_MS / 1000} s`), BOOT_TIMEOUT_MS);
      const advance = () => {
        for (; step < script.length; step++) {
          const s = script[step] as Step;
          if (typeof s === "object" && "exit" in s) return; // resolved by qemu's exit
          if (typeof s === "object" && "send" in s) {
            clearInterval(repeat);
            qemu.stdin.write(s.send);
            if (s.every) repeat = setInterval(() => qemu.stdin.write(s.send), s.every);
            continue;
          }
          const rest = log.slice(from);
          const m =
            typeof s === "string"
              ? rest.includes(s)
                ? { index: rest.indexOf(s), 0: s }
                : null
              : s.exec(rest);
          if (!m) return;
          clearInterval(repeat);
          seen[String(s)] = (Date.now() - started) / 1000;
          from += m.index + m[0].length;
        }
        clearTimeout(timer);
        resolve({ seen, log, logFile });
      };
      qemu.stdout.on("data", (chunk: Buffer) => {
        out.write(chunk);
        log += chunk.toString("latin1");
        const failed = options.failOn?.exec(log);
        if (failed) {
          clearTimeout(timer);
          fail(`"${failed[0]}" on the console`);
          return;
        }
        advance();
      });
      qemu.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      qemu.on("close", (code) => {
        clearTimeout(timer);
        const s = script[step];
        if (typeof s === "object" && s !== null && "exit" in s && step === script.length - 1) {
          seen["qemu exited"] = (Date.now() - started) / 1000;
          resolve({ seen, log, logFile });
          return;
        }
        fail(`qemu exited (${code}) first`);
      });
    });
  } finally {
    clearInterval(repeat);
    qemu.stdout.removeAllListeners("data"); // output after the kill must not reach the closed log
    qemu.removeAllListeners("close");
    qemu.kill("SIGKILL");
    await new Promise((r) => out.end(r));
  }
}
