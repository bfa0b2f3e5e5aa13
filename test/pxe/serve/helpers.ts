// Shared by the serve tests: a small netboot set (random bytes, a real manifest), a nodes file with
// answers, and curl as the HTTP client (status, headers and body kept apart).
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";

export const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), `kvms-serve-${prefix}-${process.pid}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface NetbootFixture {
  dir: string;
  files: Record<string, Buffer>;
}

/** vmlinuz, initrd.img, filesystem.squashfs of random bytes with a manifest like iso-build's. */
export function makeNetboot(
  dir: string,
  sizes = { vmlinuz: 70_000, initrd: 150_000, squashfs: 600_000 },
): NetbootFixture {
  mkdirSync(dir, { recursive: true });
  const files: Record<string, Buffer> = {
    vmlinuz: randomBytes(sizes.vmlinuz),
    "initrd.img": randomBytes(sizes.initrd),
    "filesystem.squashfs": randomBytes(sizes.squashfs),
  };
  for (const [name, data] of Object.entries(files)) writeFileSync(path.join(dir, name), data);
  const manifest = {
    name: "kvmstrap",
    version: "0.1.0-test",
    cmdline: "boot=live fetch=@BASE@/filesystem.squashfs quiet console=ttyS0,115200n8",
    files: Object.fromEntries(
      Object.entries(files).map(([n, d]) => [n, { size: d.length, sha256: sha256(d) }]),
    ),
  };
  writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(manifest, null, 2));
  return { dir, files };
}

export const ANSWER_A = `version: 1
# node a's own answer
host:
  hostname: node-a.example.net
  users:
    - name: ops
      passwordHash: "$6$rounds=5000$examplesalt$Qm9uZ3VzSGFzaEZvckV4YW1wbGVPbmx5Lk5vdEFSZWFsUGFzc3dvcmQuLi4uLi4uLi4u"
report:
  webhook: https://elsewhere.example.net/hook
  headers:
    authorization: Bearer operators-own-token
    X-Site: rack1
`;
export const ANSWER_B = "version: 1\nhost:\n  hostname: node-b.example.net\n";

export const MAC_A = "52:54:00:aa:00:01";
export const MAC_B = "52:54:00:bb:00:02";
export const MAC_C = "52:54:00:cc:00:03"; // not in the nodes file
export const UUID_B = "8c7d6e5f-1234-4abc-9def-0123456789ab";
export const SERIAL_B = "CZ 1234/567";

/** Node a: by MAC, unattended; node b: by UUID or serial, interactive, with an answer. */
export function makeNodesFile(dir: string): string {
  writeFileSync(path.join(dir, "a.yaml"), ANSWER_A);
  writeFileSync(path.join(dir, "b.yaml"), ANSWER_B);
  const file = path.join(dir, "nodes.yaml");
  writeFileSync(
    file,
    `nodes:
  - mac: ${MAC_A.toUpperCase()}
    name: node-a
    answer: a.yaml
    install: true
  - uuid: ${UUID_B.toUpperCase()}
    serial: "${SERIAL_B}"
    name: node-b
    answer: b.yaml
`,
  );
  return file;
}

export interface CurlResult {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

let n = 0;
/** One request with the real curl; headers lower-cased (the last response's, after redirects none). */
export async function curl(scratch: string, url: string, args: string[] = []): Promise<CurlResult> {
  n += 1;
  const out = path.join(scratch, `body-${n}`);
  const hdr = path.join(scratch, `head-${n}`);
  const r = await execa("curl", ["-sS", "-o", out, "-D", hdr, "-w", "%{http_code}", ...args, url], {
    reject: false,
    timeout: 20_000,
  });
  if (r.exitCode !== 0 && r.exitCode !== 18) throw new Error(`curl ${url}: ${r.stderr}`);
  const headers: Record<string, string> = {};
  for (const line of readFileSync(hdr, "utf8").split("\r\n").slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = Buffer.alloc(0);
  try {
    body = readFileSync(out);
  } catch {
    // no body written (HEAD, 304)
  }
  return { status: Number(r.stdout), headers, body };
}

/** Stops a daemonised dhclient by its pid file; it may have exited already (that is fine). */
export function stopDaemon(pidText: string): void {
  const pid = Number(pidText.trim());
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
  }
}
