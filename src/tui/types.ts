// What every screen gets: plain props, no context magic (as Ink's own examples do).
import type { Draft } from "./draft.js";
import type { HostModel } from "./model.js";
import type { Review, Session } from "./session.js";
import type { Theme } from "./theme.js";

/** Which keys a screen keeps from the app: "esc" while a drill-down is open, "all" while typing. */
export type Hold = "none" | "esc" | "all";

export interface ScreenProps {
  model: HostModel;
  session: Session;
  draft: Draft;
  setDraft: (update: (d: Draft) => Draft) => void;
  theme: Theme;
  /** Inner size of the content area, in cells. */
  width: number;
  height: number;
  setHold: (h: Hold) => void;
  next: () => void;
  /** State shared between Review, Apply and Done. */
  shared: Shared;
  setShared: (update: (s: Shared) => Shared) => void;
}

export interface Shared {
  review: Review | null;
  savedPath: string | null;
  outcome: Outcome | null;
}

export interface Outcome {
  status: string;
  dryRun: boolean;
  runId: string;
  lines: string[];
  logFile: string | null;
  reboot: boolean;
}
