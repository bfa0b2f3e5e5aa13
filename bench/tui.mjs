// The TUI's responsiveness in a real terminal (tmux, 80x24, TERM=linux LANG=C) on the largest shared
// snapshot: time from start to the first painted screen, and from a keypress to the repainted pane.
// Polls `tmux capture-pane` every 5 ms, so figures include up to ~5 ms of polling and tmux overhead.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export async function benchTui(projectRoot) {
  if (spawnSync("tmux", ["-V"]).status !== 0) return null;
  const shared = path.resolve(projectRoot, "../shared/fixtures/hosts");
  if (!existsSync(shared)) return null;
  const largest =
    readdirSync(shared).find((f) => f.startsWith("intel-i7-1270p-laptop")) ?? readdirSync(shared)[0];
  const dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-tui-bench-"));
  execFileSync("tar", ["-xzf", path.join(shared, largest), "-C", dir]);
  const session = `kvms-bench-${process.pid}`;
  const tmux = (...a) => spawnSync("tmux", a, { encoding: "utf8" });
  const pane = () => tmux("capture-pane", "-p", "-t", session).stdout ?? "";
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const until = async (ok, limitMs = 5000) => {
    const t0 = performance.now();
    for (;;) {
      const p = pane();
      if (ok(p)) return performance.now() - t0;
      if (performance.now() - t0 > limitMs) throw new Error(`tui bench: timed out; screen:\n${p}`);
      await sleep(5);
    }
  };
  const firstPaint = [];
  const keys = [];
  // A session of its own keeps the tmux server up between runs: killing the last session stops the
  // server, and a new-session racing that shutdown fails silently.
  const keeper = `${session}-keep`;
  tmux("new-session", "-d", "-s", keeper, "sleep 600");
  try {
    for (let run = 0; run < 5; run++) {
      tmux("kill-session", "-t", session);
      const t0 = performance.now();
      const started = tmux(
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "80",
        "-y",
        "24",
        `cd ${projectRoot} && TERM=linux LANG=C node bin/kvmstrap.js tui --root ${dir}; sleep 60`,
      );
      if (started.status !== 0) throw new Error(`tui bench: tmux new-session failed: ${started.stderr}`);
      await until((p) => p.includes("1/10 Welcome"));
      firstPaint.push(performance.now() - t0);
      if (run > 0) continue;
      // Keypresses on the Hardware screen: j/k move the cursor, each must show in the pane.
      // Input is live a moment after the first paint (raw mode is set in an effect): retry Enter.
      for (let i = 0; i < 50 && !pane().includes("2/10 Hardware"); i++) {
        tmux("send-keys", "-t", session, "Enter");
        await sleep(100);
      }
      await until((p) => p.includes("2/10 Hardware"));
      for (let i = 0; i < 20; i++) {
        const before = pane();
        const t = performance.now();
        tmux("send-keys", "-t", session, i % 2 ? "k" : "j");
        await until((p) => p !== before, 2000);
        keys.push(performance.now() - t);
      }
    }
  } finally {
    tmux("kill-session", "-t", session);
    tmux("kill-session", "-t", keeper);
    rmSync(dir, { recursive: true, force: true });
  }
  return { firstPaint, keys, snapshot: largest };
}
