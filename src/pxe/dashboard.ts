// The live node table on a terminal: one row per node (MAC, state, elapsed, bytes, last event), the
// selected node's timeline on Enter, q to quit. Keyboard only, fits 80x24, redrawn at most four
// times a second in place (cursor home, erase to end of line: vt100 escapes, no alternate screen, so
// it works over a serial console), ASCII under TERM=linux/vt100 or a non-UTF-8 locale.
// Drawn by hand rather than with Ink: a fixed-size table repainted from a timer needs no React
// reconciler, and this keeps `kvmstrap serve` out of the TUI bundle.
import type { ReadStream, WriteStream } from "node:tty";
import { formatBytes, seconds } from "./format.js";
import type { NodeStatus } from "./http/status.js";

export interface DashboardView {
  header: string;
  nodes: NodeStatus[];
  selected: number;
  /** Show the selected node's timeline instead of the table. */
  detail: boolean;
  /** The latest warning, shown in place of the first rule. */
  notice?: string | undefined;
  width: number;
  height: number;
  ascii: boolean;
}

const ASCII_TERMS = /^(linux|vt\d+|dumb|ansi|cons25|sun|xterm-mono)$/;

export function wantsAscii(env: NodeJS.ProcessEnv = process.env): boolean {
  const locale = env.LC_ALL || env.LC_CTYPE || env.LANG || "";
  return ASCII_TERMS.test(env.TERM ?? "") || !/utf-?8/i.test(locale);
}

const pad = (s: string, n: number) => (s.length > n ? `${s.slice(0, Math.max(0, n - 1))}~` : s.padEnd(n));

/** The screen's lines, each at most `width` characters. */
export function renderDashboard(v: DashboardView): string[] {
  const w = Math.max(40, v.width);
  const rule = (v.ascii ? "-" : "\u2500").repeat(w);
  const lines: string[] = [pad(v.header, w)];
  const counts = new Map<string, number>();
  for (const n of v.nodes) counts.set(n.state, (counts.get(n.state) ?? 0) + 1);
  lines.push(
    pad(`${v.nodes.length} nodes: ${[...counts].map(([s, c]) => `${c} ${s}`).join(", ") || "none yet"}`, w),
  );
  lines.push(v.notice ? pad(`! ${v.notice}`, w) : rule);
  const body = Math.max(1, v.height - 5);
  const sel = v.nodes[v.selected];
  if (v.detail && sel) {
    lines.push(
      pad(
        `${sel.mac}${sel.name ? ` (${sel.name})` : ""}: ${sel.state}${sel.hint ? ` - ${sel.hint}` : ""}`,
        w,
      ),
    );
    const entries = sel.timeline.slice(-(body - 1));
    for (const t of entries) {
      const arrow = t.from === t.state ? `  ${t.state}` : `${t.from} ${v.ascii ? "->" : "\u2192"} ${t.state}`;
      const mark = t.unexpected ? "?" : " ";
      lines.push(
        pad(
          `${t.time.slice(11, 19)}${mark}${pad(arrow, 30)} ${pad(seconds(t.durationMs), 7)} ${t.detail ?? t.input}`,
          w,
        ),
      );
    }
    while (lines.length < v.height - 2) lines.push("");
    lines.push(rule);
    lines.push(pad("Enter/Esc back to the table   q quit", w));
    return lines;
  }
  const last = Math.max(10, w - 17 - 1 - 14 - 1 - 8 - 1 - 10 - 1 - 2);
  lines.push(
    pad(
      `  ${pad("MAC", 17)} ${pad("STATE", 14)} ${pad("ELAPSED", 8)} ${pad("BYTES", 10)} ${pad("LAST EVENT", last)}`,
      w,
    ),
  );
  const rows = body - 1;
  const top = Math.min(Math.max(0, v.selected - Math.floor(rows / 2)), Math.max(0, v.nodes.length - rows));
  for (const [i, n] of v.nodes.slice(top, top + rows).entries()) {
    const mark = top + i === v.selected ? (v.ascii ? "> " : "\u25b6 ") : "  ";
    const state = n.state === "stalled" && n.stalledIn ? `STALL:${n.stalledIn}` : n.state;
    lines.push(
      pad(
        `${mark}${pad(n.mac, 17)} ${pad(state, 14)} ${pad(seconds(n.elapsedMs), 8)} ${pad(formatBytes(n.bytes), 10)} ${pad(n.lastEvent, last)}`,
        w,
      ),
    );
  }
  while (lines.length < v.height - 2) lines.push("");
  lines.push(rule);
  lines.push(pad("Up/Down select   Enter timeline   q quit", w));
  return lines.slice(0, v.height);
}

/**
 * Runs the dashboard on a terminal until q (or Ctrl-C) is pressed, then calls onQuit. `snapshot`
 * returns the current nodes; `changed` is called by the caller on every event (redraws are
 * coalesced to at most one per 250 ms, plus one a second for the elapsed times).
 */
export function startDashboard(
  out: WriteStream,
  input: ReadStream,
  header: string,
  snapshot: () => NodeStatus[],
  onQuit: () => void,
  notice: () => string | undefined = () => undefined,
): { changed: () => void; stop: () => void } {
  const ascii = wantsAscii();
  let selected = 0;
  let detail = false;
  let pending: NodeJS.Timeout | undefined;
  let stopped = false;
  const draw = () => {
    pending = undefined;
    if (stopped) return;
    const nodes = snapshot();
    selected = Math.min(selected, Math.max(0, nodes.length - 1));
    const lines = renderDashboard({
      header,
      nodes,
      selected,
      detail,
      notice: notice(),
      width: Math.min(out.columns || 80, 200),
      height: Math.max(10, out.rows || 24),
      ascii,
    });
    out.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join("\r\n")}\x1b[J`);
  };
  const changed = () => {
    pending ??= setTimeout(draw, 250);
  };
  const tick = setInterval(draw, 1000);
  const onKey = (key: string) => {
    if (key === "q" || key === "Q" || key === "\x03") {
      onQuit();
      return;
    }
    if (key === "\x1b[A" || key === "\x1bOA" || key === "k") selected = Math.max(0, selected - 1);
    else if (key === "\x1b[B" || key === "\x1bOB" || key === "j") selected += 1;
    else if (key === "\x1b[5~") selected = Math.max(0, selected - 10);
    else if (key === "\x1b[6~") selected += 10;
    else if (key === "\r" || key === "\n") detail = !detail;
    else if (key === "\x1b" || key === "\x7f") detail = false;
  };
  const onData = (data: Buffer) => {
    for (const key of splitKeys(data.toString("latin1"))) onKey(key);
    draw();
  };
  input.setRawMode(true);
  input.on("data", onData);
  input.resume();
  out.write("\x1b[?25l\x1b[2J");
  out.on("resize", draw);
  draw();
  return {
    changed,
    stop: () => {
      if (stopped) return;
      stopped = true;
      clearInterval(tick);
      clearTimeout(pending);
      input.off("data", onData);
      input.setRawMode(false);
      input.pause();
      out.off("resize", draw);
      out.write("\x1b[?25h\r\n");
    },
  };
}

/** The keys in one read: a serial line or a fast typist delivers several at once. */
export function splitKeys(text: string): string[] {
  const keys: string[] = [];
  // biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escape sequences are what it reads
  const re = /\x1b\[[0-9;]*[A-Za-z~]|\x1bO[A-Za-z]|[\s\S]/g;
  for (const m of text.matchAll(re)) keys.push(m[0]);
  return keys;
}
