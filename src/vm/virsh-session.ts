// A long-lived `virsh -q -c URI` fed commands on stdin, for a caller that asks libvirt the same
// question again and again (the metrics exporter, every scrape): one process and one libvirt
// connection for its life instead of a spawn and a connect per question (13 ms of a 20-domain
// scrape here, a third of what prometheus-libvirt-exporter takes for the whole scrape).
//
// virsh's shell is made for people: readline echoes each command line after a prompt on stdout
// (on a pipe too), and a command has no exit status. So every command is followed by two echo
// commands that mark its end, on stderr and on stdout. `echo --split ID,end` prints ID and end on
// lines of their own: a text the echoed command line (with its comma) cannot contain, and ID holds a
// random nonce, so no domain name in the output can forge the end of a reply. A command failed
// when its part of stderr has a line starting "error:", virsh's prefix for every libvirt error.
//
// Each reply is bounded in time and size; a reply over either bound, a failure or a virsh that
// died ends the process, and the next command starts a new one. A failure on a process that had
// answered before is tried once more on a new one: after a libvirtd restart the old connection is
// gone, and the question must not fail for that.
//
// Spawned with node:child_process rather than through the host's CommandRunner, which runs a
// command to its end: this one stays up and is talked to.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import type { CommandResult } from "../host/commands.js";

export interface SessionLimits {
  timeoutMs: number;
  /** stdout and stderr of one reply together. */
  maxBytes: number;
}

/** Words virsh's shell parser takes as they are: no quoting, so nothing to get wrong. */
const PLAIN_WORD = /^[\w.,:=@/+-]+$/;

/** A domain name a session can pass to virsh as a positional word: plain, and not read as an option. */
export const isPositionalName = (name: string): boolean => /^[\w.:@+][\w.,:=@/+-]*$/.test(name);
const PROMPT_LINE = /^virsh [#$] /;
const ERROR_LINE = /^error: /m;

export class VirshSession {
  private child: ChildProcessWithoutNullStreams | null = null;
  private out = "";
  private err = "";
  private exit: string | null = null;
  private spawnError: Error | null = null;
  private wake: () => void = () => {};
  private seq = 0;
  private readonly nonce = randomBytes(6).toString("hex");
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly uri: string,
    private readonly virsh = "virsh",
  ) {}

  /** The process id of the running virsh (null between processes); tests kill it with this. */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /**
   * Runs one virsh command (its words, e.g. ["domstats", "--state"]); commands run one at a time.
   * exitCode: 0 done, 1 failed (stderr says why), undefined virsh could not be started.
   */
  run(words: readonly string[], limits: SessionLimits): Promise<CommandResult> {
    for (const w of words) {
      if (!PLAIN_WORD.test(w)) throw new Error(`virsh session: "${w}" is not a plain word`);
    }
    const reply = this.queue.then(async () => {
      const reused = this.child !== null;
      const first = await this.once(words.join(" "), limits);
      if (!reused || first.exitCode === 0 || first.timedOut || first.overflowed) return first;
      return this.once(words.join(" "), limits);
    });
    this.queue = reply.catch(() => {});
    return reply;
  }

  /** Ends virsh (EOF on its stdin, SIGKILL after a second). */
  async close(): Promise<void> {
    await this.queue;
    const child = this.child;
    if (!child) return;
    this.child = null;
    const gone = new Promise<void>((resolve) => child.once("close", () => resolve()));
    child.stdin.end();
    const timer = setTimeout(() => child.kill("SIGKILL"), 1000);
    await gone;
    clearTimeout(timer);
  }

  private start(): ChildProcessWithoutNullStreams {
    this.out = "";
    this.err = "";
    this.exit = null;
    this.spawnError = null;
    const child = spawn(this.virsh, ["-q", "-c", this.uri], {
      // VIRSH_HISTSIZE=0: the commands of a scrape every few seconds never fill root's virsh history.
      env: { ...process.env, LC_ALL: "C", VIRSH_HISTSIZE: "0" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (s: string) => {
      if (this.child === child) this.out += s;
      this.wake();
    });
    child.stderr.on("data", (s: string) => {
      if (this.child === child) this.err += s;
      this.wake();
    });
    // A write to a virsh that died is EPIPE here; its exit is what the reply reports.
    child.stdin.on("error", () => {});
    child.on("error", (e) => {
      if (this.child === child) this.spawnError = e;
      this.wake();
    });
    child.on("exit", (code, signal) => {
      if (this.child === child) this.exit = code !== null ? `exit ${code}` : `signal ${signal}`;
      this.wake();
    });
    this.child = child;
    return child;
  }

  private stop(): void {
    this.child?.kill("SIGKILL");
    this.child = null;
  }

  private async once(command: string, limits: SessionLimits): Promise<CommandResult> {
    const child = this.child ?? this.start();
    const id = `kvmstrap-${this.nonce}-${++this.seq}`;
    const outMark = `\n${id}\nend`;
    const errMark = `error: ${id}\nend\n`;
    child.stdin.write(`${command}\necho --err --split ${id},end\necho --split ${id},end\n`);
    const deadline = Date.now() + limits.timeoutMs;
    for (;;) {
      const o = this.out.indexOf(outMark);
      const e = this.err.indexOf(errMark);
      if (o >= 0 && e >= 0) {
        const stdout = this.out
          .slice(0, o + 1)
          .split("\n")
          .filter((line) => !PROMPT_LINE.test(line))
          .join("\n");
        // What stays after a mark is the rest of its line (a newline) or the next prompt.
        const stderr = this.err.slice(0, e).replace(/^\n+/, "");
        this.out = this.out.slice(o + outMark.length);
        this.err = this.err.slice(e + errMark.length);
        const failed = ERROR_LINE.test(stderr);
        if (failed) this.stop();
        return { exitCode: failed ? 1 : 0, stdout, stderr, timedOut: false };
      }
      if (this.spawnError) {
        const stderr = `error: ${this.spawnError.message}\n`;
        this.stop();
        return { exitCode: undefined, stdout: "", stderr, timedOut: false };
      }
      if (this.out.length + this.err.length > limits.maxBytes) {
        this.stop();
        return { exitCode: undefined, stdout: "", stderr: "", timedOut: false, overflowed: true };
      }
      if (this.exit) {
        const stderr = `${this.err}error: virsh ended (${this.exit})\n`;
        this.child = null;
        return { exitCode: 1, stdout: "", stderr, timedOut: false };
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        this.stop();
        return { exitCode: undefined, stdout: "", stderr: this.err, timedOut: true };
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}
