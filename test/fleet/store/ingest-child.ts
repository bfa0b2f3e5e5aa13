// The writer the kill -9 test kills: opens the store as serve would, makes one node per caller, then
// appends events that move those nodes (state on every event) from many concurrent callers for as
// long as it lives, printing "SEQ I" for each one acknowledged (after its commit). stdout is a pipe,
// written synchronously on Linux: a printed line is an ack made.
import { openPglite, openPostgres } from "../../../src/fleet/store/index.js";

const KILL_STATES = ["offered", "tftp", "ipxe", "script", "kernel", "initrd", "rootfs"];

const [driver, target, callers = "50"] = process.argv.slice(2);
if (!driver || !target) throw new Error("usage: ingest-child pglite|postgres DIR|URL [CALLERS]");
const store = driver === "pglite" ? await openPglite(target) : await openPostgres(target);
const macOf = (c: number) =>
  `52:54:00:00:${(c >> 8).toString(16).padStart(2, "0")}:${(c & 255).toString(16).padStart(2, "0")}`;
for (let c = 0; c < Number(callers); c++) await store.resolveNode({ serial: `KILL-${c}`, macs: [macOf(c)] });
process.stdout.write("ready\n");
let next = 0;
async function caller(c: number): Promise<never> {
  for (;;) {
    const i = next++;
    const state = KILL_STATES[i % KILL_STATES.length];
    const seq = await store.append({ type: "kill-test", mac: macOf(c), source: "child", state, body: { i } });
    process.stdout.write(`${seq} ${i}\n`);
  }
}
await Promise.all(Array.from({ length: Number(callers) }, (_, c) => caller(c)));
