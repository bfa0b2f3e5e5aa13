// The writer the kill -9 test kills: opens the store as serve would and appends events from many
// concurrent callers for as long as it lives, printing "SEQ I" for each one acknowledged (after
// its commit). stdout is a pipe, written synchronously on Linux: a printed line is an ack made.
import { openPglite, openPostgres } from "../../../src/fleet/store/index.js";

const [driver, target, callers = "50"] = process.argv.slice(2);
if (!driver || !target) throw new Error("usage: ingest-child pglite|postgres DIR|URL [CALLERS]");
const store = driver === "pglite" ? await openPglite(target) : await openPostgres(target);
process.stdout.write("ready\n");
let next = 0;
async function caller(c: number): Promise<never> {
  const mac = `52:54:00:00:${(c >> 8).toString(16).padStart(2, "0")}:${(c & 255).toString(16).padStart(2, "0")}`;
  for (;;) {
    const i = next++;
    const seq = await store.append({ type: "kill-test", mac, source: "child", body: { i } });
    process.stdout.write(`${seq} ${i}\n`);
  }
}
await Promise.all(Array.from({ length: Number(callers) }, (_, c) => caller(c)));
