// The boot agent's lines off the console: kvmstrap.syslog= through the real util-linux logger to a
// real UDP socket and a real TCP listener on loopback (the receiving end of a syslog server), and
// the answer's secrets (a password hash, the webhook's secret header) plus the boot token scrubbed
// from everything that leaves: console, journal, syslog, the boot server's and the webhook's events.
// The install is a real child process in the role of `kvmstrap install` that prints the secrets.
import { spawnSync } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer, type Server } from "node:http";
import { type AddressInfo, createServer as createTcpServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { commandInstaller, type PowerCommands, runAgent } from "../../src/app/node-agent.js";

const MAC = "52:54:00:ab:cd:ef";
const TOKEN = "tok-SYSLOG-SECRET-77";
const HOOK_SECRET = "hook-SYSLOG-SECRET-88";
const HASH =
  "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/";

const loggerWhy = spawnSync("logger", ["--help"], { encoding: "utf8" }).stdout?.includes("--rfc5424")
  ? undefined
  : "util-linux logger with --rfc5424 missing (package bsdutils)";

let http: Server;
let base = "";
let posts: { path: string; body: string }[] = [];
let udp: Socket;
let udpPort = 0;
let datagrams: string[] = [];
let scratch = "";

const answer = () =>
  `version: 1\nhost:\n  users:\n    - name: alice\n      passwordHash: '${HASH}'\n` +
  `report:\n  webhook: ${base}/hook\n  headers:\n    X-Hook-Key: ${HOOK_SECRET}\n  secretHeaders: [x-hook-key]\n`;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), "kvms-agent-logs-"));
  http = createHttpServer((req, res) => {
    let body = "";
    req.on("data", (d) => {
      body += d;
    });
    req.on("end", () => {
      if (req.method === "GET") res.end(answer());
      else {
        posts.push({ path: req.url ?? "", body });
        res.statusCode = 204;
        res.end();
      }
    });
  });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  udp = createSocket("udp4");
  udp.on("message", (m) => datagrams.push(m.toString()));
  await new Promise<void>((r) => udp.bind(0, "127.0.0.1", r));
  udpPort = udp.address().port;
});
afterAll(async () => {
  http.closeAllConnections();
  await new Promise((r) => http.close(r));
  udp.close();
  await rm(scratch, { recursive: true, force: true });
});
beforeEach(() => {
  posts = [];
  datagrams = [];
});

/** `kvmstrap install` as a real process that prints the secrets, as a careless step could. */
async function installScript(exit: number): Promise<string> {
  const file = path.join(scratch, `install-${exit}.sh`);
  const hash = HASH.replaceAll("$", "\\$"); // inside the script's double quotes
  await writeFile(
    file,
    `#!/bin/sh\nif [ "$2" = --help ]; then echo '  --answer FILE'; exit 0; fi\n` +
      `echo "apply: started"\necho "  [done] host.user.alice.password: run usermod --password '${hash}' alice"\n` +
      `echo "curl -H 'X-Hook-Key: ${HOOK_SECRET}' -H 'Authorization: Bearer ${TOKEN}'" >&2\n` +
      (exit
        ? `echo "usermod --password '${hash}' alice exited with 1" >&2\n`
        : `echo "installed onto vdb"\n`) +
      `exit ${exit}\n`,
  );
  await chmod(file, 0o755);
  return file;
}

const cmdline = (extra: string) =>
  `quiet kvmstrap.server=${base} kvmstrap.node=${MAC} kvmstrap.token=${TOKEN} ` +
  `kvmstrap.answer=${base}/answer.yaml kvmstrap.auto=install ${extra}`;

const fast = { attempts: 2, backoffMs: 10, timeoutMs: 2000 };
const stay: PowerCommands = { sync: ["true"], reboot: ["false"], poweroff: ["false"] };

async function agent(line: string, exit = 0, syslogProgram?: string, power = stay) {
  const said: string[] = [];
  const logged: string[] = [];
  const outcome = await runAgent({
    cmdline: line,
    say: (l) => said.push(l),
    log: (l) => logged.push(l),
    installer: commandInstaller(["/bin/sh", await installScript(exit)]),
    power,
    answerFile: path.join(scratch, `answer-${process.hrtime.bigint()}.yaml`),
    syslogProgram,
    find: { embedded: null, http: fast },
    postUp: fast,
    post: fast,
  });
  return { outcome, said, logged };
}

/** UDP on loopback arrives at once, but the socket's handler runs on a later tick. */
async function settle(count: number): Promise<void> {
  for (let i = 0; i < 50 && datagrams.length < count; i++) await new Promise((r) => setTimeout(r, 20));
}

const noSecrets = (text: string) => {
  for (const s of [HASH, "qFmFH.bQmm", TOKEN, HOOK_SECRET]) expect(text).not.toContain(s);
};

describe.skipIf(loggerWhy)(
  `kvmstrap.syslog= through logger${loggerWhy ? ` (skipped: ${loggerWhy})` : ""}`,
  () => {
    it("sends the agent's and the install's lines as RFC 5424 messages over UDP, secrets scrubbed", async () => {
      const { outcome, said, logged } = await agent(
        cmdline(`kvmstrap.syslog=udp://127.0.0.1:${udpPort} kvmstrap.after=stay`),
      );
      expect(outcome).toMatchObject({ phase: "installed", exitCode: 0 });
      await settle(said.length + logged.length);
      // Every console and journal line went out, in order, one datagram each.
      const messages = datagrams.map((d) => {
        const m = /^<(\d+)>1 \S+ \S+ kvmstrap-agent \S+ \S+ (?:-|\[.*?\]) (.*)$/s.exec(d);
        expect(m, d).not.toBeNull();
        return { pri: Number(m?.[1]), text: m?.[2] };
      });
      expect(messages.map((m) => m.text)).toEqual(expect.arrayContaining([...said, ...logged]));
      expect(messages[0]).toEqual({
        pri: 13, // user.notice: a console line
        text: `KVMSTRAP-AGENT: lines also go to syslog at udp://127.0.0.1:${udpPort}`,
      });
      expect(messages).toContainEqual({
        pri: 14, // user.info: a journal line, here the install's own
        text: "install:   [done] host.user.alice.password: run usermod --password '[redacted]' alice",
      });
      expect(messages.at(-1)?.text).toMatch(/kvmstrap.after=stay: the live system stays up/);
      noSecrets([...said, ...logged, ...datagrams, ...posts.map((p) => p.body)].join("\n"));
    });

    it("before a reboot, every line so far has gone out (the reboot command comes after them)", async () => {
      // The reboot command, a real process, sends its own datagram to the receiver.
      const mark = `dgram=require("node:dgram").createSocket("udp4");dgram.send("REBOOT-COMMAND",${udpPort},"127.0.0.1",()=>dgram.close())`;
      const { outcome, said } = await agent(
        cmdline(`kvmstrap.syslog=udp://127.0.0.1:${udpPort}`),
        0,
        undefined,
        { sync: ["true"], reboot: [process.execPath, "-e", mark], poweroff: ["false"] },
      );
      expect(outcome).toMatchObject({ exitCode: 0, after: { action: "reboot", ok: true } });
      await settle(said.length + 1);
      expect(datagrams.at(-1)).toBe("REBOOT-COMMAND");
      expect(datagrams.at(-2)).toMatch(/ KVMSTRAP-AGENT: rebooting \(kvmstrap.after=reboot\)$/);
    });

    it("a failed install: FAILED lines as errors, the failure summary without the password hash everywhere", async () => {
      const { outcome, said } = await agent(cmdline(`kvmstrap.syslog=udp://127.0.0.1:${udpPort}`), 1);
      expect(outcome).toMatchObject({ phase: "failed", exitCode: 1 });
      const summary = "kvmstrap install exited 1: usermod --password '[redacted]' alice exited with 1";
      expect(said).toContain(`KVMSTRAP-AGENT: install: FAILED: ${summary}`);
      await settle(said.length);
      expect(datagrams.find((d) => d.includes("install: FAILED"))).toMatch(/^<11>1 /); // user.err
      const failed = posts.filter((p) => JSON.parse(p.body).phase === "failed");
      expect(failed.map((p) => p.path)).toEqual([`/v1/nodes/${encodeURIComponent(MAC)}/events`, "/hook"]);
      for (const p of failed) expect(JSON.parse(p.body).detail).toBe(summary);
      noSecrets([...said, ...datagrams, ...posts.map((p) => p.body)].join("\n"));
    });

    it("over TCP too (one message a line)", async () => {
      let received = "";
      const tcp = createTcpServer((s) => s.on("data", (d) => (received += d.toString())));
      await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
      try {
        const port = (tcp.address() as AddressInfo).port;
        const { outcome, said } = await agent(
          cmdline(`kvmstrap.syslog=tcp://127.0.0.1:${port} kvmstrap.after=stay`),
        );
        expect(outcome.exitCode).toBe(0);
        for (let i = 0; i < 50 && !received.includes("stays up"); i++)
          await new Promise((r) => setTimeout(r, 20));
        for (const line of said) expect(received).toContain(` ${line}`);
        expect(received).toMatch(/^<13>1 \S+ \S+ kvmstrap-agent /);
        noSecrets(received);
      } finally {
        tcp.close();
      }
    });

    it("a receiver that cannot be reached, or no logger, is said on the console; the boot goes on", async () => {
      const closed = createTcpServer();
      await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
      const port = (closed.address() as AddressInfo).port;
      await new Promise((r) => closed.close(r)); // nothing listens there now
      const tcp = await agent(cmdline(`kvmstrap.syslog=tcp://127.0.0.1:${port} kvmstrap.after=stay`));
      expect(tcp.outcome).toMatchObject({ phase: "installed", exitCode: 0 });
      expect(tcp.said).toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^KVMSTRAP-AGENT: syslog: lines are no longer sent to tcp://127\\.0\\.0\\.1:${port}: logger exited 1: .+`,
          ),
        ),
      );

      const none = await agent(
        cmdline(`kvmstrap.syslog=udp://127.0.0.1:${udpPort} kvmstrap.after=stay`),
        0,
        path.join(scratch, "no-logger"),
      );
      expect(none.outcome).toMatchObject({ phase: "installed", exitCode: 0 });
      expect(none.said).toContain(
        `KVMSTRAP-AGENT: syslog: lines are no longer sent to udp://127.0.0.1:${udpPort}: ${path.join(scratch, "no-logger")} not found (util-linux's logger, package bsdutils)`,
      );
    });
  },
);

describe("kvmstrap.syslog= that is not a syslog URL", () => {
  it("is refused before anything is installed (exit 2), naming the parameter", async () => {
    for (const bad of ["syslog.example:514", "udp://", "udp://h:70000", "http://h:514", "udp://u@h:514"]) {
      posts = [];
      const { outcome, said } = await agent(cmdline(`kvmstrap.syslog=${bad}`));
      expect(outcome).toMatchObject({ phase: "failed", exitCode: 2 });
      const why = `kvmstrap.syslog=${bad}: not udp://HOST[:PORT] or tcp://HOST[:PORT] (a name or address, a port 1-65535)`;
      expect(said.at(-1)).toBe(`KVMSTRAP-AGENT: FAILED: ${why}`);
      expect(posts.map((p) => JSON.parse(p.body).phase)).toEqual(["appliance-up", "failed"]);
      expect(said.join("\n")).not.toMatch(/installing/);
    }
  });
});
