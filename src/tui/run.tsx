// Starts the Ink app on the terminal: the first frame (detecting...) paints at once, detection
// fills it in. The alternate screen keeps the shell's scrollback; it is left on every way out.
import { render } from "ink";
import type { HostReport } from "../detect/types.js";
import { App } from "./App.js";
import type { Draft } from "./draft.js";
import type { Session } from "./session.js";
import { makeTheme } from "./theme.js";

export async function runTui(o: {
  report: Promise<HostReport>;
  session: Session;
  initial: Draft;
}): Promise<number> {
  const out = process.stdout;
  const restore = () => out.write("\x1b[?1049l\x1b[?25h");
  out.write("\x1b[?1049h\x1b[H\x1b[2J");
  process.once("exit", restore);
  try {
    const app = render(
      <App report={o.report} session={o.session} initial={o.initial} theme={makeTheme()} />,
      {
        exitOnCtrlC: true,
        patchConsole: true,
      },
    );
    await app.waitUntilExit();
    app.cleanup();
    return 0;
  } finally {
    restore();
    process.off("exit", restore);
  }
}
