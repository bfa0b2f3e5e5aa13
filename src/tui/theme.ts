// The terminal's abilities, decided once from the environment: UTF-8 glyphs or ASCII (LANG=C,
// TERM=linux/vt100 on a serial console or crash cart), colour or not (NO_COLOR, TERM=dumb).
export interface Symbols {
  pass: string;
  warn: string;
  fail: string;
  note: string;
  pointer: string;
  on: string;
  off: string;
  mgmt: string;
  ellipsis: string;
  arrows: string;
}

export interface Theme {
  unicode: boolean;
  color: boolean;
  border: "classic" | "round";
  sym: Symbols;
}

const UTF8: Symbols = {
  pass: "✓",
  warn: "!",
  fail: "✗",
  note: "·",
  pointer: "›",
  on: "[x]",
  off: "[ ]",
  mgmt: "★",
  ellipsis: "…",
  arrows: "↑↓",
};

const ASCII: Symbols = {
  pass: "+",
  warn: "!",
  fail: "x",
  note: "-",
  pointer: ">",
  on: "[x]",
  off: "[ ]",
  mgmt: "*",
  ellipsis: "...",
  arrows: "up/dn",
};

const ASCII_TERMS = /^(linux|vt\d+|dumb|ansi|cons25|sun|xterm-mono)$/;

export function makeTheme(env: NodeJS.ProcessEnv = process.env): Theme {
  const locale = env.LC_ALL || env.LC_CTYPE || env.LANG || "";
  const term = env.TERM ?? "";
  const forced = env.KVMSTRAP_ASCII;
  const unicode =
    forced === "1" ? false : forced === "0" ? true : /utf-?8/i.test(locale) && !ASCII_TERMS.test(term);
  const color = !(env.NO_COLOR !== undefined && env.NO_COLOR !== "") && term !== "dumb";
  return { unicode, color, border: unicode ? "round" : "classic", sym: unicode ? UTF8 : ASCII };
}

/** A colour name when colour is on, otherwise undefined (Ink then prints plain text). */
export const tint = (theme: Theme, c: string): string | undefined => (theme.color ? c : undefined);

export const levelColor: Record<string, string> = {
  pass: "green",
  warn: "yellow",
  fail: "red",
  note: "cyan",
};

export function levelMark(theme: Theme, level: string): string {
  const s = theme.sym;
  return level === "pass" ? s.pass : level === "warn" ? s.warn : level === "fail" ? s.fail : s.note;
}

/** Truncates to width columns (ASCII-safe: the engine's text is ASCII apart from names). */
export function clip(raw: string, width: number, theme: Theme): string {
  if (width <= 0) return "";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strip control characters from host data
  let text = raw.replace(/[\u0000-\u001f\u007f]/g, " ");
  if (!theme.unicode) text = text.replace(/[^\x20-\x7e]/g, "?");
  if (text.length <= width) return text;
  const e = theme.sym.ellipsis;
  return width > e.length ? text.slice(0, width - e.length) + e : text.slice(0, width);
}

/** Word-wraps text to width columns; continuation lines are indented by `indent` spaces. */
export function wrap(text: string, width: number, indent = 2): string[] {
  const out: string[] = [];
  let line = "";
  const w = Math.max(10, width);
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const pad = out.length || line ? line : "";
    const candidate = pad ? `${pad} ${word}` : word;
    if (candidate.length <= (out.length ? w - indent : w)) line = candidate;
    else {
      if (line) out.push(line);
      line = word;
    }
  }
  if (line || out.length === 0) out.push(line);
  return out.map((l, i) => (i ? " ".repeat(indent) + l : l));
}
