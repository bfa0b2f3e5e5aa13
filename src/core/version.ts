// The version is package.json's, read once: one source, so `--version`, the help text, events and
// the appliance's manifest cannot drift apart. package.json ships with the package (see "files").
import { readFileSync } from "node:fs";

const read = (): string => {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
};

export const VERSION: string = read();
