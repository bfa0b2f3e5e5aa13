// One virsh command for `vm migrate` and `host drain`, on node:child_process rather than the
// libvirt port's runner (execa): execa's import takes 0.05-0.2 s here and comes before the first
// spawn, a fifth of a small migration's wall time (bench:cluster). Errors are the port's
// LibvirtError, classified from virsh's stderr the same way (libvirt-error.ts).
import { execFile } from "node:child_process";
import { classifyVirshError, LibvirtError, virshErrorMessage } from "./libvirt-error.js";

export interface Virsh {
  readonly uri: string;
  /** Runs `virsh -c URI ARGS...`; stdout, or a LibvirtError (code "other" when aborted). */
  run(args: readonly string[], timeoutMs?: number, signal?: AbortSignal): Promise<string>;
}

/** Large enough for any capabilities or domain XML, small enough to bound a runaway. */
const MAX_OUTPUT = 64 * 2 ** 20;

export function virshAt(uri: string, defaultTimeoutMs = 60_000): Virsh {
  return {
    uri,
    run: (args, timeoutMs = defaultTimeoutMs, signal) =>
      new Promise((resolve, reject) => {
        const argv = ["-c", uri, ...args];
        const command = ["virsh", ...argv];
        execFile(
          "virsh",
          argv,
          {
            env: { ...process.env, LC_ALL: "C" },
            timeout: timeoutMs,
            killSignal: "SIGKILL",
            maxBuffer: MAX_OUTPUT,
            encoding: "utf8",
            ...(signal ? { signal } : {}),
          },
          (err, stdout, stderr) => {
            if (!err) return resolve(stdout);
            const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
            if (e.code === "ENOENT")
              return reject(
                new LibvirtError("other", "could not run virsh (is libvirt-clients installed?)", command),
              );
            if (e.name === "AbortError")
              return reject(new LibvirtError("other", `virsh ${args[0]} stopped`, command));
            if (e.code === "ERR_CHILD_PROCESS_STDIO_MAXBUFFER")
              return reject(new LibvirtError("other", `virsh ${args[0]}: output over 64 MiB`, command));
            if (e.killed)
              return reject(new LibvirtError("timeout", `virsh ${args[0]} timed out`, command, stderr));
            const exitCode = typeof e.code === "number" ? e.code : undefined;
            reject(
              new LibvirtError(
                classifyVirshError(stderr),
                virshErrorMessage(stderr),
                command,
                stderr,
                exitCode,
              ),
            );
          },
        );
      }),
  };
}
