// One line on every console the kernel was given: the image tests and an operator at a crash cart
// or on serial-over-LAN see the verdict without logging in. The consoles are those the kernel lists
// in /sys/class/tty/console/active (console= on the command line: tty0, ttyS0...); writing to each
// one's tty reaches them all, where /dev/console reaches only the last. Existing device nodes only
// (never created), non-blocking, with a bounded wait: a stuck serial line must not hang verify.
import { constants } from "node:fs";
import { open, readFile } from "node:fs/promises";
import path from "node:path";

const WRITE_TIMEOUT_MS = 2000;

/** The console devices of the machine at `root` (its /dev paths, under root). */
export async function consoleDevices(root: string): Promise<string[]> {
  const active = await readFile(path.join(root, "sys/class/tty/console/active"), "utf8").catch(() => "");
  const names = active
    .split(/\s+/)
    .filter((n) => /^[A-Za-z0-9]+$/.test(n))
    .map((n) => path.join(root, "dev", n));
  return names.length ? [...new Set(names)] : [path.join(root, "dev/console")];
}

async function writeOne(device: string, text: string): Promise<void> {
  const handle = await open(
    device,
    constants.O_WRONLY | constants.O_NOCTTY | constants.O_NONBLOCK | constants.O_APPEND,
  );
  try {
    await handle.write(text);
  } finally {
    await handle.close();
  }
}

/** Writes the lines to every console; returns the devices it reached and those it could not. */
export async function writeToConsoles(
  root: string,
  lines: string[],
): Promise<{ written: string[]; failed: { device: string; error: string }[] }> {
  const text = lines.map((l) => `${l}\r\n`).join("");
  const written: string[] = [];
  const failed: { device: string; error: string }[] = [];
  for (const device of await consoleDevices(root)) {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        writeOne(device, text),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no write within ${WRITE_TIMEOUT_MS} ms`)),
            WRITE_TIMEOUT_MS,
          );
        }),
      ]);
      written.push(device);
    } catch (e) {
      failed.push({ device, error: (e as NodeJS.ErrnoException).code ?? (e as Error).message });
    } finally {
      clearTimeout(timer);
    }
  }
  return { written, failed };
}
