// Terminal styling for human output: colour only on a TTY and never with NO_COLOR; ASCII only, so
// the output reads the same on a serial console (TERM=vt100/linux, LANG=C).
export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  green(s: string): string;
  cyan(s: string): string;
}

const wrap = (on: boolean, open: number, close: number) => (s: string) =>
  on ? `\x1b[${open}m${s}\x1b[${close}m` : s;

export function makeStyle(
  stream: { isTTY?: boolean },
  env: NodeJS.ProcessEnv = process.env,
  force?: boolean,
): Style {
  const on =
    force ?? (Boolean(stream.isTTY) && !("NO_COLOR" in env && env.NO_COLOR !== "") && env.TERM !== "dumb");
  return {
    bold: wrap(on, 1, 22),
    dim: wrap(on, 2, 22),
    red: wrap(on, 31, 39),
    yellow: wrap(on, 33, 39),
    green: wrap(on, 32, 39),
    cyan: wrap(on, 36, 39),
  };
}
