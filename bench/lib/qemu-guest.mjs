// Boots a QEMU guest under TCG with its serial console on stdio, and plays a script on it: text (or a
// pattern) to wait for, in order, or keys to type. The same behaviour as test/image/image.ts's
// bootUntil (the image tier's harness, TypeScript for vitest), in plain JS for the benches, which node
// runs without a compile step. Each awaited step records when it appeared, in seconds from qemu's spawn.
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";

export const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
export const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/** Printed by iso-build/live/usr/local/lib/kvmstrap/live-console just before it starts the TUI. */
export const LIVE_MARKER = "KVMSTRAP-LIVE: READY on ttyS0";
/** The TUI's title line (src/tui/App.tsx), on the serial console once the TUI has drawn. */
export const TUI_TITLE = "kvmstrap installer";

/** The last step of a boot that ends by itself: QEMU runs with -no-reboot, so a reboot exits it. */
export const EXIT = Object.freeze({ exit: true });

/** Guests still running: killed when this process exits, however it exits (a bench interrupted). */
const running = new Set();
process.on("exit", () => {
  for (const q of running) q.kill("SIGKILL");
});

/**
 * Boots qemu-system-x86_64 with `args` and plays `script` ({ send, every? } types keys, repeated every
 * `every` ms until the next awaited text appears). Resolves with { seen: { [step]: seconds }, log,
 * logFile }; rejects with the log's tail when `timeoutMs` passes or qemu exits first. The guest is
 * killed either way, unless `keep` is set: then the caller gets { play, stop } to go on with.
 * o.failOn (a pattern) fails the boot at once when it appears on the console.
 */
export async function bootUntil(name, args, script, o = {}) {
  const logDir = o.logDir ?? path.resolve("iso-build/out/bench-logs");
  const timeoutMs = o.timeoutMs ?? 180_000;
  await mkdir(logDir, { recursive: true });
  const logFile = path.join(logDir, `${name}.log`);
  const out = createWriteStream(logFile);
  const base = ["-accel", "tcg", "-m", String(o.memory ?? 2048), "-smp", "1", "-display", "none"];
  const qemu = spawn(
    "qemu-system-x86_64",
    [...base, "-monitor", "none", "-no-reboot", "-serial", "stdio", ...args],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  running.add(qemu);
  const started = Date.now();
  const state = { log: "", stderr: "", from: 0 };
  const seen = {};
  let repeat;
  qemu.stdout.on("data", (chunk) => {
    out.write(chunk);
    state.log += chunk.toString("latin1");
  });
  qemu.stderr.on("data", (chunk) => {
    state.stderr += chunk.toString();
  });
  // "close": the exit status and every byte the guest wrote before it.
  const exited = new Promise((resolve) => qemu.once("close", resolve));
  exited.then(() => running.delete(qemu));

  /** Plays steps; resolves once the last awaited one has appeared. */
  const play = (steps, limitMs) =>
    new Promise((resolve, reject) => {
      let step = 0;
      const done = (err) => {
        clearTimeout(timer);
        clearInterval(repeat);
        qemu.stdout.off("data", advance);
        if (err) reject(err);
        else resolve();
      };
      let finished = false;
      const fail = (why) => {
        if (finished) return;
        finished = true;
        const tail = state.log.split("\n").slice(-15).join("\n");
        done(
          new Error(
            `${name}: ${why}; waiting for ${String(steps[step])}\nserial log ${logFile}, last lines:\n${tail}\n${state.stderr}`,
          ),
        );
      };
      exited.then((code) => {
        if (steps[step] === EXIT) {
          seen.exit = (Date.now() - started) / 1000;
          finished = true;
          return done();
        }
        fail(`qemu exited (${code}) first`);
      });
      const timer = setTimeout(() => fail(`not done within ${limitMs / 1000} s`), limitMs);
      function advance() {
        if (finished) return;
        const failed = o.failOn?.exec(state.log);
        if (failed) return fail(`"${failed[0]}" on the console`);
        for (; step < steps.length; step++) {
          const s = steps[step];
          if (s === EXIT) return; // resolved by qemu's exit
          if (typeof s === "object" && !(s instanceof RegExp)) {
            clearInterval(repeat);
            qemu.stdin.write(s.send);
            if (s.every) repeat = setInterval(() => qemu.stdin.write(s.send), s.every);
            continue;
          }
          const rest = state.log.slice(state.from);
          const m =
            typeof s === "string"
              ? rest.includes(s)
                ? { index: rest.indexOf(s), 0: s }
                : null
              : s.exec(rest);
          if (!m) return;
          clearInterval(repeat);
          seen[String(s)] = (Date.now() - started) / 1000;
          state.from += m.index + m[0].length;
        }
        finished = true;
        done();
      }
      qemu.stdout.on("data", advance);
      advance();
    });

  const stop = async () => {
    clearInterval(repeat);
    qemu.stdout.removeAllListeners("data"); // output after the kill must not reach the closed log
    qemu.kill("SIGKILL");
    await exited;
    await new Promise((r) => out.end(r));
  };
  try {
    await play(script, timeoutMs);
  } catch (e) {
    await stop();
    throw e;
  }
  const result = {
    seen,
    get log() {
      return state.log;
    },
    logFile,
  };
  if (!o.keep) {
    await stop();
    return result;
  }
  return { ...result, play: (steps, limitMs = timeoutMs) => play(steps, limitMs), stop, started };
}
