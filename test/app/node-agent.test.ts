// The boot agent against real HTTP servers on loopback: a boot server (answer and event intake,
// bearer-checked) and the answer's webhook. The install is a real child process: a small script in
// the role of `kvmstrap install` (the real one is another command's; the agent only runs it), and
// the agent's CLI entry reads a real command line file.
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ALREADY_INSTALLED } from "../../src/app/install-marker.js";
import { commandInstaller, type PowerCommands, runAgent } from "../../src/app/node-agent.js";
import { nodeLifecycleEventSchema } from "../../src/app/node-protocol.js";
import { agentCommand } from "../../src/cli/agent-command.js";
import { captureCli } from "../helpers/capture-cli.js";

const MAC = "52:54:00:12:34:56";
const TOKEN = "tok-SECRET-9f8e7d";
const HOOK_SECRET = "hook-SECRET-1a2b";

type Got = {
  path: string;
  auth: string | undefined;
  hook: string | undefined;
  body: Record<string, unknown>;
};
let server: Server;
let base = "";
let got: Got[] = [];
let answerText = "";
let eventsStatus = 200;
let scratch = "";

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), "kvms-agent-"));
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => {
      body += d;
    });
    req.on("end", () => {
      const url = req.url ?? "";
      if (req.method === "GET" && url === `/v1/nodes/${encodeURIComponent(MAC)}/answer`) {
        if (req.headers.authorization !== `Bearer ${TOKEN}`) res.statusCode = 401;
        res.end(res.statusCode === 401 ? "" : answerText);
        return;
      }
      if (req.method === "POST") {
        got.push({
          path: url,
          auth: req.headers.authorization,
          hook: req.headers["x-hook-key"] as string | undefined,
          body: JSON.parse(body),
        });
        res.statusCode = url.startsWith("/v1/") ? eventsStatus : 204;
        res.end();
        return;
      }
      res.statusCode = 404;
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
  got = [];
  eventsStatus = 200;
  answerText = `version: 1\nreport:\n  webhook: ${base}/hook\n  headers:\n    X-Hook-Key: ${HOOK_SECRET}\n  secretHeaders: [x-hook-key]\n`;
});

/** A stand-in for `kvmstrap install` as a real process: says what the real one's help says. */
async function installScript(exit: number, help = "  --answer FILE   the answer\n"): Promise<string> {
  const file = path.join(scratch, `install-${exit}-${help.length}.sh`);
  await writeFile(
    file,
    `#!/bin/sh\nif [ "$2" = --help ]; then printf '%s' '${help}'; exit 0; fi\necho "args: $*"\necho "step 1 of 1 done"\n${exit ? `echo "disk /dev/vdz: no such disk" >&2\n` : ""}exit ${exit}\n`,
  );
  await chmod(file, 0o755);
  return file;
}

const cmdline = (extra = "") =>
  `BOOT_IMAGE=vmlinuz boot=live fetch=${base}/netboot/filesystem.squashfs quiet kvmstrap.server=${base} ` +
  `kvmstrap.node=${MAC} kvmstrap.token=${TOKEN} kvmstrap.answer=${base}/v1/nodes/${encodeURIComponent(MAC)}/answer ${extra}`;

const fastPost = { attempts: 2, backoffMs: 10, timeoutMs: 2000 };

/**
 * Power commands as real processes: sync appends to a file; reboot and poweroff POST to the test
 * server (so their order against the events is what the server saw), or exit 1 when told to fail.
 */
async function power(failing: "" | "reboot" = ""): Promise<{ cmds: PowerCommands; marks: string }> {
  const marks = path.join(scratch, `power-${process.hrtime.bigint()}.log`);
  const act = (name: string) =>
    failing === name
      ? ["/bin/sh", "-c", `echo "${name}: Failed to talk to init daemon" >&2; exit 1`]
      : [
          process.execPath,
          "-e",
          `fetch(${JSON.stringify(`${base}/power`)}, { method: "POST", body: JSON.stringify({ phase: "${name}" }) })`,
        ];
  return {
    marks,
    cmds: {
      sync: ["/bin/sh", "-c", `echo sync >> '${marks}'`],
      reboot: act("reboot"),
      poweroff: act("poweroff"),
    },
  };
}
const marksOf = (file: string) => readFile(file, "utf8").catch(() => "");

async function agent(
  line: string,
  installer = commandInstaller(["/bin/false"]),
  cmds: PowerCommands = { sync: ["/bin/false"], reboot: ["/bin/false"], poweroff: ["/bin/false"] },
) {
  const said: string[] = [];
  const logged: string[] = [];
  const answerFile = path.join(scratch, `answer-${Date.now()}.yaml`);
  const outcome = await runAgent({
    cmdline: line,
    say: (l) => said.push(l),
    log: (l) => logged.push(l),
    installer,
    power: cmds,
    answerFile,
    find: { embedded: null, http: { attempts: 2, backoffMs: 10 } },
    postUp: fastPost,
    post: fastPost,
  });
  return { outcome, said, logged, answerFile };
}

const phases = (path: string) => got.filter((g) => g.path === path).map((g) => g.body.phase);
const serverPath = `/v1/nodes/${encodeURIComponent(MAC)}/events`;

describe("the boot agent", () => {
  it("kvmstrap.auto=install and an answer: up, answer-fetched, installing, installed, to the server and the webhook; then sync and reboot", async () => {
    const p = await power();
    const { outcome, said, logged, answerFile } = await agent(
      cmdline("kvmstrap.auto=install"),
      commandInstaller(["/bin/sh", await installScript(0)]),
      p.cmds,
    );
    expect(outcome).toMatchObject({ phase: "installed", exitCode: 0, after: { action: "reboot", ok: true } });
    expect(phases(serverPath)).toEqual(["appliance-up", "answer-fetched", "installing", "installed"]);
    // The reboot came after every event had been taken, and after the sync.
    expect(got.at(-1)).toMatchObject({ path: "/power", body: { phase: "reboot" } });
    expect(got.filter((g) => g.path === "/power")).toHaveLength(1);
    expect(await marksOf(p.marks)).toBe("sync\n");
    // The webhook is known once the answer is: it gets everything from answer-fetched on.
    expect(phases("/hook")).toEqual(["answer-fetched", "installing", "installed"]);
    for (const g of got.filter((g) => g.path !== "/power")) {
      expect(nodeLifecycleEventSchema.parse(g.body)).toBeTruthy();
      if (g.path === serverPath) expect(g.auth).toBe(`Bearer ${TOKEN}`);
      else expect(g.hook).toBe(HOOK_SECRET);
    }
    expect(said[0]).toBe(`KVMSTRAP-AGENT: appliance-up reported to ${base}/`);
    expect(said.join("\n")).toMatch(
      /KVMSTRAP-AGENT: answer-fetched from http:\/\/127\.0\.0\.1:\d+\/v1\/nodes\/.*\/answer/,
    );
    expect(said.slice(-2)).toEqual([
      "KVMSTRAP-AGENT: installed: step 1 of 1 done",
      "KVMSTRAP-AGENT: rebooting (kvmstrap.after=reboot)",
    ]);
    expect(got.find((g) => g.path === serverPath && g.body.phase === "installed")?.body.detail).toBe(
      "step 1 of 1 done (next: reboot)",
    );
    // The install got the answer the agent kept, mode 0600.
    expect(logged).toContain(`install: args: install --answer ${answerFile} --yes`);
    expect(await readFile(answerFile, "utf8")).toBe(answerText);
    expect((await stat(answerFile)).mode & 0o777).toBe(0o600);
    // No secret in anything said, logged or posted.
    const everything = [...said, ...logged, JSON.stringify(got.map((g) => g.body))].join("\n");
    expect(everything).not.toContain(TOKEN);
    expect(everything).not.toContain(HOOK_SECRET);
  });

  it("an answer without kvmstrap.auto=install starts nothing: the console's installer asks", async () => {
    const script = await installScript(0);
    const { outcome, said } = await agent(cmdline(), commandInstaller(["/bin/sh", script]));
    expect(outcome).toMatchObject({ phase: "answer-fetched", exitCode: 0 });
    expect(phases(serverPath)).toEqual(["appliance-up", "answer-fetched"]);
    expect(said.at(-1)).toMatch(/kvmstrap.auto=install is not on the command line: no unattended install/);
  });

  it("kvmstrap.auto=install without an answer starts nothing either", async () => {
    const line = `quiet kvmstrap.server=${base} kvmstrap.node=${MAC} kvmstrap.token=${TOKEN} kvmstrap.auto=install`;
    const { outcome, said } = await agent(line, commandInstaller(["/bin/sh", await installScript(0)]));
    expect(outcome).toMatchObject({ phase: "appliance-up", exitCode: 0 });
    expect(phases(serverPath)).toEqual(["appliance-up"]);
    expect(said.at(-1)).toMatch(/no answer \(kvmstrap.answer= not set, none in the image\)/);
  });

  it("a failing install is reported failed with its last line; an image without kvmstrap install says so", async () => {
    const p = await power();
    const failing = await agent(
      cmdline("kvmstrap.auto=install"),
      commandInstaller(["/bin/sh", await installScript(3)]),
      p.cmds,
    );
    expect(failing.outcome).toMatchObject({ phase: "failed", exitCode: 1 });
    // A failed install never reboots or syncs: its reason stays on the consoles.
    expect(failing.outcome.after).toBeUndefined();
    expect(got.filter((g) => g.path === "/power")).toEqual([]);
    expect(await marksOf(p.marks)).toBe("");
    expect(failing.said.slice(-2)).toEqual([
      "KVMSTRAP-AGENT: install: FAILED: kvmstrap install exited 3: disk /dev/vdz: no such disk",
      "KVMSTRAP-AGENT: the live system stays up: the reason is above and in journalctl -u kvmstrap-agent",
    ]);
    expect(got.filter((g) => g.path === serverPath).at(-1)?.body).toMatchObject({
      phase: "failed",
      detail: "kvmstrap install exited 3: disk /dev/vdz: no such disk",
    });
    got = [];
    const old = await agent(
      cmdline("kvmstrap.auto=install"),
      commandInstaller([
        "/bin/sh",
        await installScript(0, "Usage: kvmstrap install [options]\\n\\nNot built yet.\\n"),
      ]),
    );
    expect(old.outcome).toMatchObject({ phase: "failed", exitCode: 1 });
    expect(phases(serverPath)).toEqual(["appliance-up", "answer-fetched", "failed"]);
    expect(got.at(-1)?.body.detail).toBe("install: kvmstrap install is not available in this image");
    expect(old.said.at(-1)).toBe(
      "KVMSTRAP-AGENT: install: FAILED: kvmstrap install is not available in this image",
    );
  });

  it("the stick booted again after the install: the disk holds this answer's install, so nothing is erased and nothing reboots; kvmstrap.reinstall=1 passes --force", async () => {
    // kvmstrap install's own last line when the disk already holds the install (src/app/install-marker.ts).
    const file = path.join(scratch, "install-already.sh");
    await writeFile(
      file,
      `#!/bin/sh\nif [ "$2" = --help ]; then echo '  --answer FILE'; exit 0; fi\necho "args: $*"\n` +
        `case "$*" in *--force*) echo "installed onto vda"; exit 0;; esac\n` +
        `echo "kvmstrap: ${ALREADY_INSTALLED}/dev/vda holds the install of this answer (sha256 0123456789ab, kvmstrap 0.1.0, installed 2026-12-06T04:00:00Z); nothing was erased" >&2\nexit 0\n`,
    );
    await chmod(file, 0o755);
    const p = await power();
    const again = await agent(cmdline("kvmstrap.auto=install"), commandInstaller(["/bin/sh", file]), p.cmds);
    expect(again.outcome).toMatchObject({
      phase: "installed",
      exitCode: 0,
      after: { action: "stay", ok: true },
    });
    expect(got.filter((g) => g.path === "/power")).toEqual([]);
    expect(await marksOf(p.marks)).toBe("");
    expect(again.said).toContain(
      "KVMSTRAP-AGENT: installed already: /dev/vda holds the install of this answer (sha256 0123456789ab, kvmstrap 0.1.0, installed 2026-12-06T04:00:00Z); nothing was erased",
    );
    expect(phases(serverPath).at(-1)).toBe("installed");
    expect(got.filter((g) => g.path === serverPath).at(-1)?.body.detail).toMatch(
      /^installed already: \/dev\/vda/,
    );

    got = [];
    const forced = await agent(
      cmdline("kvmstrap.auto=install kvmstrap.reinstall=1 kvmstrap.after=stay"),
      commandInstaller(["/bin/sh", file]),
      (await power()).cmds,
    );
    expect(forced.logged.join("\n")).toMatch(/install: args: install --answer \S+ --yes --force/);
    expect(forced.said).toContain("KVMSTRAP-AGENT: installed: installed onto vda");
  });

  it("kvmstrap.after=poweroff powers off, =stay only syncs, a failing reboot command is said and exits 1", async () => {
    const install = commandInstaller(["/bin/sh", await installScript(0)]);
    let p = await power();
    const off = await agent(cmdline("kvmstrap.auto=install kvmstrap.after=poweroff"), install, p.cmds);
    expect(off.outcome).toMatchObject({ exitCode: 0, after: { action: "poweroff", ok: true } });
    expect(got.filter((g) => g.path === "/power").map((g) => g.body.phase)).toEqual(["poweroff"]);
    expect(off.said.at(-1)).toBe("KVMSTRAP-AGENT: powering off (kvmstrap.after=poweroff)");
    expect(await marksOf(p.marks)).toBe("sync\n");

    got = [];
    p = await power();
    const stay = await agent(cmdline("kvmstrap.auto=install kvmstrap.after=stay"), install, p.cmds);
    expect(stay.outcome).toMatchObject({ exitCode: 0, after: { action: "stay", ok: true } });
    expect(got.filter((g) => g.path === "/power")).toEqual([]);
    expect(await marksOf(p.marks)).toBe("sync\n");
    expect(stay.said.at(-1)).toMatch(/kvmstrap.after=stay: the live system stays up/);

    got = [];
    p = await power("reboot");
    const bad = await agent(cmdline("kvmstrap.auto=install"), install, p.cmds);
    expect(bad.outcome).toMatchObject({
      phase: "installed",
      exitCode: 1,
      after: { action: "reboot", ok: false },
    });
    expect(bad.said.at(-1)).toMatch(
      /^KVMSTRAP-AGENT: reboot: FAILED: \/bin\/sh -c .* exited 1: reboot: Failed to talk to init daemon; the installed disk is written$/,
    );
  });

  it("an unknown kvmstrap.after= is refused before anything is installed (exit 2)", async () => {
    const p = await power();
    const { outcome, said } = await agent(
      cmdline("kvmstrap.auto=install kvmstrap.after=reboott"),
      commandInstaller(["/bin/sh", await installScript(0)]),
      p.cmds,
    );
    expect(outcome).toMatchObject({ phase: "failed", exitCode: 2 });
    expect(phases(serverPath)).toEqual(["appliance-up", "failed"]);
    expect(got.at(-1)?.body.detail).toBe("kvmstrap.after=reboott: not one of reboot, poweroff, stay");
    expect(said.at(-1)).toBe(
      "KVMSTRAP-AGENT: FAILED: kvmstrap.after=reboott: not one of reboot, poweroff, stay",
    );
    expect(await marksOf(p.marks)).toBe("");
  });

  it("a bad answer is reported failed naming the source and the reason, and nothing is installed", async () => {
    answerText = "version: 1\nkvm:\n  nestd: true\n";
    const { outcome, said } = await agent(
      cmdline("kvmstrap.auto=install"),
      commandInstaller(["/bin/sh", await installScript(0)]),
    );
    expect(outcome).toMatchObject({ phase: "failed", exitCode: 2 });
    expect(phases(serverPath)).toEqual(["appliance-up", "failed"]);
    expect(got.at(-1)?.body.detail).toMatch(
      /^answer: answer from http:\/\/127\.0\.0\.1:\d+\/v1\/nodes\/.*\/answer is not a valid answer file:\n.*kvm.nestd: unknown key "nestd"/,
    );
    expect(said.at(-1)).toMatch(
      /^KVMSTRAP-AGENT: answer: FAILED: answer from .* is not a valid answer file:; /,
    );
  });

  it("an answer whose webhook is the server's own intake gets each event once", async () => {
    answerText = `version: 1\nreport:\n  webhook: ${base}${serverPath}\n  headers:\n    Authorization: Bearer ${TOKEN}\n`;
    const { outcome } = await agent(cmdline());
    expect(outcome).toMatchObject({ phase: "answer-fetched", exitCode: 0 });
    expect(phases(serverPath)).toEqual(["appliance-up", "answer-fetched"]);
  });

  it("a server that refuses the events does not stop the boot: the agent says so and goes on", async () => {
    eventsStatus = 503;
    const { outcome, said, logged } = await agent(cmdline());
    expect(outcome).toMatchObject({ phase: "answer-fetched", exitCode: 0 });
    expect(said[0]).toBe(
      `KVMSTRAP-AGENT: appliance-up NOT reported to ${base}/ (see journalctl -u kvmstrap-agent)`,
    );
    expect(logged[0]).toMatch(
      /^server: POST http:\/\/127\.0\.0\.1:\d+\/v1\/nodes\/.*\/events appliance-up failed \(attempt 1\/2\): HTTP 503$/,
    );
    expect(logged.join("\n")).not.toContain(TOKEN);
  });
});

describe("kvmstrap agent (CLI)", () => {
  it("reads the command line from a file, keeps the answer where told, prints its status lines", async () => {
    const file = path.join(scratch, "cmdline");
    await writeFile(file, `${cmdline()}\n`);
    const out = path.join(scratch, "cli-answer.yaml");
    const r = await captureCli(() => agentCommand(["--cmdline", file, "--answer-out", out]));
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").filter(Boolean)).toEqual([
      `KVMSTRAP-AGENT: appliance-up reported to ${base}/`,
      expect.stringMatching(/^KVMSTRAP-AGENT: answer-fetched from /),
      expect.stringMatching(/^KVMSTRAP-AGENT: kvmstrap.auto=install is not on the command line/),
    ]);
    expect(await readFile(out, "utf8")).toBe(answerText);
  });

  it("usage and input errors exit 2 with the reason", async () => {
    expect((await captureCli(() => agentCommand(["extra"]))).stderr).toMatch(/unexpected argument "extra"/);
    const r = await captureCli(() => agentCommand(["--cmdline", path.join(scratch, "none")]));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/none: cannot read the kernel command line \(ENOENT\)/);
    // A malformed certificate pin: the answer is not fetched, the boot server is told, exit 2.
    const file = path.join(scratch, "cmdline-badpin");
    await writeFile(file, cmdline("kvmstrap.answer-fingerprint=sha256:12:34"));
    got = [];
    const pin = await captureCli(() => agentCommand(["--cmdline", file, "--answer-out", `${file}.yaml`]));
    expect(pin.code).toBe(2);
    expect(pin.stdout).toContain(
      "KVMSTRAP-AGENT: answer: FAILED: kvmstrap.answer-fingerprint=sha256:12:34: not a SHA-256 certificate fingerprint",
    );
    expect(phases(serverPath)).toEqual(["appliance-up", "failed"]);
  });
});
