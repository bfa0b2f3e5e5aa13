// Shared setup for the TUI suites: an App rendered by ink-testing-library on a host root, keys to
// type, and a wait that lets React and Ink settle after each keystroke.
import { render } from "ink-testing-library";
import { detectHost } from "../../src/detect/index.js";
import type { HostReport } from "../../src/detect/types.js";
import { RootedHostFs } from "../../src/host/fs.js";
import { App } from "../../src/tui/App.js";
import { type Draft, emptyDraft } from "../../src/tui/draft.js";

export { emptyDraft };

import { makeSession, type Session } from "../../src/tui/session.js";
import { makeTheme } from "../../src/tui/theme.js";
import type { Shared } from "../../src/tui/types.js";

export const KEY = {
  enter: "\r",
  esc: "\u001B",
  tab: "\t",
  up: "\u001B[A",
  down: "\u001B[B",
  right: "\u001B[C",
  left: "\u001B[D",
  backspace: "\u007F",
} as const;

export const ascii = makeTheme({ LANG: "C", TERM: "linux", NO_COLOR: "1" });

export const tick = (ms = 15) => new Promise((r) => setTimeout(r, ms));

export async function reportOf(root: string): Promise<HostReport> {
  return detectHost({ fs: new RootedHostFs(root), probe: { mode: "never" }, pciIds: null });
}

export interface Driven {
  frame: () => string;
  press: (...keys: string[]) => Promise<string>;
  type: (text: string) => Promise<string>;
  session: Session;
  unmount: () => void;
  waitFor: (pattern: RegExp | string, ms?: number) => Promise<string>;
  /** The latest review/save/apply state and draft the app reported. */
  state: { shared: Shared | null; draft: Draft | null };
  /** Waits (polling, bounded) until the app has reported a draft for which `ok` holds. */
  draftWhere: (ok: (d: Draft) => boolean, ms?: number) => Promise<Draft>;
}

export async function drive(
  root: string,
  o: { draft?: Draft; start?: number; report?: HostReport; session?: Partial<Session> } = {},
): Promise<Driven> {
  const report = o.report ?? (await reportOf(root));
  const session = {
    ...makeSession({ root, fs: new RootedHostFs(root), demo: true, isRoot: false }),
    ...o.session,
  };
  const state: Driven["state"] = { shared: null, draft: null };
  const onShared = (sh: Shared, d: Draft) => {
    state.shared = sh;
    state.draft = d;
  };
  const r = render(
    <App
      report={report}
      session={session}
      initial={o.draft ?? emptyDraft()}
      theme={ascii}
      start={o.start ?? 0}
      onShared={onShared}
    />,
  );
  const frame = () => r.lastFrame() ?? "";
  await tick(30);
  const waitFor = async (pattern: RegExp | string, ms = 10_000) => {
    const t0 = Date.now();
    for (;;) {
      const f = frame();
      if (typeof pattern === "string" ? f.includes(pattern) : pattern.test(f)) return f;
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${pattern} in:\n${f}`);
      await tick(20);
    }
  };
  const draftWhere = async (ok: (d: Draft) => boolean, ms = 10_000) => {
    const t0 = Date.now();
    for (;;) {
      if (state.draft && ok(state.draft)) return state.draft;
      if (Date.now() - t0 > ms)
        throw new Error(`timed out waiting for the draft; last: ${JSON.stringify(state.draft)}`);
      await tick(20);
    }
  };
  return {
    frame,
    session,
    state,
    waitFor,
    draftWhere,
    unmount: () => r.unmount(),
    // Each key waits until the frame changes (or 250 ms pass, for keys that change nothing), so
    // a loaded machine slows the tests down instead of making them read a stale frame.
    press: async (...keys) => {
      for (const k of keys) {
        const before = frame();
        r.stdin.write(k);
        const t0 = Date.now();
        do await tick(10);
        while (frame() === before && Date.now() - t0 < 250);
        await tick(10);
      }
      return frame();
    },
    type: async (text) => {
      for (const ch of text) {
        r.stdin.write(ch);
        await tick(5);
      }
      return frame();
    },
  };
}
