// Boots the Debian test guest from a cloud-init NoCloud seed on a test-owned libvirtd (TCG) and
// proves it came up by several independent signals: domain state, cloud-init's phone_home, a DHCP
// lease, the guest agent (address, hostname, `cloud-init status --wait`, files the seed created).
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Libvirt } from "../../src/vm/libvirt.js";
import { VirshLibvirt } from "../../src/vm/virsh-libvirt.js";
import { createOverlay, domainXml, networkXml, sshPublicKey, TEST_NET, writeSeed } from "./guest-fixture.js";
import { ensureGuestImage, type GuestImage } from "./guest-image.js";
import { startTestLibvirtd, type TestLibvirtd } from "./libvirtd.js";

type PhoneHome = { path: string; form: URLSearchParams; at: number };

const id = randomBytes(3).toString("hex");
const name = `kvmstrap-e2e-${id}`;
const hostname = `kvst-e2e-${id}`;
let instanceId = "";
const mac = `52:54:00:${id.slice(0, 2)}:${id.slice(2, 4)}:${id.slice(4, 6)}`;
const sshKey = sshPublicKey(`e2e@${name}`);

let daemon: TestLibvirtd | undefined;
let lv: Libvirt;
let image: GuestImage;
let work: string;
let server: Server | undefined;
let phoneHome: Promise<PhoneHome>;
let startedAt = 0;
let failed = false;

/** Polls fn until it returns a value other than undefined; rethrows nothing until the deadline. */
async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await sleep(1000);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
}

function startPhoneHomeServer(): Promise<{ url: string; received: Promise<PhoneHome> }> {
  let deliver: (p: PhoneHome) => void = () => {};
  const received = new Promise<PhoneHome>((resolve) => (deliver = resolve));
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      res.end("ok\n");
      deliver({ path: req.url ?? "", form: new URLSearchParams(body), at: Date.now() });
    });
  });
  const s = server;
  return new Promise((resolve) =>
    s.listen(0, TEST_NET.host, () => {
      const { port } = s.address() as AddressInfo;
      resolve({ url: `http://${TEST_NET.host}:${port}/phone-home/$INSTANCE_ID`, received });
    }),
  );
}

beforeEach((ctx) => {
  ctx.onTestFailed(() => {
    failed = true;
  });
});

beforeAll(async () => {
  try {
    await setUp();
  } catch (e) {
    failed = true;
    throw e;
  }
});

async function setUp(): Promise<void> {
  const t0 = Date.now();
  image = await ensureGuestImage();
  console.log(`[e2e] guest image ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  daemon = await startTestLibvirtd();
  lv = new VirshLibvirt(daemon.uri);
  await lv.netDefine(networkXml());
  await lv.netStart(TEST_NET.name);
  await daemon.withHostLink(TEST_NET.bridge, `${TEST_NET.host}/${TEST_NET.prefix}`);
  const home = await startPhoneHomeServer();
  phoneHome = home.received;

  work = await mkdtemp(path.join("/var/tmp", "kvmstrap-e2e-"));
  const overlay = path.join(work, "root.qcow2");
  await createOverlay(image.qcow2, overlay);
  const written = await writeSeed({ dir: work, hostname, user: image.user, sshKey, phoneHome: home.url });
  const seed = written.iso;
  instanceId = written.instanceId;
  expect(instanceId).toMatch(/^[A-Za-z0-9._-]+$/);
  const serialLog = path.join(work, "serial.log");
  expect(await lv.defineDomain(domainXml({ name, image, overlay, seed, mac, serialLog }))).toBe(name);
  startedAt = Date.now();
  await lv.start(name);
}

afterAll(async () => {
  if (work && failed) {
    const log = await readFile(path.join(work, "serial.log"), "utf8").catch(() => "");
    console.log(`[e2e] serial console (last 40 lines):\n${log.split("\n").slice(-40).join("\n")}`);
  }
  if (daemon) {
    await lv.destroy(name).catch(() => {});
    await lv.undefineDomain(name).catch(() => {});
    await lv.netDestroy(TEST_NET.name).catch(() => {});
    await lv.netUndefine(TEST_NET.name).catch(() => {});
    await daemon.stop();
  }
  server?.close();
  if (work) await rm(work, { recursive: true, force: true });
  if (startedAt)
    console.log(`[e2e] total since domain start: ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
});

describe("a Debian guest deployed from a NoCloud seed on the test libvirtd", () => {
  it("runs", async () => {
    expect(await lv.domainState(name)).toBe("running");
    expect(await lv.listDomains()).toContainEqual({ name, state: "running" });
    expect(await lv.domainExists(name)).toBe(true);
    expect(await lv.domainXml(name)).toContain(`<mac address='${mac}'/>`);
  });

  it("phones home to the host with its instance id", async () => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("no phone_home within 240 s")), 240_000);
    });
    const call = await Promise.race([phoneHome, timeout]).finally(() => clearTimeout(timer));
    console.log(`[e2e] phone_home ${((call.at - startedAt) / 1000).toFixed(1)} s after start`);
    expect(call.path).toBe(`/phone-home/${instanceId}`);
    expect(call.form.get("instance_id")).toBe(instanceId);
    expect(call.form.get("hostname")).toBe(hostname);
  });

  it("has a DHCP lease on the test network, seen by domifaddr and net-dhcp-leases", async () => {
    const ifaces = await until("a lease", 60_000, async () => {
      const found = await lv.ifAddresses(name, "lease");
      return found.some((i) => i.addrs.length > 0) ? found : undefined;
    });
    const ipv4 = ifaces[0]?.addrs.find((a) => a.family === "ipv4");
    expect(ifaces[0]?.mac).toBe(mac);
    expect(ipv4?.address).toMatch(/^192\.168\.150\.\d+$/);
    const leases = await lv.netDhcpLeases(TEST_NET.name);
    expect(leases).toContainEqual(expect.objectContaining({ mac, address: ipv4?.address, prefix: 24 }));
  });

  it("answers through the guest agent with the same address and the hostname it was given", async () => {
    await until("the guest agent", 120_000, async () => ((await lv.agentPing(name)) ? true : undefined));
    const ifaces = await until("addresses from the agent", 60_000, async () => {
      const found = await lv.ifAddresses(name, "agent");
      return found.some((i) => i.mac === mac && i.addrs.some((a) => a.family === "ipv4")) ? found : undefined;
    });
    const lease = (await lv.ifAddresses(name, "lease"))[0]?.addrs.find((a) => a.family === "ipv4");
    const nic = ifaces.find((i) => i.mac === mac);
    expect(nic?.addrs.map((a) => a.address)).toContain(lease?.address);
    expect(await lv.agentHostname(name)).toBe(hostname);
  });

  it("finishes cloud-init, ran runcmd and installed the ssh key", async () => {
    const status = await lv.agentExec(name, "/usr/bin/cloud-init", ["status", "--wait"], {
      timeoutMs: 180_000,
    });
    expect([0, 2], `cloud-init status: ${status.stdout}${status.stderr}`).toContain(status.exitCode);
    expect(status.stdout).toMatch(/status: done/);
    const keys = await lv.agentExec(name, "/bin/cat", [`/home/${image.user}/.ssh/authorized_keys`]);
    expect(keys.exitCode).toBe(0);
    expect(keys.stdout).toContain(sshKey);
    const runcmd = await lv.agentExec(name, "/bin/cat", ["/var/tmp/kvmstrap-runcmd"]);
    expect(runcmd.stdout.trim()).toBe("runcmd-ok");
  });
});
