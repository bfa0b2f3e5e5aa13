// What the answer's webhook hears during an unattended install, from the real CLI (dist/, as the
// appliance runs it) into a real HTTP receiver on loopback:
// - the agent with the real `kvmstrap install`, on an answer whose disk does not exist: the install
//   refuses before it touches anything, the webhook hears answer-fetched, installing and failed
//   with the install's reason, and the machine is not rebooted;
// - `kvmstrap apply --root TREE --offline --yes`, the configuration step the install plan runs on
//   the new root (through the same runApply wiring as the install's own run): the run's STARTED,
//   every step, then SUCCEEDED, or the failed step and FAILED; the secret header never in a body.
import { spawnSync } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { commandInstaller, runAgent } from "../../src/app/node-agent.js";
import { applyEventSchema } from "../../src/apply/events.js";
import { BIN, cli } from "../apply/deadman-helpers.js";

const HOOK_SECRET = "hook-EVENTS-SECRET-31";
const HASH =
  "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/";

let server: Server;
let base = "";
let bodies: { path: string; key: string | undefined; body: Record<string, unknown>; raw: string }[] = [];
let scratch = "";

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), "kvms-install-events-"));
  server = createServer((req, res) => {
    let raw = "";
    req.on("data", (d) => {
      raw += d;
    });
    req.on("end", () => {
      bodies.push({
        path: req.url ?? "",
        key: req.headers["x-hook-key"] as string | undefined,
        body: JSON.parse(raw || "{}"),
        raw,
      });
      res.statusCode = 204;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await rm(scratch, { recursive: true, force: true });
});
beforeEach(() => {
  bodies = [];
});

const report = () =>
  `report:\n  webhook: ${base}/hook\n  headers:\n    X-Hook-Key: ${HOOK_SECRET}\n  secretHeaders: [x-hook-key]\n`;

describe("the agent with the real kvmstrap install", () => {
  it("an install the rules refuse: answer-fetched, installing, failed with the reason; no reboot", async () => {
    const answer = path.join(scratch, "refused.yaml");
    await writeFile(
      answer,
      `version: 1\ninstall:\n  disk:\n    serial: KVMSTRAP-NO-SUCH-DISK-${process.pid}\n${report()}`,
    );
    const said: string[] = [];
    const marks = path.join(scratch, "power.log");
    const outcome = await runAgent({
      cmdline: `quiet kvmstrap.answer=file://${answer} kvmstrap.auto=install`,
      say: (l) => said.push(l),
      log: () => {},
      installer: commandInstaller([process.execPath, BIN]),
      power: {
        sync: ["/bin/sh", "-c", `echo sync >> ${marks}`],
        reboot: ["/bin/sh", "-c", `echo reboot >> ${marks}`],
        poweroff: ["/bin/sh", "-c", `echo poweroff >> ${marks}`],
      },
      answerFile: path.join(scratch, "agent-answer.yaml"),
      find: { embedded: null },
      post: { attempts: 2, backoffMs: 10, timeoutMs: 5000 },
    });
    expect(outcome).toMatchObject({ phase: "failed", exitCode: 1 });
    expect(bodies.map((b) => b.body.phase)).toEqual(["answer-fetched", "installing", "failed"]);
    // The install's whole refusal, reasons and fix, in one line.
    expect(bodies.at(-1)?.body.detail).toMatch(
      new RegExp(
        `^kvmstrap install exited 2: the install is refused:; .*install\\.disk: no disk matches.*KVMSTRAP-NO-SUCH-DISK-${process.pid}.*; fix: `,
      ),
    );
    for (const b of bodies) {
      expect(b.key).toBe(HOOK_SECRET);
      expect(b.raw).not.toContain(HOOK_SECRET);
    }
    expect(said.at(-1)).toMatch(/the live system stays up/);
    expect(await readFile(marks, "utf8").catch(() => "")).toBe("");
  }, 60_000);
});

async function tree(): Promise<string> {
  const root = await mkdtemp(path.join(scratch, "root-"));
  for (const d of ["proc", "sys", "etc"]) await mkdir(path.join(root, d), { recursive: true });
  await writeFile(path.join(root, "etc/hostname"), "debian\n");
  return root;
}

const applyEvents = () => bodies.map((b) => applyEventSchema.parse(b.body));

describe("kvmstrap apply --root --offline (the install's configuration step) to the answer's webhook", () => {
  it("STARTED, each step as it starts and ends, then the run's end; the secret header only as a header", async () => {
    const root = await tree();
    const answer = path.join(scratch, "host.yaml");
    await writeFile(answer, `version: 1\nhost:\n  hostname: kvm-01\n${report()}`);
    const r = cli(["apply", "--root", root, "--offline", "--yes", answer]);
    expect((await r.exited).code, r.stderr()).toBe(0);
    const events = applyEvents();
    expect(events[0]).toMatchObject({ type: "run", phase: "STARTED", actions: 2 });
    const steps = events.filter((e) => e.type === "step").map((e) => `${e.id} ${e.phase}`);
    expect(steps).toEqual([
      "host.hostname started",
      "host.hostname finished",
      "host.hostname-live started",
      "host.hostname-live skipped", // offline: left for the first boot
    ]);
    // An offline run ends waiting for the first boot; the install's own run then ends SUCCEEDED.
    expect(events.at(-1)).toMatchObject({ type: "reboot-required", ids: ["host.hostname-live"] });
    for (const b of bodies) {
      expect(b.key).toBe(HOOK_SECRET);
      expect(b.raw).not.toContain(HOOK_SECRET);
    }
    expect(await readFile(path.join(root, "etc/hostname"), "utf8")).toBe("kvm-01\n");
  }, 60_000);

  it("a step that fails: its failed event with the reason, then the run FAILED", async () => {
    const root = await tree(); // no useradd inside: the user step fails
    const answer = path.join(scratch, "user.yaml");
    await writeFile(answer, `version: 1\nhost:\n  users:\n    - name: alice\n${report()}`);
    const r = cli(["apply", "--root", root, "--offline", "--yes", answer]);
    expect((await r.exited).code, r.stderr()).toBe(1);
    const events = applyEvents();
    expect(events[0]).toMatchObject({ type: "run", phase: "STARTED" });
    expect(events.filter((e) => e.type === "step").map((e) => `${e.id} ${e.phase}`)).toEqual([
      "host.user.alice started",
      "host.user.alice failed",
    ]);
    expect(events.at(-1)).toMatchObject({
      type: "run",
      phase: "FAILED",
      error: expect.stringMatching(/^host.user.alice: useradd .* exited with 127/),
    });
  }, 60_000);
});

// A tree chroot can run commands in: dash and its libraries, and useradd/usermod/id as scripts.
async function chrootTree(): Promise<string> {
  const root = await tree();
  await mkdir(path.join(root, "bin"), { recursive: true });
  await mkdir(path.join(root, "usr/sbin"), { recursive: true });
  await copyFile("/bin/dash", path.join(root, "bin/sh"));
  const libs = spawnSync("ldd", ["/bin/dash"], { encoding: "utf8" }).stdout.match(/\/\S+/g) ?? [];
  for (const lib of libs) {
    await mkdir(path.join(root, path.dirname(lib)), { recursive: true });
    await copyFile(lib, path.join(root, lib));
  }
  for (const [cmd, code] of [
    ["useradd", 0],
    ["usermod", 0],
    ["id", 1],
  ] as const)
    await writeFile(path.join(root, "usr/sbin", cmd), `#!/bin/sh\nexit ${code}\n`, { mode: 0o755 });
  return root;
}

const chrootWhy =
  process.getuid?.() !== 0
    ? "needs root for chroot"
    : spawnSync("sh", ["-c", "test -x /bin/dash && command -v ldd && command -v chroot"]).status !== 0
      ? "dash, ldd or chroot missing"
      : undefined;

describe.skipIf(chrootWhy)(
  `the answer's password hash and the webhook${chrootWhy ? ` (skipped: ${chrootWhy})` : ""}`,
  () => {
    // The user's password step runs "usermod --password HASH alice": the plan marks the hash as a
    // secret argument (secretArgs), so every rendering of the step (its events, errors, the plan
    // diff) shows it redacted. The apply's own webhook posts do not pass through the agent.
    it("the password hash never reaches the webhook", async () => {
      const root = await chrootTree();
      const answer = path.join(scratch, "hash.yaml");
      await writeFile(
        answer,
        `version: 1\nhost:\n  users:\n    - name: alice\n      passwordHash: '${HASH}'\n${report()}`,
      );
      const r = cli(["apply", "--root", root, "--offline", "--yes", answer]);
      expect((await r.exited).code, r.stderr()).toBe(0);
      expect(applyEvents().map((e) => (e.type === "step" ? `${e.id} ${e.phase}` : e.type))).toContain(
        "host.user.alice.password finished",
      );
      expect(bodies.map((b) => b.raw).join("\n")).not.toContain("qFmFH.bQmm");
      expect(r.stderr()).not.toContain("qFmFH.bQmm");
      const logs = path.join(root, "var/lib/kvmstrap/log");
      for (const f of await readdir(logs)) {
        expect(await readFile(path.join(logs, f), "utf8"), f).not.toContain("qFmFH.bQmm");
      }
    }, 60_000);
  },
);
