// The rollout decision (src/fleet/rollout/decide.ts) at 1,000 nodes: how long next(rollout, nodes,
// now) takes, median of many calls, in three situations a server meets. Run by bench/fleet.mjs
// (npm run bench:fleet), which prints its JSON rows {name, value, target, ok} in its table; alone
// (after npm run build), `node bench/fleet-rollout.mjs` prints the same rows and a summary on stderr.
//   1. the first decision: 1,000 approved nodes waiting in 25 racks of 40;
//   2. mid-rollout: half verified, a wave in flight, some failed and held (the common call);
//   3. a whole simulated rollout of 1,000 nodes (canary 5, waves of 50, 20 in flight, 2 per rack,
//      a 1 s stagger): every decision until done, and the slowest of them.
// Target: a median decision under 10 ms (issue 11). KVMSTRAP_BENCH_FLEET_NODES changes the count.
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { next } = await import(pathToFileURL(path.join(root, "dist/fleet/rollout/decide.js")).href);
const { nodeTransition, IN_FLIGHT } = await import(
  pathToFileURL(path.join(root, "dist/fleet/rollout/states.js")).href
);

const NODES = Number(process.env.KVMSTRAP_BENCH_FLEET_NODES ?? 1000);
const PER_RACK = 40;
const TARGET_MS = 10;
const config = {
  canarySize: 5,
  waveSize: 50,
  maxInFlight: 20,
  maxInFlightPerRack: 2,
  failureThreshold: 0.2,
  powerOnIntervalMs: 1000,
};
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const emit = (name, ms, target) => {
  const value = `${ms.toFixed(3)} ms`;
  const ok = target === undefined ? undefined : ms < target;
  process.stdout.write(`${JSON.stringify({ name, value, target: target ? `< ${target} ms` : "", ok })}\n`);
  process.stderr.write(`[bench:fleet-rollout] ${name}: ${value}\n`);
};

const nodes = () =>
  Array.from({ length: NODES }, (_, i) => ({
    id: `r${String(Math.floor(i / PER_RACK)).padStart(2, "0")}-n${String(i % PER_RACK).padStart(3, "0")}`,
    rack: `r${String(Math.floor(i / PER_RACK)).padStart(2, "0")}`,
    approved: true,
    state: "waiting",
    wave: null,
    poweredOnAt: null,
  }));

function timeCalls(rollout, list, now, calls = 300) {
  for (let i = 0; i < 20; i++) next(rollout, list, now); // warm up the JIT
  const times = [];
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    next(rollout, list, now);
    times.push(performance.now() - t);
  }
  return median(times);
}

// 1. The first decision.
emit(
  `first decision, ${NODES} nodes waiting (median)`,
  timeCalls({ state: "canary", wave: 0, config }, nodes(), 0),
  TARGET_MS,
);

// 2. Mid-rollout.
const mid = nodes();
mid.forEach((n, i) => {
  if (i < NODES / 2)
    Object.assign(n, {
      state: i % 97 === 0 ? "failed" : "verified",
      wave: Math.floor(i / 50) + 1,
      poweredOnAt: i * 1000,
    });
  else if (i < NODES / 2 + 20)
    Object.assign(n, { state: "installing", wave: Math.floor(NODES / 100) + 1, poweredOnAt: i * 1000 });
  else if (i % 53 === 0) n.state = "held";
});
emit(
  `mid-rollout decision, ${NODES} nodes (median)`,
  timeCalls({ state: "running", wave: Math.floor(NODES / 100) + 1, config }, mid, NODES * 1000),
  TARGET_MS,
);

// 3. A whole rollout: every in-flight node moves one step per second.
const world = nodes();
const byId = new Map(world.map((n) => [n.id, n]));
const ADVANCE = {
  "powering-on": "powered",
  booting: "installing",
  installing: "installed",
  installed: "verified",
};
let rollout = { state: "canary", wave: 0, config };
const times = [];
let now = 0;
let powered = 0;
while (rollout.state !== "done" && now < 10_000_000) {
  const t = performance.now();
  const d = next(rollout, world, now);
  times.push(performance.now() - t);
  rollout = { ...rollout, state: d.state, wave: d.wave };
  for (const id of d.powerOn) {
    const n = byId.get(id);
    n.state = nodeTransition(n.state, "power-on").state;
    n.wave = d.wave;
    n.poweredOnAt = now;
    powered++;
  }
  for (const n of world)
    if (IN_FLIGHT.has(n.state)) n.state = nodeTransition(n.state, ADVANCE[n.state]).state;
  now += 1000;
}
if (rollout.state !== "done" || powered !== NODES)
  throw new Error(`the simulated rollout ended ${rollout.state} after ${powered} power-ons`);
emit(`decision during a whole rollout, ${times.length} decisions (median)`, median(times), TARGET_MS);
emit(`slowest decision of that rollout`, Math.max(...times));
