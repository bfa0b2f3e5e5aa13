// The wizard: which screen is showing, the answer being built (a Draft, i.e. AnswerInput) and
// whether it changed since it was loaded or saved. Global keys: n next, Esc back, ? help, q quit.
import { Box, type Key, useApp, useInput, useStdout } from "ink";
import { type ReactNode, useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { HostReport } from "../detect/types.js";
import type { Draft } from "./draft.js";
import { buildModel, type HostModel } from "./model.js";
import { screensFor } from "./screens.js";
import type { Session } from "./session.js";
import type { Theme } from "./theme.js";
import type { Hold, Shared } from "./types.js";
import { dispatchKey, KeysContext, Line } from "./ui.js";

export interface AppProps {
  report: HostReport | Promise<HostReport>;
  session: Session;
  initial: Draft;
  theme: Theme;
  /** Start on this screen (tests). */
  start?: number;
  /** Sees the review, save and apply state as it changes (tests, the benchmark). */
  onShared?: (s: Shared, draft: Draft) => void;
}

function useSize(): { columns: number; rows: number } {
  const { stdout } = useStdout();
  const get = () => ({ columns: stdout.columns || 80, rows: stdout.rows || 24 });
  const [size, setSize] = useState(get);
  useEffect(() => {
    const on = () => setSize(get());
    stdout.on("resize", on);
    return () => {
      stdout.off("resize", on);
    };
  });
  return size;
}

export function App({ report, session, initial, theme, start = 0, onShared }: AppProps): ReactNode {
  const { exit } = useApp();
  const { columns, rows } = useSize();
  const [model, setModel] = useState<HostModel | null>(() => ("then" in report ? null : buildModel(report)));
  const [failed, setFailed] = useState<string | null>(null);
  const [index, setIndex] = useState(start);
  const [draft, setDraftState] = useState<Draft>(initial);
  const [baseline, setBaseline] = useState<Draft>(initial);
  const [shared, setSharedState] = useState<Shared>({ review: null, savedPath: null, outcome: null });
  const [hold, setHold] = useState<Hold>("none");
  const [help, setHelp] = useState(false);
  const [quitAsk, setQuitAsk] = useState(false);
  const draftRef = useRef(draft);
  draftRef.current = draft;
  useEffect(() => {
    if (!("then" in report)) return;
    report.then(
      (r) => setModel(buildModel(r)),
      (e: Error) => setFailed(e.message),
    );
  }, [report]);
  useEffect(() => onShared?.(shared, draft), [shared, draft, onShared]);
  const dirty = draft !== baseline;
  const setDraft = useCallback((u: (d: Draft) => Draft) => setDraftState(u), []);
  const setShared = useCallback((u: (s: Shared) => Shared) => setSharedState(u), []);
  useEffect(() => {
    if (shared.savedPath) setBaseline(draftRef.current);
  }, [shared.savedPath]);
  const screens = useMemo(() => screensFor(model?.report ?? null), [model]);
  const next = useCallback(() => setIndex((i) => Math.min(screens.length - 1, i + 1)), [screens]);
  const registry = useMemo(
    () => new Set<Parameters<typeof dispatchKey>[0] extends Set<infer R> ? R : never>(),
    [],
  );
  const onKey = (input: string, key: Key) => {
    if (quitAsk) {
      if (input === "y") exit();
      else setQuitAsk(false);
      return;
    }
    if (help) return setHelp(false);
    if (hold !== "all" && input === "?") return setHelp(true);
    if (hold !== "all" && input === "q") return dirty ? setQuitAsk(true) : exit();
    dispatchKey(registry, input, key);
    if (!model || hold !== "none") return;
    if (key.escape) setIndex((i) => Math.max(0, i - 1));
    else if (input === "n") next();
  };
  const keyRef = useRef(onKey);
  keyRef.current = onKey;
  useInput(useCallback((input: string, key: Key) => keyRef.current(input, key), []));
  const width = Math.max(40, columns);
  const height = Math.max(12, rows - 1);
  const inner = width - 4;
  const contentH = height - 5;
  const screen = screens[index] ?? screens[0];
  const header = useMemo(() => {
    const step = `${index + 1}/${screens.length} ${screen?.title ?? ""}`;
    const trail = screens.map((s, i) => (i === index ? `[${s.title}]` : s.title)).join(" ");
    const base = `kvmstrap installer  ${step}${dirty ? "  (unsaved changes)" : ""}`;
    return inner >= base.length + trail.length + 4 ? `${base}    ${trail}` : base;
  }, [index, screen, screens, dirty, inner]);
  let body: ReactNode;
  if (failed) body = <Line text={`Detection failed: ${failed}`} width={inner} theme={theme} color="red" />;
  else if (!model) body = <Line text={`Detecting ${session.root} ...`} width={inner} theme={theme} />;
  else if (help) body = <Help theme={theme} width={inner} lines={screen?.help ?? []} />;
  else if (screen) {
    const C = screen.Component;
    body = (
      <C
        key={screen.id}
        {...{
          model,
          session,
          draft,
          setDraft,
          theme,
          width: inner,
          height: contentH,
          setHold,
          next,
          shared,
          setShared,
        }}
      />
    );
  }
  const keys = `${screen?.keys ? `${screen.keys}  ` : ""}n next  Esc back`;
  const footer = quitAsk
    ? "Quit without saving the answer file? y quits, any other key stays"
    : `${theme.sym.arrows} j/k move  ? help  q quit`;
  return (
    <KeysContext.Provider value={registry}>
      <Box flexDirection="column" width={width} height={height} borderStyle={theme.border} paddingX={1}>
        <Line text={header} width={inner} theme={theme} bold color="cyan" />
        <Box flexDirection="column" height={contentH} overflow="hidden">
          {body}
        </Box>
        <Line text={keys} width={inner} theme={theme} dim />
        <Line
          text={footer}
          width={inner}
          theme={theme}
          bold={quitAsk}
          color={quitAsk ? "yellow" : undefined}
        />
      </Box>
    </KeysContext.Provider>
  );
}

function Help({ theme, width, lines }: { theme: Theme; width: number; lines: string[] }): ReactNode {
  const all = [
    "Help (any key closes)",
    "",
    ...lines,
    "",
    "up/down or j/k   move          PgUp/PgDn  page",
    "Enter            pick, edit, open details",
    "Tab              next field or pane",
    "n                next screen   Esc  back (or close)",
    "?                this help     q    quit (asks when unsaved)",
    "Nothing needs a mouse. NO_COLOR turns colour off; LANG=C gives ASCII.",
  ];
  return (
    <Box flexDirection="column">
      {all.map((l, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: rows are positions on the screen
        <Line key={`${i}`} text={l} width={width} theme={theme} bold={i === 0} />
      ))}
    </Box>
  );
}
