// CommandRunner: the port through which kvmstrap runs programs. The default adapter uses execa
// (never a synchronous child process), with LC_ALL=C so output parses the same on every locale.
export type CommandResult = {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** stdout or stderr went past maxBytes: the program was killed and its output is cut short. */
  overflowed?: boolean;
};
export type CommandOptions = {
  timeoutMs?: number;
  input?: string;
  env?: Record<string, string>;
  /** Bound on stdout and stderr each (output of a program reporting on untrusted state). */
  maxBytes?: number;
};

export interface CommandRunner {
  run(file: string, args: readonly string[], options?: CommandOptions): Promise<CommandResult>;
  /** Absolute path of a program on PATH, or null. */
  which(program: string): Promise<string | null>;
}

export class ExecaRunner implements CommandRunner {
  async run(file: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
    const { execa } = await import("execa");
    const r = await execa(file, args, {
      reject: false,
      timeout: options.timeoutMs,
      input: options.input,
      env: { LC_ALL: "C", ...options.env },
      stripFinalNewline: false,
      killSignal: "SIGKILL",
      ...(options.maxBytes !== undefined ? { maxBuffer: options.maxBytes } : {}),
    });
    return {
      exitCode: r.exitCode,
      stdout: String(r.stdout ?? ""),
      stderr: String(r.stderr ?? ""),
      timedOut: Boolean(r.timedOut),
      ...(r.isMaxBuffer ? { overflowed: true } : {}),
    };
  }

  async which(program: string): Promise<string | null> {
    const { access } = await import("node:fs/promises");
    const { constants } = await import("node:fs");
    for (const dir of (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
      const candidate = `${dir}/${program}`;
      try {
        await access(candidate, constants.X_OK);
        return candidate;
      } catch {
        /* next */
      }
    }
    return null;
  }
}

/**
 * Runs commands inside another machine root (an installer's target, mounted at ROOT) with chroot,
 * so update-grub, systemctl enable or useradd act on that system, never on the one running kvmstrap.
 */
export class ChrootRunner implements CommandRunner {
  constructor(
    private readonly root: string,
    private readonly inner: CommandRunner = new ExecaRunner(),
  ) {}

  run(file: string, args: readonly string[], options?: CommandOptions): Promise<CommandResult> {
    return this.inner.run("chroot", [this.root, file, ...args], options);
  }

  async which(program: string): Promise<string | null> {
    const { access } = await import("node:fs/promises");
    for (const dir of ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
      try {
        await access(`${this.root}${dir}/${program}`);
        return `${dir}/${program}`;
      } catch {
        /* next */
      }
    }
    return null;
  }
}
