// The VM actions as steps: a VM's overlay and seed (files under the target, made by qemu-img and
// the in-process ISO writer) and its libvirt domain (through the libvirt port). Each is checkable
// (skipped when already in place, so a re-run after kill -9 converges), refuses to replace what it
// did not make (a disk, a seed or a domain of the same name), and has an inverse for undo.
import { mkdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../core/atomic-write.js";
import type { CommandRunner } from "../host/commands.js";
import type { TargetFs } from "../host/target.js";
import type { LibvirtAction, VmOverlayAction, VmSeedAction } from "../plan/actions.js";
import { KVMSTRAP_XMLNS } from "../vm/domain-xml.js";
import type { Libvirt } from "../vm/libvirt.js";
import {
  checkImage,
  createOverlay,
  GiB,
  isNoSpace,
  noSpace,
  overlayInfo,
  resolveImage,
} from "../vm/overlay.js";
import { assertSpace } from "../vm/preflight.js";
import { seedIsoBytes } from "../vm/seed-iso.js";
import { DeployError } from "../vm/vm-state.js";
import type { Before } from "./journal.js";
import {
  captureNetworkBefore,
  carryOutNetwork,
  describeNetwork,
  isNetworkAction,
  networkApplied,
  revertNetwork,
} from "./libvirt-network-steps.js";

export type VmAction = VmOverlayAction | VmSeedAction | LibvirtAction;

export interface VmStepContext {
  target: TargetFs;
  runner: CommandRunner;
  /** The libvirt connection VM actions go through. */
  libvirt?: Libvirt | undefined;
}

// The engine journals a failure as text; a caller that wants the error itself (a deploy telling
// "name taken", exit 2, from "libvirt failed", exit 1) finds it here, by the options it applied with.
const lastError = new WeakMap<object, unknown>();

/** The last error a VM step raised under these apply options, if any. */
export function vmStepError(ctx: object): Error | undefined {
  const e = lastError.get(ctx);
  return e instanceof Error ? e : undefined;
}

async function remembered<T>(ctx: VmStepContext, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    lastError.set(ctx, e);
    throw e;
  }
}

function port(ctx: VmStepContext): Libvirt {
  if (!ctx.libvirt) {
    throw new Error("this plan defines VMs and no libvirt connection was given to apply it through");
  }
  return ctx.libvirt;
}

export function describeVm(a: VmAction): string {
  switch (a.kind) {
    case "vm-overlay":
      return `create the overlay ${a.path} (${(a.sizeBytes / GiB).toFixed(2).replace(/\.00$/, "")} GiB) on ${a.image}`;
    case "vm-seed":
      return `write the cloud-init seed ${a.path}`;
    case "libvirt":
      if (isNetworkAction(a)) return describeNetwork(a);
      return a.op === "define-domain" ? `define the libvirt domain ${a.name}` : `start the domain ${a.name}`;
  }
}

/** The image an overlay action names, as a real path under the target. */
async function baseOf(a: VmOverlayAction, ctx: VmStepContext) {
  const image = a.image.includes("/") ? ctx.target.real(a.image) : a.image;
  return resolveImage(image, ctx.target.real(a.cacheDir));
}

const seedBytes = (a: VmSeedAction) =>
  seedIsoBytes({ userData: a.userData, metaData: a.metaData, networkConfig: a.networkConfig });

async function readBytes(file: string): Promise<Buffer | null> {
  try {
    return await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/** Whether a define-domain action's domain exists, and whether it is this plan's definition (its
 *  spec hash in the metadata), another kvmstrap spec's, or a domain kvmstrap did not define. */
async function domainOf(lv: Libvirt, a: { name: string; specHash?: string }) {
  if (!(await lv.domainExists(a.name))) return "absent";
  if (a.specHash === undefined) return "ours";
  const xml = await lv.domainXml(a.name);
  if (xml.includes(a.specHash)) return "ours";
  return xml.includes(KVMSTRAP_XMLNS) ? "other-spec" : "foreign";
}

export function isVmApplied(a: VmAction, ctx: VmStepContext): Promise<boolean> {
  return remembered(ctx, () => vmApplied(a, ctx));
}

async function vmApplied(a: VmAction, ctx: VmStepContext): Promise<boolean> {
  switch (a.kind) {
    case "vm-overlay": {
      const file = ctx.target.real(a.path);
      if (!(await ctx.target.exists(a.path))) return false;
      const info = await overlayInfo(ctx.runner, file);
      const base = await baseOf(a, ctx).catch(() => null);
      return (
        info !== null &&
        info.format === "qcow2" &&
        base !== null &&
        info.backing !== null &&
        path.resolve(path.dirname(file), info.backing) === base.path &&
        info.virtualSize === a.sizeBytes
      );
    }
    case "vm-seed": {
      const now = await readBytes(ctx.target.real(a.path));
      return now?.equals(seedBytes(a)) === true;
    }
    case "libvirt": {
      // Without a connection nothing can be in place (a dry run says "would"; a run fails clearly).
      if (!ctx.libvirt) return false;
      const lv = ctx.libvirt;
      if (isNetworkAction(a)) return networkApplied(a, lv);
      if (a.op === "define-domain") return (await domainOf(lv, a)) === "ours";
      return (await lv.domainExists(a.name)) && (await lv.domainState(a.name)) === "running";
    }
  }
}

export async function captureVmBefore(a: VmAction, ctx: VmStepContext, createdDirs: () => Promise<string[]>) {
  switch (a.kind) {
    case "vm-overlay":
    case "vm-seed":
      return { content: null, createdDirs: await createdDirs() } satisfies Before;
    case "libvirt": {
      const lv = port(ctx);
      if (isNetworkAction(a)) return captureNetworkBefore(a, lv);
      if (a.op === "define-domain") return { content: null } satisfies Before;
      const exists = await lv.domainExists(a.name);
      return { content: exists ? await lv.domainState(a.name) : null } satisfies Before;
    }
  }
}

const taken = (what: string, name: string) =>
  new DeployError(
    "name-taken",
    `name taken: ${what}`,
    `pick another VM name, or kvmstrap vm delete ${name} first (virsh undefine for a domain kvmstrap did not deploy)`,
  );
const vmName = (p: string) => path.basename(path.dirname(p));

export function performVm(a: VmAction, ctx: VmStepContext): Promise<void> {
  return remembered(ctx, () => carryOut(a, ctx));
}

async function carryOut(a: VmAction, ctx: VmStepContext): Promise<void> {
  switch (a.kind) {
    case "vm-overlay": {
      const file = ctx.target.real(a.path);
      await ctx.target.cleanStale(a.path);
      // Never replace a disk: a file there that is not this overlay is someone's data.
      if (await ctx.target.exists(a.path))
        throw taken(`${a.path} exists and is not this VM's overlay`, vmName(a.path));
      // A cached image by its name, so its format is the cache's, not guessed from a file name.
      const image = a.image.includes("/") ? ctx.target.real(a.image) : a.image;
      const info = await checkImage(image, ctx.runner, ctx.target.real(a.cacheDir));
      await assertSpace(vmName(a.path), path.dirname(file), a.sizeBytes);
      await mkdir(path.dirname(file), { recursive: true });
      await createOverlay(ctx.runner, info, file, a.sizeBytes);
      return;
    }
    case "vm-seed": {
      await ctx.target.cleanStale(a.path);
      if (await ctx.target.exists(a.path))
        throw taken(`${a.path} exists and holds another seed`, vmName(a.path));
      try {
        await writeFileAtomic(ctx.target.real(a.path), seedBytes(a), 0o644);
      } catch (e) {
        throw isNoSpace(e) ? noSpace(a.path, e) : e;
      }
      return;
    }
    case "libvirt": {
      const lv = port(ctx);
      if (isNetworkAction(a)) return carryOutNetwork(a, lv);
      if (a.op === "define-domain") {
        const state = await domainOf(lv, a);
        if (state === "foreign")
          throw taken(`a domain named ${a.name} already exists and was not deployed by kvmstrap`, a.name);
        if (state === "other-spec")
          throw taken(`a domain named ${a.name} already exists with a different spec`, a.name);
        if (state === "absent") await lv.defineDomain(a.xml);
        return;
      }
      if ((await lv.domainState(a.name)) !== "running") await lv.start(a.name);
      return;
    }
  }
}

/** The inverse as an operation description: what undo will do. */
export function vmInverse(a: VmAction):
  | { kind: "remove-file"; path: string }
  | {
      kind: "libvirt";
      op: "undefine-domain" | "destroy-domain" | "undefine-network" | "destroy-network";
      name: string;
    } {
  switch (a.kind) {
    case "vm-overlay":
    case "vm-seed":
      return { kind: "remove-file", path: a.path };
    case "libvirt":
      if (isNetworkAction(a))
        return {
          kind: "libvirt",
          op: a.op === "define-network" ? "undefine-network" : "destroy-network",
          name: a.name,
        };
      return a.op === "define-domain"
        ? { kind: "libvirt", op: "undefine-domain", name: a.name }
        : { kind: "libvirt", op: "destroy-domain", name: a.name };
  }
}

/** Puts a VM action back: removes the file it made, undefines or powers off the domain. Absent is
 *  fine (the VM may have been deleted since), so an interrupted undo can run again. */
export async function revertVm(a: VmAction, before: Before | undefined, ctx: VmStepContext): Promise<void> {
  switch (a.kind) {
    case "vm-overlay":
    case "vm-seed":
      await rm(ctx.target.real(a.path), { force: true });
      await ctx.target.cleanStale(a.path);
      for (const dir of [...(before?.createdDirs ?? [])].reverse()) await ctx.target.removeEmptyDir(dir);
      return;
    case "libvirt": {
      const lv = port(ctx);
      if (isNetworkAction(a)) return revertNetwork(a, before, lv);
      if (!(await lv.domainExists(a.name))) return;
      if (a.op === "start-domain") {
        if (before?.content !== "running" && (await lv.domainState(a.name)) !== "shut off")
          await lv.destroy(a.name);
        return;
      }
      if ((await domainOf(lv, a)) !== "ours") return;
      if ((await lv.domainState(a.name)) !== "shut off") await lv.destroy(a.name).catch(() => {});
      if (a.nvram) {
        // Some libvirt versions refuse --nvram for a domain without one.
        await lv.undefineDomain(a.name, { nvram: true }).catch(() => lv.undefineDomain(a.name));
      } else await lv.undefineDomain(a.name);
      for (const log of a.logs) {
        await rm(ctx.target.real(log), { force: true });
        await ctx.target.removeEmptyDir(path.dirname(log));
      }
      return;
    }
  }
}
