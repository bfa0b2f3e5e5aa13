// bench:pxe, HTTP artifacts: a 1 GiB filesystem.squashfs fetched by 8 curl clients at once from
// `kvmstrap serve`'s /netboot/ and from nginx serving the same file, interleaved, medians of RUNS.
// nginx is a private instance (its own config, prefix and port, a child of this process; never the
// system service), one worker process as kvmstrap serve is one process, with sendfile on as
// Debian's default config has it. Target: kvmstrap >= 0.5x nginx.
import { execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  createReadStream,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";

const execFileP = promisify(execFile);
const GiB = Number(process.env.KVMSTRAP_BENCH_HTTP_MIB ?? 1024) * 2 ** 20;
const CLIENTS = 8;
const NGINX_PORT = 18480;

async function sha256(file) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk);
  return hash.digest("hex");
}

/** A netboot set whose root image is `size` bytes of random data (written in 16 MiB pieces). */
async function writeNetboot(dir, size) {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const files = {};
  for (const [name, bytes] of [
    ["vmlinuz", 1024 * 1024],
    ["initrd.img", 1024 * 1024],
    ["filesystem.squashfs", size],
  ]) {
    const file = path.join(dir, name);
    const fd = openSync(file, "w", 0o644);
    const piece = randomBytes(16 * 1024 * 1024);
    for (let left = bytes; left > 0; left -= piece.length)
      writeSync(fd, piece, 0, Math.min(left, piece.length));
    closeSync(fd);
    files[name] = { size: bytes, sha256: await sha256(file) };
  }
  writeFileSync(
    path.join(dir, "manifest.json"),
    JSON.stringify({
      name: "bench",
      version: "0",
      cmdline: "boot=live fetch=@BASE@/filesystem.squashfs",
      files,
    }),
  );
  return files;
}

async function startServe(root, dir, children) {
  const child = spawn(
    process.execPath,
    [
      path.join(root, "bin/kvmstrap.js"),
      "serve",
      ...["--dhcp", "off", "--listen", "127.0.0.1", "--tftp-port", "0", "--http-port", "0"],
      ...["--netboot", path.join(dir, "netboot"), "--state-dir", path.join(dir, "state"), "--json"],
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  children.push(child);
  const lines = createInterface({ input: child.stdout });
  const base = await new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`kvmstrap serve exited (${code})`)));
    lines.on("line", (line) => {
      const e = JSON.parse(line);
      if (e.type === "listening") resolve(e.http);
    });
  });
  return { name: "kvmstrap", url: `${base}/netboot/filesystem.squashfs`, pid: child.pid };
}

async function startNginx(dir, children) {
  const prefix = path.join(dir, "nginx");
  mkdirSync(path.join(prefix, "logs"), { recursive: true });
  const conf = path.join(prefix, "nginx.conf");
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
master_process on;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  types { application/octet-stream squashfs; }
  server {
    listen 127.0.0.1:${NGINX_PORT};
    location /netboot/ { alias ${path.join(dir, "netboot")}/; }
  }
}
`,
  );
  const child = spawn("nginx", ["-p", prefix, "-c", conf], { stdio: ["ignore", "inherit", "inherit"] });
  children.push(child);
  const url = `http://127.0.0.1:${NGINX_PORT}/netboot/filesystem.squashfs`;
  for (let i = 0; i < 50; i++) {
    if (child.exitCode !== null)
      throw new Error(`nginx exited (${child.exitCode}); port ${NGINX_PORT} in use?`);
    try {
      const res = await fetch(url, { method: "HEAD" });
      if (res.ok) return { name: "nginx", url, pid: child.pid };
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("nginx did not come up");
}

/** 8 curl clients at once; seconds until the last one has its 1 GiB. */
async function eight(server, size) {
  const t = performance.now();
  const sizes = await Promise.all(
    Array.from({ length: CLIENTS }, () =>
      execFileP("curl", ["-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}", server.url], {
        timeout: 600_000,
      }).then((r) => Number(r.stdout)),
    ),
  );
  const seconds = (performance.now() - t) / 1000;
  for (const s of sizes)
    if (s !== size) throw new Error(`${server.name}: a client got ${s} bytes, not ${size}`);
  return seconds;
}

/** CPU seconds of a process and its children (nginx's worker), from /proc. */
export function treeCpu(pid) {
  const cpuOf = (p) => {
    try {
      const f = readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1].split(" ");
      return { ppid: f[1], cpu: (Number(f[11]) + Number(f[12])) / 100 };
    } catch {
      return undefined;
    }
  };
  let total = cpuOf(pid)?.cpu ?? 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const s = cpuOf(entry);
    if (s && s.ppid === String(pid)) total += s.cpu;
  }
  return total;
}

/** Runs the HTTP comparison; returns printable rows. */
export async function benchHttp({ root, dir, runs, children, log, median }) {
  for (const tool of ["curl", "nginx"])
    await execFileP("sh", ["-c", `command -v ${tool}`]).catch(() => {
      throw new Error(`${tool} is missing: run scripts/setup-test-host.sh`);
    });
  log(`writing a ${GiB / 2 ** 20} MiB netboot root image`);
  const files = await writeNetboot(path.join(dir, "netboot"), GiB);
  const ours = await startServe(root, dir, children);
  const theirs = await startNginx(dir, children);
  // Each checked once for a correct copy before timing.
  for (const s of [ours, theirs]) {
    const out = path.join(dir, "http-check.bin");
    await execFileP("curl", ["-sS", "--fail", "-o", out, s.url], { timeout: 600_000 });
    if ((await sha256(out)) !== files["filesystem.squashfs"].sha256)
      throw new Error(`${s.name}: the copy differs from the file`);
    writeFileSync(out, "");
  }
  const times = { kvmstrap: [], nginx: [] };
  const cpu = { kvmstrap: [], nginx: [] };
  for (let i = 0; i < runs; i++) {
    log(`HTTP run ${i + 1}/${runs}`);
    for (const s of i % 2 ? [theirs, ours] : [ours, theirs]) {
      const cpu0 = treeCpu(s.pid);
      times[s.name].push(await eight(s, GiB));
      cpu[s.name].push(treeCpu(s.pid) - cpu0);
    }
  }
  const rate = (k) => (CLIENTS * GiB) / 2 ** 20 / median(times[k]);
  const best = (k) => (CLIENTS * GiB) / 2 ** 20 / Math.min(...times[k]);
  const ratio = median(times.nginx) / median(times.kvmstrap);
  const fmt = (x) => `${x.toFixed(0).padStart(6)} MB/s`;
  return {
    title: `HTTP artifacts, ${GiB / 2 ** 20} MiB x ${CLIENTS} curl clients at once on loopback, ${runs} runs`,
    rows: [
      ["kvmstrap serve /netboot/", `${fmt(rate("kvmstrap"))}  ${fmt(best("kvmstrap"))}`],
      ["nginx (1 worker, sendfile)", `${fmt(rate("nginx"))}  ${fmt(best("nginx"))}`],
      [
        "  kvmstrap / nginx",
        `${ratio.toFixed(2).padStart(8)}x     ${(Math.min(...times.nginx) / Math.min(...times.kvmstrap)).toFixed(2).padStart(6)}x     >= 0.5: ${ratio >= 0.5 ? "ok" : "MISSED"}`,
      ],
    ],
    notes: [
      `server CPU per run of ${CLIENTS} x ${GiB / 2 ** 20} MiB (median): kvmstrap ${median(cpu.kvmstrap).toFixed(2)} s, nginx ${median(cpu.nginx).toFixed(2)} s`,
    ],
  };
}
