// Starts the Ink app on the terminal. Paint first, detect after: the first frame (detecting...) is on
// the screen before detection starts, so its file reads and commands do not compete with the first
// paint for the CPU (on the live system under emulation, one CPU shared by a TUI per console).
// The alternate screen keeps the shell's scrollback; it is left on every way out.
import { render } from "ink";
import type { HostReport } from "../detect/types.js";
import { App } from "./App.js";
import type { Draft } from "./draft.js";
import type { Session } from "./session.js";
import { makeTheme } from "./theme.js";

export async function runTui(o: {
  /** The host report, or how to get it: called once the first frame is drawn. */
  report: Promise<HostReport> | (() => Promise<HostReport>);
  session: Session;
  initial: Draft;
}): Promise<number> {
  const out = process.stdout;
  const restore = () => out.write("\x1b[?1049l\x1b[?25h");
  out.write("\x1b[?1049h\x1b[H\x1b[2J");
  process.once("exit", restore);
  let report: Promise<HostReport>;
  let detectNow = () => {};
  if (typeof o.report === "function") {
    const detect = o.report;
    report = new Promise((resolve, reject) => {
      detectNow = () => detect().then(resolve, reject);
    });
  } else report = o.report;
  try {
    // render() draws the first frame synchronously (a TTY write is synchronous too).
    const app = render(<App report={report} session={o.session} initial={o.initial} theme={makeTheme()} />, {
      exitOnCtrlC: true,
      patchConsole: true,
    });
    setImmediate(detectNow);
    await app.waitUntilExit();
    app.cleanup();
    return 0;
  } finally {
    restore();
    process.off("exit", restore);
  }
}
