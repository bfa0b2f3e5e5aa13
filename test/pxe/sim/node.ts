// One simulated node through the whole chain, as the real parts do it: the PXE ROM (DHCP, TFTP of
// the iPXE binary), iPXE (DHCP with user class iPXE, the generic script, the node's own script,
// kernel and initrd over HTTP), the live system's initramfs (fetch= of the root image), the
// appliance's agent (appliance-up, its answer with the node's token, install events), then a
// second network boot that the server sends to the local disk, and the installed system's
// rebooted and verified reports. Every download is checked against the sha256 it must have.
import { NODE_PATHS } from "../../../src/app/node-protocol.js";
import type { ClientKind, DhcpPort, Identity } from "./dhcp.js";
import { httpCall } from "./http.js";
import { tftpGet } from "./tftp.js";

/** The stages in order; a run stops after `through`. */
export const STAGES = [
  "dhcp",
  "tftp",
  "ipxe-dhcp",
  "script",
  "kernel",
  "initrd",
  "rootfs",
  "appliance-up",
  "answer",
  "installing",
  "installed",
  "reboot",
  "local-boot",
  "rebooted",
  "verified",
] as const;
export type Stage = (typeof STAGES)[number];

/** The server state each stage must leave the node in (GET /v1/status), where the server tracks it. */
export const SERVER_STATE: Partial<Record<Stage, string>> = {
  dhcp: "offered",
  tftp: "tftp",
  "ipxe-dhcp": "ipxe",
  script: "script",
  kernel: "kernel",
  initrd: "initrd",
  rootfs: "rootfs",
  "appliance-up": "appliance-up",
  answer: "answer-fetched",
  installing: "installing",
  installed: "installed",
  "local-boot": "local-boot",
  rebooted: "rebooted",
  verified: "verified",
};

export interface NodeConfig {
  tftpPort: number;
  /** sha256 of each file the node may be sent, by name (iPXE binaries, netboot files). */
  sha256: Record<string, string>;
  /** Sent as the SMBIOS serial (the nodes file may find the node by it). */
  serial?: string;
  windowsize: number;
  blksize: number;
  kind: Exclude<ClientKind, "ipxe">;
  through: Stage;
  timeoutMs: number;
}

export interface NodeResult {
  mac: string;
  ok: boolean;
  /** The last stage that completed. */
  reached: Stage | null;
  failed?: { stage: Stage; error: string };
  ms: Partial<Record<Stage, number>>;
  dhcpRetries: number;
  tftpResends: number;
  bytes: number;
}

const chainUrl = (script: string) => /^chain\s+(\S+)/m.exec(script)?.[1];

/** iPXE's expansion of the settings the generic script uses (${mac:hexhyp}, ${uuid}, ...). */
function expand(url: string, id: Identity, serial: string | undefined): string {
  const settings: Record<string, string> = {
    mac: id.mac.replaceAll(":", "-"),
    uuid: id.uuid,
    serial: encodeURIComponent(serial ?? ""),
    asset: "",
  };
  return url.replace(/\$\{([a-z]+)(?::[a-z]+)?\}/g, (whole, name: string) => settings[name] ?? whole);
}

function kernelLine(script: string): { url: string; args: Map<string, string> } | undefined {
  const m = /^kernel\s+(\S+)\s+(.*?)(?:\s+&&.*)?$/m.exec(script);
  if (!m?.[1] || m[2] === undefined) return undefined;
  const args = new Map<string, string>();
  for (const word of m[2].split(/\s+/)) {
    const eq = word.indexOf("=");
    if (eq > 0) args.set(word.slice(0, eq), word.slice(eq + 1));
  }
  return { url: m[1], args };
}

export async function bootNode(port: DhcpPort, id: Identity, c: NodeConfig): Promise<NodeResult> {
  const r: NodeResult = {
    mac: id.mac,
    ok: false,
    reached: null,
    ms: {},
    dhcpRetries: 0,
    tftpResends: 0,
    bytes: 0,
  };
  const last = STAGES.indexOf(c.through);
  let stage: Stage = "dhcp";
  const step = async <T>(s: Stage, fn: () => Promise<T>): Promise<T | undefined> => {
    if (STAGES.indexOf(s) > last) return undefined;
    stage = s;
    const t = performance.now();
    const out = await fn();
    r.ms[s] = Math.round(performance.now() - t);
    r.reached = s;
    return out;
  };
  const check = (name: string, got: { status: number; sha256: string; bytes: number }) => {
    if (got.status !== 200) throw new Error(`${name}: HTTP ${got.status}`);
    const want = c.sha256[name];
    if (want && got.sha256 !== want) throw new Error(`${name}: sha256 ${got.sha256} is not ${want}`);
    r.bytes += got.bytes;
  };
  const http = (url: string, extra: Partial<Parameters<typeof httpCall>[0]> = {}) =>
    httpCall({ url, local: address, timeoutMs: c.timeoutMs, ...extra });
  let address = "";

  let tftpServer = "";
  let bootFile = "";
  let scriptUrl = "";
  const romLease = async () => {
    const pxe = await port.lease(c.kind, id);
    r.dhcpRetries += pxe.retries;
    address = pxe.yiaddr;
    if (!pxe.bootFile || pxe.bootFile.includes("://")) throw new Error(`PXE boot file "${pxe.bootFile}"`);
    tftpServer = pxe.nextServer !== "0.0.0.0" ? pxe.nextServer : pxe.serverId;
    bootFile = pxe.bootFile;
  };
  const fetchIpxe = async () => {
    const got = await tftpGet({
      server: tftpServer,
      port: c.tftpPort,
      local: address,
      file: bootFile,
      blksize: c.blksize,
      windowsize: c.windowsize,
      deadlineMs: c.timeoutMs,
    });
    r.tftpResends += got.resends;
    const want = c.sha256[bootFile];
    if (want && got.sha256 !== want) throw new Error(`${bootFile}: sha256 ${got.sha256} is not ${want}`);
    if (got.tsize !== undefined && got.tsize !== got.bytes)
      throw new Error(`${bootFile}: tsize ${got.tsize}, got ${got.bytes} bytes`);
    r.bytes += got.bytes;
  };
  const ipxeLease = async () => {
    const ipxe = await port.lease("ipxe", id);
    r.dhcpRetries += ipxe.retries;
    if (ipxe.yiaddr !== address) throw new Error(`iPXE leased ${ipxe.yiaddr}, the ROM had ${address}`);
    if (!/^https?:\/\//.test(ipxe.bootFile))
      throw new Error(`iPXE boot file "${ipxe.bootFile}" is not a URL`);
    scriptUrl = ipxe.bootFile;
  };

  try {
    await step("dhcp", romLease);
    await step("tftp", fetchIpxe);
    await step("ipxe-dhcp", ipxeLease);
    /** The generic script, then the node's own (what `chain` leads to). */
    const nodeScript = async (url: string) => {
      const generic = await http(url, { keep: true });
      if (generic.status !== 200) throw new Error(`${url}: HTTP ${generic.status}`);
      const chain = chainUrl(generic.text);
      if (!chain) throw new Error(`${url}: no chain line in the script`);
      const own = await http(expand(chain, id, c.serial), { keep: true });
      if (own.status !== 200) throw new Error(`node script: HTTP ${own.status}: ${own.text.slice(0, 200)}`);
      return own.text;
    };
    let kernel: ReturnType<typeof kernelLine>;
    let initrdUrl = "";
    await step("script", async () => {
      const text = await nodeScript(scriptUrl);
      kernel = kernelLine(text);
      initrdUrl = /^initrd\s+(\S+)/m.exec(text)?.[1] ?? "";
      if (!kernel || !initrdUrl)
        throw new Error(`node script has no kernel or initrd line: ${text.slice(0, 300)}`);
    });
    const args = kernel?.args ?? new Map<string, string>();
    await step("kernel", async () => check("vmlinuz", await http(kernel?.url ?? "")));
    await step("initrd", async () => check("initrd.img", await http(initrdUrl)));
    await step("rootfs", async () => {
      const fetch = args.get("fetch");
      if (!fetch) throw new Error("no fetch= on the kernel command line");
      check("filesystem.squashfs", await http(fetch));
    });
    const server = args.get("kvmstrap.server") ?? "";
    const token = args.get("kvmstrap.token") ?? "";
    const auth = { authorization: `Bearer ${token}` };
    const report = async (phase: string) => {
      const res = await http(`${server}${NODE_PATHS.events(id.mac)}`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({
          type: "node",
          phase,
          time: new Date().toISOString(),
          detail: `simulated ${phase}`,
        }),
        keep: true,
      });
      if (res.status !== 204) throw new Error(`POST ${phase}: HTTP ${res.status} ${res.text.slice(0, 200)}`);
    };
    await step("appliance-up", async () => {
      if (!server || !token)
        throw new Error("no kvmstrap.server or kvmstrap.token on the kernel command line");
      await report("appliance-up");
    });
    await step("answer", async () => {
      const url = args.get("kvmstrap.answer");
      if (!url)
        throw new Error("no kvmstrap.answer on the kernel command line (is the node in the nodes file?)");
      const answer = await http(url, { headers: auth, keep: true });
      if (answer.status !== 200)
        throw new Error(`answer: HTTP ${answer.status} ${answer.text.slice(0, 200)}`);
      if (!/^version:\s*1/m.test(answer.text)) throw new Error("the answer is not an answer file");
      await report("answer-fetched");
    });
    await step("installing", () => report("installing"));
    await step("installed", () => report("installed"));
    // The installed node boots from the network again (boot order unchanged): the server must send it
    // to its local disk.
    await step("reboot", async () => {
      await romLease();
      await fetchIpxe();
      await ipxeLease();
    });
    await step("local-boot", async () => {
      const text = await nodeScript(scriptUrl);
      if (/^kernel\s/m.test(text) || !/^exit 1\s*$/m.test(text))
        throw new Error(`an installed node was not sent to its local disk: ${text.slice(0, 200)}`);
    });
    await step("rebooted", () => report("rebooted"));
    await step("verified", () => report("verified"));
    r.ok = true;
  } catch (e) {
    r.failed = { stage, error: (e as Error).message };
  }
  return r;
}
