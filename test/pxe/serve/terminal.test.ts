// `kvmstrap serve` on a real terminal: tmux at 80x24 with TERM=linux and LANG=C (a serial console).
// The live table shows a node as soon as it asks for its script, Enter opens its timeline, q quits
// with exit 0 and gives the terminal back.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../helpers/shared-hosts.js";
import { makeNetboot, tempDir } from "./helpers.js";

const hasTmux = spawnSync("tmux", ["-V"]).status === 0;
const built = existsSync(path.join(projectRoot, "dist/cli/serve-command.js"));
const socket = `kvmstrap-serve-test-${process.pid}`;
const tmux = (...args: string[]) => execFileSync("tmux", ["-L", socket, ...args], { encoding: "utf8" });
const capture = () => tmux("capture-pane", "-p", "-t", "serve");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tmp = tempDir("term");

async function waitFor(test: (screen: string) => boolean, what: string, ms = 10_000): Promise<string> {
  const t0 = Date.now();
  for (;;) {
    const s = capture();
    if (test(s)) return s;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}; the pane shows:\n${s}`);
    await sleep(50);
  }
}

afterAll(() => {
  if (hasTmux) spawnSync("tmux", ["-L", socket, "kill-server"]);
  tmp.remove();
});

const why = !hasTmux ? "tmux missing" : !built ? "dist/ not built (npm run build)" : undefined;

describe.skipIf(why)(
  `kvmstrap serve in tmux at 80x24, TERM=linux, LANG=C${why ? ` (skipped: ${why})` : ""}`,
  () => {
    it("shows the node table live, a node's timeline on Enter, and quits on q with exit 0", async () => {
      const netboot = makeNetboot(path.join(tmp.dir, "netboot")).dir;
      const port = 20_000 + (process.pid % 20_000);
      const exitFile = path.join(tmp.dir, "exit");
      const cmd = [
        `${process.execPath} ${path.join(projectRoot, "bin/kvmstrap.js")} serve --dhcp off --listen 127.0.0.1`,
        `--tftp-port 0 --http-port ${port} --netboot ${netboot} --state-dir ${path.join(tmp.dir, "state")}`,
        `; echo $? > ${exitFile}; sleep 30`,
      ].join(" ");
      tmux(
        "new-session",
        "-d",
        "-s",
        "serve",
        "-x",
        "80",
        "-y",
        "24",
        "-e",
        "TERM=linux",
        "-e",
        "LANG=C",
        cmd,
      );
      await waitFor((s) => s.includes("0 nodes: none yet"), "the empty table");
      await execa("curl", [
        "-sS",
        "--fail",
        "-o",
        "/dev/null",
        `http://127.0.0.1:${port}/boot/52-54-00-de-ad-01.ipxe`,
      ]);
      const table = await waitFor((s) => /52:54:00:de:ad:01\s+script/.test(s), "the node's row");
      const lines = table.replace(/\n+$/, "").split("\n");
      expect(lines.length).toBeLessThanOrEqual(24);
      for (const l of lines) {
        expect(l.length).toBeLessThanOrEqual(80);
        expect(l).toMatch(/^[\x20-\x7e]*$/);
      }
      expect(lines[0]).toContain(`HTTP http://127.0.0.1:${port}`);
      tmux("send-keys", "-t", "serve", "Enter");
      const detail = await waitFor((s) => s.includes("discovered -> script"), "the timeline");
      expect(detail).toContain("unknown node, interactive");
      tmux("send-keys", "-t", "serve", "Escape");
      await waitFor((s) => s.includes("LAST EVENT"), "the table again");
      tmux("send-keys", "-t", "serve", "q");
      const t0 = Date.now();
      while (!existsSync(exitFile) && Date.now() - t0 < 10_000) await sleep(50);
      expect(readFileSync(exitFile, "utf8").trim()).toBe("0");
    }, 40_000);
  },
);
