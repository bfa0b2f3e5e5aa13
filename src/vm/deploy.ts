// `deployVm`: one VM from a base image and a cloud-init seed, through the libvirt port. Each step
// reports on the event bus. Everything the deploy creates (its directory, the overlay, the seed, the
// domain definition, the record) is undone when a later step fails: a failed deploy leaves nothing
// behind. A deploy of a spec kvmstrap already deployed under that name converges (starts the domain
// when it is stopped) instead of failing or duplicating.
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { access, mkdir, readdir, rename, rm, rmdir, stat, unlink } from "node:fs/promises";
import path from "node:path";
import type { ApplyEvent, EventBus } from "../apply/events.js";
import type { HostReport } from "../detect/types.js";
import { type CommandRunner, ExecaRunner } from "../host/commands.js";
import { loadSeedTemplates, renderSeed, type SeedTemplates } from "./cloud-init.js";
import { renderDomainXml, type VmNic } from "./domain-xml.js";
import { DEFAULT_CACHE_DIR, listImages } from "./images.js";
import { type Libvirt, LibvirtError } from "./libvirt.js";
import { preflightVm } from "./preflight.js";
import { buildSeedIso } from "./seed-iso.js";
import {
  DEFAULT_VM_DIR,
  DeployError,
  readRecord,
  VM_NAME,
  type VmPaths,
  type VmRecord,
  vmPaths,
  writeRecord,
} from "./vm-state.js";

export { DEFAULT_VM_DIR, DeployError, type DeployErrorCode } from "./vm-state.js";

export type VmUser = { name: string; sshKeys: string[]; passwordHash?: string; sudo: boolean };

export type VmSpec = {
  name: string;
  /** A base image path (qcow2, or raw when it ends in .raw/.img), or the name of a cached image. */
  image: string;
  vcpus: number;
  memoryMiB: number;
  diskGiB: number;
  user: VmUser;
  /** A directory of cloud-init templates (user-data.yaml, meta-data.yaml, network-config.yaml). */
  template?: string;
  hostname?: string;
  nics: VmNic[];
  hostdevs?: string[];
  uefi?: { loader: string; nvram: string };
  hugepages?: boolean;
  /** Pin vCPUs and memory to the NUMA node nearest the hostdevs (node 0 when nothing ties it). */
  pin?: boolean;
  /** Direct kernel boot (tests, images without a bootloader). */
  kernel?: { path: string; initrd?: string; cmdline: string };
  packages?: string[];
  runcmd?: (string | string[])[];
};

export type DeployDeps = {
  libvirt: Libvirt;
  report: HostReport;
  /** Where overlays, seeds, logs and records go (default /var/lib/kvmstrap/vms). */
  dir?: string;
  /** The image cache consulted when spec.image is a name (default /var/lib/kvmstrap/images). */
  imageCache?: string;
  bus?: EventBus;
  /** cloud-init phone_home target, e.g. from startPhoneHomeServer(); "$INSTANCE_ID" is substituted. */
  phoneHome?: { url: string };
  runner?: CommandRunner;
  /** Where bridges are looked up (default /sys/class/net). */
  sysClassNet?: string;
};

export type DeployResult = {
  name: string;
  /** true: the domain already existed from this spec and was (re)started, nothing was created. */
  converged: boolean;
  domainType: "kvm" | "qemu";
  instanceId: string;
  overlay: string;
  seed: string;
  serialLog: string;
  base: string;
  warnings: string[];
  /** Milliseconds per step, in order. */
  steps: { id: string; durationMs: number }[];
};

const GiB = 2 ** 30;

/** A stable MAC for NIC i of a VM (locally administered, QEMU's 52:54:00 prefix). */
export function vmMac(name: string, index: number): string {
  const h = createHash("sha256").update(`${name}\0${index}`).digest();
  return `52:54:00:${[h[0], h[1], h[2]].map((b) => (b as number).toString(16).padStart(2, "0")).join(":")}`;
}

/** The spec as it is hashed: defaults filled in, so equal deployments hash equally. */
export function specHash(spec: VmSpec): string {
  const norm = {
    ...spec,
    hostname: spec.hostname ?? spec.name,
    nics: spec.nics.map((n, i) => ({ ...n, mac: (n.mac ?? vmMac(spec.name, i)).toLowerCase() })),
    hostdevs: spec.hostdevs ?? [],
    packages: spec.packages ?? [],
    runcmd: spec.runcmd ?? [],
    pin: spec.pin ?? false,
    hugepages: spec.hugepages ?? false,
  };
  const sorted = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sorted)
      : v && typeof v === "object"
        ? Object.fromEntries(
            Object.entries(v as Record<string, unknown>)
              .filter(([, x]) => x !== undefined)
              .sort(([a], [b]) => a.localeCompare(b))
              .map(([k, x]) => [k, sorted(x)]),
          )
        : v;
  return createHash("sha256")
    .update(JSON.stringify(sorted(norm)))
    .digest("hex");
}

type Step = <T>(id: string, summary: string, fn: () => Promise<T>, detail?: (v: T) => string) => Promise<T>;

function stepper(name: string, bus: EventBus | undefined, log: DeployResult["steps"]): Step {
  const emit = (e: Omit<Extract<ApplyEvent, { type: "step" }>, "type" | "time">) =>
    bus?.emit({ type: "step", time: new Date().toISOString(), ...e });
  return async (id, summary, fn, detail) => {
    const sid = `vm.${name}.${id}`;
    const t0 = performance.now();
    emit({ phase: "started", id: sid, summary });
    try {
      const v = await fn();
      const durationMs = Math.round(performance.now() - t0);
      log.push({ id, durationMs });
      emit({ phase: "finished", id: sid, summary, durationMs, ...(detail ? { detail: detail(v) } : {}) });
      return v;
    } catch (e) {
      const durationMs = Math.round(performance.now() - t0);
      const remediation = e instanceof DeployError ? e.remediation : undefined;
      emit({ phase: "failed", id: sid, summary, durationMs, error: (e as Error).message, remediation });
      throw e;
    }
  };
}

/** Turns a libvirt connection failure into the one clear message; other errors pass through. */
export function libvirtDown(e: unknown, uri: string): unknown {
  if (e instanceof LibvirtError && e.code === "connect") {
    return new DeployError(
      "libvirt-unreachable",
      `libvirtd is not running or not reachable at ${uri}: ${e.message}`,
      "start libvirtd (systemctl start libvirtd) or pass --connect with the right URI",
      { cause: e },
    );
  }
  return e;
}

const isNoSpace = (e: unknown) => {
  const err = e as NodeJS.ErrnoException & { stderr?: string };
  return err.code === "ENOSPC" || /No space left on device/i.test(`${err.message}\n${err.stderr ?? ""}`);
};

function noSpace(where: string, e: unknown): DeployError {
  return new DeployError(
    "no-space",
    `no space left on the device holding ${where}`,
    "free space there or pass another VM directory",
    {
      cause: e,
    },
  );
}

type ImageInfo = { path: string; format: "qcow2" | "raw"; virtualSize: number };

/** Resolves spec.image and proves qemu-img can read it in the format it claims. */
export async function checkImage(
  image: string,
  runner: CommandRunner,
  cacheDir: string = DEFAULT_CACHE_DIR,
): Promise<ImageInfo> {
  let file: string;
  let format: "qcow2" | "raw";
  if (image.includes("/")) {
    file = path.resolve(image);
    format = /\.(raw|img)$/i.test(file) ? "raw" : "qcow2";
  } else {
    const cached = (await listImages(cacheDir)).find((i) => i.name === image);
    if (!cached) {
      throw new DeployError(
        "unknown-image",
        `unknown image "${image}": not a path and not in the image cache ${cacheDir}`,
        "kvmstrap image list shows the cache; kvmstrap image pull|import adds to it",
      );
    }
    file = cached.path;
    format = cached.format;
  }
  try {
    await access(file, constants.R_OK);
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === "ENOENT";
    throw new DeployError(
      "unknown-image",
      missing ? `image ${file} does not exist` : `image ${file} is not readable: ${(e as Error).message}`,
      "kvmstrap image list shows the cached images",
    );
  }
  if (!(await runner.which("qemu-img"))) {
    throw new DeployError("failed", "qemu-img is not installed (Debian package qemu-utils)");
  }
  const r = await runner.run("qemu-img", ["info", "-f", format, "--output=json", file], {
    timeoutMs: 30_000,
  });
  const why = () =>
    r.stderr
      .trim()
      .split("\n")[0]
      ?.replace(/^qemu-img: /, "") || `exit ${r.exitCode}`;
  if (r.exitCode !== 0) {
    throw new DeployError(
      "corrupt-image",
      `image ${file} is corrupt or not a ${format} image: ${why()}`,
      "re-pull or re-import the image",
    );
  }
  if (format === "qcow2") {
    const c = await runner.run("qemu-img", ["check", "-f", "qcow2", file], { timeoutMs: 120_000 });
    // 0: clean; 3: leaked clusters only (harmless); anything else: corruption or a read error.
    if (c.exitCode !== 0 && c.exitCode !== 3) {
      throw new DeployError(
        "corrupt-image",
        `image ${file} is corrupt: qemu-img check: ${c.stderr.trim().split("\n")[0] || c.stdout.trim().split("\n").at(-1)}`,
        "re-pull or re-import the image",
      );
    }
  }
  const info = JSON.parse(r.stdout) as { "virtual-size"?: number };
  return { path: file, format, virtualSize: info["virtual-size"] ?? 0 };
}

function validateSpec(spec: VmSpec): void {
  const bad = (m: string) => {
    throw new DeployError("invalid", `VM ${spec.name}: ${m}`);
  };
  if (!VM_NAME.test(spec.name)) bad("a VM name is 1-63 lower-case letters, digits and '-'");
  if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1 || spec.vcpus > 512) bad("vcpus must be 1-512");
  if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 64) bad("memory must be at least 64 MiB");
  if (!(spec.diskGiB > 0)) bad("disk size must be positive");
  if (spec.nics.length === 0) bad("at least one NIC (--network or --bridge)");
}

/** The spec's cloud-init templates (the default set without a template), as a clear error when unusable. */
function seedTemplates(spec: VmSpec): SeedTemplates {
  try {
    return loadSeedTemplates(spec.template);
  } catch (e) {
    throw new DeployError(
      "invalid",
      `VM ${spec.name}: unknown or unusable template ${spec.template ?? "(default)"}: ${(e as Error).message}`,
      "a template is a directory with user-data.yaml, meta-data.yaml and network-config.yaml",
    );
  }
}

async function checkNics(spec: VmSpec, deps: DeployDeps): Promise<string> {
  const sysNet = deps.sysClassNet ?? "/sys/class/net";
  const networks = spec.nics.some((n) => n.kind === "network" || n.kind === "hostdev-network")
    ? await deps.libvirt.netList()
    : [];
  for (const n of spec.nics) {
    if (n.kind === "bridge") {
      const ok = await stat(path.join(sysNet, n.bridge, "bridge")).then(
        () => true,
        () => false,
      );
      if (!ok) {
        throw new DeployError(
          "no-bridge",
          `bridge ${n.bridge} does not exist on this host`,
          "create it first (kvmstrap plan/apply with a bridge), or use --network",
        );
      }
    } else if (n.kind === "network" || n.kind === "hostdev-network") {
      const net = networks.find((x) => x.name === n.network);
      if (!net) {
        throw new DeployError(
          "no-network",
          `libvirt network ${n.network} does not exist`,
          `virsh -c ${deps.libvirt.uri} net-list --all shows the networks`,
        );
      }
      if (!net.active) {
        throw new DeployError(
          "no-network",
          `libvirt network ${n.network} is not active`,
          `virsh -c ${deps.libvirt.uri} net-start ${n.network}`,
        );
      }
    }
  }
  return spec.nics
    .map((n) =>
      n.kind === "bridge" ? `bridge ${n.bridge}` : `${n.kind} ${"network" in n ? n.network : n.dev}`,
    )
    .join(", ");
}

/** The overlay: qcow2 on the base (never a copy), resized to diskGiB; written beside and renamed. */
async function createOverlay(runner: CommandRunner, base: ImageInfo, file: string, diskGiB: number) {
  const size = Math.round(diskGiB * GiB);
  if (size < base.virtualSize) {
    throw new DeployError(
      "invalid",
      `disk ${diskGiB} GiB is smaller than the image (${(base.virtualSize / GiB).toFixed(2)} GiB)`,
    );
  }
  const tmp = `${file}.tmp-${process.pid}`;
  const r = await runner.run(
    "qemu-img",
    ["create", "-q", "-f", "qcow2", "-F", base.format, "-b", base.path, tmp, String(size)],
    { timeoutMs: 60_000 },
  );
  if (r.exitCode !== 0) {
    await unlink(tmp).catch(() => {});
    const err = Object.assign(new Error(`qemu-img create: ${r.stderr.trim() || `exit ${r.exitCode}`}`), {
      stderr: r.stderr,
    });
    if (isNoSpace(err)) throw noSpace(file, err);
    throw new DeployError("failed", err.message);
  }
  try {
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/** Files and definitions this deploy created, undone in reverse order on failure. */
class Undo {
  private readonly actions: { what: string; fn: () => Promise<void> }[] = [];
  add(what: string, fn: () => Promise<void>) {
    this.actions.push({ what, fn });
  }
  async run(): Promise<string[]> {
    const problems: string[] = [];
    for (const a of this.actions.reverse()) {
      try {
        await a.fn();
      } catch (e) {
        problems.push(`${a.what}: ${(e as Error).message}`);
      }
    }
    this.actions.length = 0;
    return problems;
  }
}

async function converge(spec: VmSpec, deps: DeployDeps, p: VmPaths, step: Step, result: DeployResult) {
  const lv = deps.libvirt;
  const record = await readRecord(deps.dir ?? DEFAULT_VM_DIR, spec.name);
  const xml = await lv.domainXml(spec.name).catch(() => "");
  if (!record || record.specHash !== specHash(spec) || !xml.includes(p.overlay)) {
    throw new DeployError(
      "name-taken",
      `name taken: a domain named ${spec.name} already exists${record ? " with a different spec" : " and was not deployed by kvmstrap"}`,
      `pick another --name, or kvmstrap vm delete ${spec.name} first`,
    );
  }
  const state = await lv.domainState(spec.name);
  await step(
    "converge",
    `${spec.name} exists from the same spec (${state})`,
    async () => {
      if (state !== "running") await lv.start(spec.name);
      return state;
    },
    (s) => (s === "running" ? "already running" : `was ${s}: started`),
  );
  return {
    ...result,
    converged: true,
    domainType: record.domainType,
    instanceId: record.instanceId,
    base: record.base,
  };
}

export async function deployVm(spec: VmSpec, deps: DeployDeps): Promise<DeployResult> {
  const runner = deps.runner ?? new ExecaRunner();
  const vmDir = deps.dir ?? DEFAULT_VM_DIR;
  const lv = deps.libvirt;
  const p = vmPaths(vmDir, spec.name);
  const steps: DeployResult["steps"] = [];
  const step = stepper(spec.name, deps.bus, steps);
  const warnings: string[] = [];
  const result: DeployResult = {
    name: spec.name,
    converged: false,
    domainType: "qemu",
    instanceId: "",
    overlay: p.overlay,
    seed: p.seed,
    serialLog: p.serialLog,
    base: "",
    warnings,
    steps,
  };
  const undo = new Undo();
  try {
    validateSpec(spec);
    const templates = seedTemplates(spec);
    const exists = await step("name", `check the name ${spec.name} is free`, () =>
      lv.domainExists(spec.name),
    );
    if (exists) return await converge(spec, deps, p, step, result);
    const base = await step(
      "image",
      `check the image ${spec.image}`,
      () => checkImage(spec.image, runner, deps.imageCache),
      (i) => `${i.path} (${i.format}, ${(i.virtualSize / GiB).toFixed(2)} GiB)`,
    );
    result.base = base.path;
    await step(
      "nics",
      "check the NICs' bridges and networks",
      () => checkNics(spec, deps),
      (d) => d,
    );
    const nics = spec.nics.map((n, i) => ({ ...n, mac: n.mac ?? vmMac(spec.name, i) }));
    const pre = await step(
      "preflight",
      "check space, devices and CPUs",
      () => preflightVm(spec, { report: deps.report, libvirt: lv, vmDir }),
      (r) => r.summary,
    );
    warnings.push(...pre.warnings);

    await step("dir", `create ${p.dir}`, async () => {
      await mkdir(vmDir, { recursive: true });
      try {
        await mkdir(p.dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        // A directory left by something else: never adopt its files, only reuse an empty one.
        const left = await readdir(p.dir);
        if (left.length) {
          throw new DeployError(
            "name-taken",
            `name taken: ${p.dir} already holds files (${left.join(", ")}) but no domain ${spec.name} exists`,
            `remove ${p.dir} if it is stale`,
          );
        }
        return;
      }
      undo.add(`remove ${p.dir}`, () => rmdir(p.dir));
    });

    await step(
      "overlay",
      `create the overlay on ${path.basename(base.path)}`,
      async () => {
        undo.add(`remove ${p.overlay}`, () => rm(p.overlay, { force: true }));
        await createOverlay(runner, base, p.overlay, spec.diskGiB);
      },
      () => `${p.overlay} (${spec.diskGiB} GiB, backing ${base.path})`,
    );

    const seed = renderSeed(
      {
        hostname: spec.hostname ?? spec.name,
        user: spec.user,
        packages: spec.packages ?? [],
        runcmd: spec.runcmd ?? [],
        ...(deps.phoneHome ? { phoneHomeUrl: deps.phoneHome.url } : {}),
        // No network-config: cloud-init's fallback (DHCP on the first NIC) works on every renderer.
      },
      templates,
    );
    result.instanceId = seed.instanceId;
    await step(
      "seed",
      "build the cloud-init seed",
      async () => {
        undo.add(`remove ${p.seed}`, () => rm(p.seed, { force: true }));
        try {
          await buildSeedIso(seed, p.seed);
        } catch (e) {
          if (isNoSpace(e)) throw noSpace(p.seed, e);
          throw e;
        }
      },
      () => `${p.seed} (instance-id ${seed.instanceId})`,
    );

    const usable = deps.report.kvm.probe.verdict === "usable";
    const domainType = usable ? "kvm" : "qemu";
    result.domainType = domainType;
    if (!usable) {
      warnings.push(
        `KVM is not usable here (${deps.report.kvm.probe.detail}): the VM runs under TCG emulation, much slower`,
      );
    }
    const placement = pre.placement;
    const xml = renderDomainXml({
      name: spec.name,
      domainType,
      vcpus: spec.vcpus,
      memoryMiB: spec.memoryMiB,
      disk: { path: p.overlay, format: "qcow2" },
      seed: { path: p.seed },
      nics,
      hostdevs: spec.hostdevs,
      uefi: spec.uefi,
      hugepages: spec.hugepages,
      vhostNet: pre.vhostNet,
      ...(placement?.cpus.length ? { pinning: { cpus: placement.cpus, node: placement.node } } : {}),
      kernel: spec.kernel,
      serialLog: p.serialLog,
    });
    await step(
      "define",
      `define the domain (${domainType})`,
      async () => {
        await lv.defineDomain(xml);
        undo.add(`undefine ${spec.name}`, async () => {
          await lv.destroy(spec.name).catch(() => {});
          await lv.undefineDomain(spec.name, { nvram: Boolean(spec.uefi) });
        });
      },
      () => [...warnings, placement ? `placement: ${placement.reason}` : ""].filter(Boolean).join("; "),
    );

    const record: VmRecord = {
      version: 1,
      name: spec.name,
      specHash: specHash(spec),
      base: base.path,
      baseFormat: base.format,
      overlay: p.overlay,
      seed: p.seed,
      serialLog: p.serialLog,
      instanceId: seed.instanceId,
      domainType,
      created: new Date().toISOString(),
    };
    undo.add(`remove ${p.record}`, () => rm(p.record, { force: true }));
    undo.add(`remove ${p.serialLog}`, () => rm(p.serialLog, { force: true }));
    await writeRecord(vmDir, record).catch((e) => {
      throw isNoSpace(e) ? noSpace(p.record, e) : e;
    });
    await step("start", `start ${spec.name}`, () => lv.start(spec.name));
    return result;
  } catch (e) {
    const problems = await undo.run();
    const err = libvirtDown(e, lv.uri);
    if (problems.length && err instanceof Error) {
      err.message += ` (and cleaning up failed: ${problems.join("; ")})`;
    }
    throw err;
  }
}
