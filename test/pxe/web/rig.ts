// The dashboard's rig, shared by its browser tests and bench/fleet-dashboard.mjs: the web bundle
// built by scripts/bundle-web.mjs (what `npm run build` runs), the shipped BootServer on loopback
// with a small netboot set and a nodes file of named machines, nodes moved through the server's own
// HTTP inputs (their boot script, netboot downloads, the event intake with each node's token), and
// Debian's chromium driven by playwright-core.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { BootServer, type ServeOptions } from "../../../src/pxe/server.js";
import { ADMIN_TOKEN_FILE } from "../../../src/pxe/tokens.js";
import { makeNetboot } from "../serve/helpers.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const CHROMIUM = "/usr/bin/chromium";
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
/** Screenshots, kept as test artifacts (iso-build/out is git-ignored; CI keeps its test-logs). */
export const SHOTS = path.join(ROOT, "iso-build/out/test-logs/dashboard");

/** dist/web, as `npm run build` writes it (the same script). */
export function buildWeb(): void {
  execFileSync(process.execPath, [path.join(ROOT, "scripts/bundle-web.mjs")], { stdio: "inherit" });
}

/** The MAC and name of simulated node i (0-based): 40 to a rack, names by rack and slot. */
export const macOf = (i: number) =>
  `52:54:01:${((i >> 16) & 255).toString(16).padStart(2, "0")}:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;
export const nameOf = (i: number) =>
  `r${String(Math.floor(i / 40) + 1).padStart(2, "0")}-n${String((i % 40) + 1).padStart(2, "0")}`;

export interface Rig {
  server: BootServer;
  base: string;
  dir: string;
  stateDir: string;
  adminToken: string;
  /** Stops the server and starts it again on the same port and state directory. */
  restart: () => Promise<void>;
  close: () => Promise<void>;
}

export async function startRig(
  o: {
    tag: string;
    named?: number;
    timeouts?: ServeOptions["timeouts"];
    /** Keep the fleet in an embedded store in the rig's directory, as this rack. */
    fleetRack?: string;
    /** With fleetRack: a fleet answers directory (site.yaml only), so unknown nodes boot to discovery. */
    discovery?: boolean;
    /** With fleetRack: the embedded store's directory (default: a new one in the rig's), e.g. one filled beforehand. */
    storeDir?: string;
  } = { tag: "rig" },
): Promise<Rig> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `kvms-web-${o.tag}-${process.pid}-`));
  const netboot = makeNetboot(path.join(dir, "netboot"), { vmlinuz: 4096, initrd: 8192, squashfs: 16384 });
  const nodesFile = path.join(dir, "nodes.yaml");
  const named = o.named ?? 0;
  writeFileSync(
    nodesFile,
    `nodes:\n${Array.from({ length: named }, (_, i) => `  - mac: ${macOf(i)}\n    name: ${nameOf(i)}\n`).join("")}`,
  );
  const stateDir = path.join(dir, "state");
  const fleetDir = path.join(dir, "fleet-answers");
  if (o.discovery) {
    // The smallest fleet directory: enough for discovery (the tests never fetch an approved answer).
    mkdirSync(fleetDir);
    writeFileSync(path.join(fleetDir, "site.yaml"), "version: 1\n");
  }
  const options = (httpPort: number): ServeOptions => ({
    dhcp: "off",
    listen: "127.0.0.1",
    tftpPort: 0,
    httpPort,
    netbootDir: netboot.dir,
    ipxeDir: path.join(dir, "no-ipxe"),
    nodesFile,
    stateDir,
    tokenTtlSeconds: 3600,
    knownOnly: false,
    ...(o.timeouts ? { timeouts: o.timeouts } : {}),
    ...(o.fleetRack ? { store: o.storeDir ?? path.join(dir, "fleet"), rack: o.fleetRack } : {}),
    ...(o.discovery ? { fleetDir } : {}),
  });
  const rig: Rig = {
    server: await BootServer.start(options(0)),
    base: "",
    dir,
    stateDir,
    adminToken: "",
    restart: async () => {
      const port = Number(new URL(rig.base).port);
      await rig.server.close();
      rig.server = await BootServer.start(options(port));
    },
    close: async () => {
      await rig.server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  rig.base = rig.server.info.http;
  rig.adminToken = readFileSync(path.join(stateDir, ADMIN_TOKEN_FILE), "utf8").trim();
  return rig;
}

// --- nodes, through the server's own HTTP inputs ----------------------------------------------

/** The node's boot script (moves it to "script"); returns the token on its kernel command line. */
export async function bootScript(base: string, mac: string): Promise<string> {
  const text = await (await fetch(`${base}/boot/${mac.replaceAll(":", "-")}.ipxe`)).text();
  const token = /kvmstrap\.token=(\S+)/.exec(text)?.[1];
  if (!token) throw new Error(`no token in ${mac}'s script: ${text.slice(0, 200)}`);
  return token;
}

/** A netboot download as the node's initramfs makes it (?node= names it). */
export async function download(base: string, mac: string, file: string): Promise<void> {
  const r = await fetch(`${base}/netboot/${file}?node=${encodeURIComponent(mac)}`);
  await r.arrayBuffer();
  if (!r.ok) throw new Error(`${file} for ${mac}: ${r.status}`);
}

export const lifecycle = (phase: string, detail?: string) => ({
  type: "node",
  phase,
  time: new Date().toISOString(),
  ...(detail ? { detail } : {}),
});
export const step = (id: string, phase: "started" | "finished") => ({
  type: "step",
  phase,
  id,
  summary: id,
  time: new Date().toISOString(),
});

/** One event to the node's intake with its token; returns the HTTP status. */
export async function postEvent(base: string, mac: string, token: string, body: unknown): Promise<number> {
  const r = await fetch(`${base}/v1/nodes/${mac}/events`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  await r.arrayBuffer();
  return r.status;
}

/**
 * Node i's walk to "installed": script, kernel and initrd downloads, the appliance's reports and
 * apply steps. Every 100th node fails its install instead. Returns its token.
 */
export async function walkNode(base: string, i: number): Promise<string> {
  const mac = macOf(i);
  const token = await bootScript(base, mac);
  await download(base, mac, "vmlinuz");
  await download(base, mac, "initrd.img");
  const post = async (body: unknown) => {
    const status = await postEvent(base, mac, token, body);
    if (status !== 204) throw new Error(`event for ${mac}: ${status}`);
  };
  await post(lifecycle("appliance-up"));
  for (const id of ["kvm.modules", "network.bridges", "storage.pools"]) {
    await post(step(id, "started"));
    await post(step(id, "finished"));
  }
  await post(
    i % 100 === 99 ? lifecycle("failed", "storage.pools: disk /dev/sdb is busy") : lifecycle("installed"),
  );
  return token;
}

/** Runs fn for 0..n-1, `width` at a time. */
export async function pool(n: number, width: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, n) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

// --- the browser ------------------------------------------------------------------------------

export interface Chromium {
  context: BrowserContext;
  page: Page;
  close: () => Promise<void>;
}

/** Debian's chromium, headless, with a fresh profile that is removed on close. */
export async function launchChromium(): Promise<Chromium> {
  const profile = mkdtempSync(path.join(os.tmpdir(), `kvms-web-chromium-${process.pid}-`));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
    viewport: { width: 1280, height: 800 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/** The text as the operator sees it (rendered: hidden parts left out, line breaks where blocks end). */
export function seen(l: Locator): Promise<string> {
  // biome-ignore lint/performance/useDomNodeTextContent: the rendered text is the point here
  return l.innerText();
}
