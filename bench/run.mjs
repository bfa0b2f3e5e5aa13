// npm run bench: medians and ratios from one run, side by side. Never timed assertions in tests.
//   1. in-process detection of the largest shared snapshot (target: <= 15 ms median)
//   2. wall time of `kvmstrap detect --json` against a bare `node -e 0` (target: within 60 ms)
//   3. detection of this host against systeminformation's cpu + mem + networkInterfaces +
//      blockDevices + diskLayout (target: >= 5x faster)
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const { detectHost } = await import(path.join(root, "dist/detect/index.js"));
const { RootedHostFs } = await import(path.join(root, "dist/host/fs.js"));
const { ExecaRunner } = await import(path.join(root, "dist/host/commands.js"));
const { runChecks } = await import(path.join(root, "dist/checks/index.js"));
const { buildPlan, planFiles } = await import(path.join(root, "dist/plan/index.js"));
const { parseAnswerText } = await import(path.join(root, "dist/answer/load.js"));
const { validateAnswer } = await import(path.join(root, "dist/answer/validate.js"));
const { readFileSync } = await import("node:fs");

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ms = (x) => `${x.toFixed(2)} ms`;
async function time(fn, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}
const rows = [];
const row = (name, value, target, ok) => rows.push({ name, value, target, ok });

// 1. Largest shared snapshot, in process.
const shared = path.resolve(root, "../shared/fixtures/hosts");
if (existsSync(shared)) {
  const sizes = readdirSync(shared).map((f) => {
    const dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-bench-"));
    execFileSync("tar", ["-xzf", path.join(shared, f), "-C", dir]);
    const count = Number(
      execFileSync("sh", ["-c", `find "${dir}" | wc -l`])
        .toString()
        .trim(),
    );
    return { f, dir, count };
  });
  // Every snapshot is measured; the target applies to the largest (by entries) and is shown for all.
  sizes.sort((a, b) => b.count - a.count);
  let lastReport = null;
  for (const snap of sizes) {
    const detectOnce = () => detectHost({ fs: new RootedHostFs(snap.dir) });
    await time(detectOnce, 10); // warm up the JIT and the pci.ids cache
    const t = median(await time(detectOnce, 60));
    row(`detect ${snap.f} (${snap.count} entries), in process`, ms(t), "<= 15 ms", t <= 15);
    lastReport ??= await detectOnce();
  }
  const checks = await time(async () => runChecks(lastReport), 200);
  row("checks over the largest report", ms(median(checks)), "-", true);

  // The configuration engine on the same report, with the complete example answer file.
  const exampleFile = path.join(root, "templates/answer.example.yaml");
  const exampleText = readFileSync(exampleFile, "utf8");
  const answer = parseAnswerText(exampleText, exampleFile);
  const current = new Map(planFiles(lastReport, answer).map((p) => [p, null]));
  // prepare (app/prepare.ts) validates once and hands the findings to the dry plan and the plan; the
  // plan alone (no findings given) validates first. Interleaved, so each sees the same machine state.
  const { prepareAnswer } = await import(path.join(root, "dist/app/prepare.js"));
  const noFiles = { readText: async () => null };
  const baseDir = path.dirname(exampleFile);
  const findings = validateAnswer(answer, lastReport, { baseDir }).findings;
  const [rules, given, alone, prepared] = [[], [], [], []];
  for (let i = 0; i < 400; i++) {
    const j = i % 4; // rotate the order too
    const runs = [
      [rules, () => validateAnswer(answer, lastReport, { baseDir })],
      [given, () => buildPlan(lastReport, answer, current, { baseDir, findings })],
      [alone, () => buildPlan(lastReport, answer, current, { baseDir })],
      [prepared, () => prepareAnswer(noFiles, lastReport, answer, { baseDir })],
    ];
    for (const [list, fn] of [...runs.slice(j), ...runs.slice(0, j)]) {
      const t = performance.now();
      await fn();
      if (i >= 40) list.push(performance.now() - t); // the first rounds warm the JIT
    }
  }
  row("validate the example answer (the rule set, once)", ms(median(rules)), "-", true);
  row(
    "plan it, given the validation's findings (as prepare plans)",
    ms(median(given)),
    "<= 20 ms",
    median(given) <= 20,
  );
  row("plan it alone (validates first)", ms(median(alone)), "<= 20 ms", median(alone) <= 20);
  row("prepare it: validate, list the files, plan (no file reads)", ms(median(prepared)), "-", true);
  const validations = await time(
    async () => validateAnswer(parseAnswerText(exampleText, exampleFile), lastReport),
    100,
  );
  const v = median(validations);
  row("parse + validate the example answer against it", ms(v), "<= 50 ms", v <= 50);
} else {
  row("detect largest shared snapshot", "skipped: ../shared/fixtures/hosts not found", "<= 15 ms", null);
}

// Building a NoCloud seed (render + ISO9660 + atomic write).
const { benchSeedBuild } = await import(path.join(root, "dist/vm/seed-iso.js"));
const seed = await benchSeedBuild(
  {
    hostname: "bench-vm",
    user: {
      name: "ops",
      sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@bench"],
      sudo: true,
    },
  },
  50,
);
row("build a cloud-init seed ISO", ms(seed.medianMs), "<= 10 ms", seed.medianMs <= 10);

// 2. CLI wall time against a bare node, interleaved so both see the same machine state.
const bin = path.join(root, "bin/kvmstrap.js");
spawnSync(process.execPath, [bin, "detect", "--json"], { stdio: "ignore" }); // fills this boot's probe cache
const bare = [];
const cliCached = [];
const cliNoProbe = [];
for (let i = 0; i < 15; i++) {
  for (const [list, args] of [
    [bare, ["-e", "0"]],
    [cliCached, [bin, "detect", "--json"]],
    [cliNoProbe, [bin, "detect", "--json", "--probe", "never"]],
  ]) {
    const t = performance.now();
    spawnSync(process.execPath, args, { stdio: "ignore" });
    list.push(performance.now() - t);
  }
}
const b = median(bare);
const c = median(cliCached);
const n = median(cliNoProbe);
row("node -e 0", ms(b), "-", true);
row(
  "kvmstrap detect --json (probe cached this boot)",
  `${ms(c)} (+${ms(c - b)})`,
  "within 60 ms",
  c - b <= 60,
);
row("kvmstrap detect --json --probe never", `${ms(n)} (+${ms(n - b)})`, "within 60 ms", n - b <= 60);

// 3. Against systeminformation on this host.
const si = await import("systeminformation");
const siOnce = () =>
  Promise.all([si.cpu(), si.mem(), si.networkInterfaces(), si.blockDevices(), si.diskLayout()]);
const oursOnce = () =>
  detectHost({ fs: new RootedHostFs("/"), runner: new ExecaRunner(), probe: { mode: "auto" } });
await siOnce();
await oursOnce();
const siTimes = [];
const ourTimes = [];
for (let i = 0; i < 7; i++) {
  siTimes.push(...(await time(siOnce, 1)));
  ourTimes.push(...(await time(oursOnce, 1)));
}
const s = median(siTimes);
const o = median(ourTimes);
row("systeminformation cpu+mem+networkInterfaces+blockDevices+diskLayout", ms(s), "-", true);
row(
  "kvmstrap detectHost (live, probe cached)",
  `${ms(o)} (${(s / o).toFixed(1)}x faster)`,
  ">= 5x",
  s / o >= 5,
);

// 4. The TUI in a real terminal.
const { benchTui } = await import(path.join(here, "tui.mjs"));
// A tmux that cannot start (another server's socket, no pty) skips this part, not the rows above.
const tui = await benchTui(root).catch((e) => ({ error: e.message }));
if (tui?.error) {
  row("tui", `skipped: ${tui.error}`, "-", null);
} else if (tui) {
  const fp = median(tui.firstPaint);
  row(`tui: first screen painted (${tui.snapshot}, tmux 80x24)`, ms(fp), "<= 500 ms", fp <= 500);
  const k = median(tui.keys);
  row(
    "tui: keypress to repainted pane (median of 20)",
    `${ms(k)} (max ${ms(Math.max(...tui.keys))})`,
    "<= 50 ms",
    k <= 50,
  );
} else {
  row("tui", "skipped: tmux or ../shared/fixtures/hosts missing", "-", null);
}

const w = Math.max(...rows.map((r) => r.name.length));
console.log(`kvmstrap bench (medians), node ${process.version}, ${new Date().toISOString()}`);
for (const r of rows) {
  const mark = r.ok === null ? "SKIP" : r.ok ? " ok " : "MISS";
  console.log(`[${mark}] ${r.name.padEnd(w)}  ${r.value}${r.target !== "-" ? `  (target ${r.target})` : ""}`);
}
