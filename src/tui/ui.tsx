// Small building blocks: a fitted line, a scrolling list, a one-line prompt. Every string is cut
// to the width before Ink sees it, so nothing wraps and ASCII terminals get ASCII ellipses.
import { Box, type Key, Text } from "ink";
import { createContext, type ReactNode, useContext, useLayoutEffect, useMemo, useRef, useState } from "react";
import { clip, type Theme, tint, wrap } from "./theme.js";
import type { Hold } from "./types.js";

export interface LineProps {
  text: string;
  width: number;
  theme: Theme;
  color?: string;
  bold?: boolean;
  inverse?: boolean;
  dim?: boolean;
}

/** The screen's last message: refusals in red, everything else plain; nothing when empty. */
export function NoteLine({
  note,
  width,
  theme,
}: {
  note: string;
  width: number;
  theme: LineProps["theme"];
}): ReactNode {
  return note ? (
    <Line text={note} width={width} theme={theme} color={note.startsWith("refused") ? "red" : undefined} />
  ) : null;
}

export function Line({ text, width, theme, color, bold, inverse, dim }: LineProps): ReactNode {
  return (
    <Text
      wrap="truncate-end"
      color={color ? tint(theme, color) : undefined}
      bold={bold}
      inverse={inverse && theme.color}
      dimColor={dim && theme.color}
    >
      {clip(text, width, theme) || " "}
    </Text>
  );
}

export interface Row {
  text: string;
  color?: string;
}

/** The visible slice of a list keeping `selected` in view, with a position note when it scrolls. */
export function ListView(props: {
  rows: Row[];
  selected: number;
  height: number;
  width: number;
  theme: Theme;
  focused?: boolean;
}): ReactNode {
  const { rows, selected, height, width, theme, focused = true } = props;
  const h = Math.max(1, rows.length > height ? height - 1 : height);
  const start = Math.min(Math.max(0, selected - Math.floor(h / 2)), Math.max(0, rows.length - h));
  const shown = rows.slice(start, start + h);
  const p = theme.sym.pointer;
  return (
    <Box flexDirection="column">
      {shown.map((r, i) => {
        const at = start + i === selected;
        return (
          <Line
            // biome-ignore lint/suspicious/noArrayIndexKey: rows are positions on the screen
            key={`${start + i}`}
            text={`${at && focused ? p : " "} ${r.text}`}
            width={width}
            theme={theme}
            color={r.color}
            inverse={at && focused}
          />
        );
      })}
      {rows.length > h ? (
        <Line text={`  (${selected + 1}/${rows.length})`} width={width} theme={theme} dim />
      ) : null}
    </Box>
  );
}

/** Moves a selection with arrows, j/k, PgUp/PgDn, Home/End. Returns the new index. */
export function move(
  i: number,
  n: number,
  input: string,
  key: { upArrow: boolean; downArrow: boolean; pageUp: boolean; pageDown: boolean },
  page = 10,
): number {
  if (n === 0) return 0;
  if (key.upArrow || input === "k") return Math.max(0, i - 1);
  if (key.downArrow || input === "j") return Math.min(n - 1, i + 1);
  if (key.pageUp) return Math.max(0, i - page);
  if (key.pageDown) return Math.min(n - 1, i + page);
  if (input === "g") return 0;
  if (input === "G") return n - 1;
  return i;
}

/** A one-line text entry: printable keys, Backspace, Enter to accept, Esc to cancel. */
export function Prompt(props: {
  label: string;
  initial: string;
  width: number;
  theme: Theme;
  onSubmit: (value: string) => void;
  onCancel: () => void;
  mask?: boolean;
}): ReactNode {
  const [value, setValue] = useState(props.initial);
  // Keys can arrive faster than React renders (a paste, a serial line, a loaded machine): the value
  // is kept in a ref as each key lands, so Enter submits everything typed before it, not the value
  // of the last render.
  const latest = useRef(props.initial);
  const update = (next: string) => {
    latest.current = next;
    setValue(next);
  };
  useKeys((input, key) => {
    if (key.return) props.onSubmit(latest.current);
    else if (key.escape) props.onCancel();
    else if (key.backspace || key.delete) update(latest.current.slice(0, -1));
    else if (input && !key.ctrl && !key.meta && !key.tab)
      update(latest.current + input.replace(/[\r\n\t]/g, ""));
  });
  const room = props.width - props.label.length - 4;
  const shown = value.length > room ? value.slice(value.length - room) : value;
  return (
    <Box flexDirection="column">
      <Line text={`${props.label}: ${shown}_`} width={props.width} theme={props.theme} bold color="cyan" />
      <Line text="Enter accept, Esc cancel, Backspace erase" width={props.width} theme={props.theme} dim />
    </Box>
  );
}

/** Tells the app which keys this screen keeps, whenever that changes. */
export function useHold(setHold: (h: Hold) => void, hold: Hold): void {
  useLayoutEffect(() => {
    setHold(hold);
  }, [hold, setHold]);
  useLayoutEffect(() => () => setHold("none"), [setHold]);
}

/** Detail lines (a drill-down), scrolled with the list keys. */
export function Detail(props: {
  title: string;
  lines: string[];
  height: number;
  width: number;
  theme: Theme;
}) {
  const [top, setTop] = useState(0);
  const room = Math.max(1, props.height - 2);
  const lines = useMemo(
    () => props.lines.flatMap((l) => wrap(l, props.width - 2)),
    [props.lines, props.width],
  );
  useKeys((input, key) => {
    setTop((t) => Math.min(Math.max(0, lines.length - room), move(t, lines.length, input, key)));
  });
  return (
    <Box flexDirection="column">
      <Line text={props.title} width={props.width} theme={props.theme} bold />
      {lines.slice(top, top + room).map((l, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: rows are positions on the screen
        <Line key={`${top + i}`} text={`  ${l}`} width={props.width} theme={props.theme} />
      ))}
      <Line text="Esc closes" width={props.width} theme={props.theme} dim />
    </Box>
  );
}

export type KeyHandler = (input: string, key: Key) => void;
type Registered = { current: { handler: KeyHandler; active: boolean } };
/** The handlers of the mounted components; the app's one Ink input subscription feeds them. */
export const KeysContext = createContext<Set<Registered>>(new Set());

/**
 * A key handler that always sees the latest render and is (un)subscribed during the commit itself:
 * Ink's useInput re-subscribes in a passive effect, so keys typed ahead (a paste, a slow serial
 * line, a test) could reach a stale closure or a screen that is already gone.
 */
export function useKeys(handler: KeyHandler, active = true): void {
  const registry = useContext(KeysContext);
  const ref = useRef({ handler, active });
  ref.current = { handler, active };
  useLayoutEffect(() => {
    registry.add(ref);
    return () => {
      registry.delete(ref);
    };
  }, [registry]);
}

/** Hands one key to every active handler (called by the app's single Ink subscription). */
export function dispatchKey(registry: Set<Registered>, input: string, key: Key): void {
  for (const r of [...registry]) if (r.current.active) r.current.handler(input, key);
}
