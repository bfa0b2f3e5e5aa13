// A VM's image put onto its disk on a cluster store (an iSCSI LUN, a file on NFS), once, and only
// while that disk is blank. A store's volume is made by the store's admin, not by kvmstrap, so it may
// already hold a guest (this VM's own, written by an earlier run or another member, or one the admin
// put there): a volume whose first or last MiB holds anything but zeros is used as it is and never
// written. Everything is asked of qemu's own tools (qemu-img, qemu-io) with qemu's block drivers, so
// the same code reaches a LUN through libiscsi (no kernel initiator needed), a file through libnfs,
// and a kernel pool's device or file; a CHAP password is given to qemu as a secret object read from
// its file, never on a command line.
//
// The write is safe to interrupt: the image goes on in two steps, everything after its first MiB,
// then the first MiB, so a volume stays blank (and the next run writes it again) until the whole
// image is on it.
import { z } from "zod";
import type { CommandResult, CommandRunner } from "../host/commands.js";

/** Words qemu's option syntax and a plan's command line take as they are. */
const word = z.string().regex(/^[\w.:@/+-]+$/, "letters, digits and . : @ / + - _ only");

/**
 * The volume as qemu's block layer opens it (blockdev options of its protocol node). The planner
 * writes it into the plan as JSON (`kvmstrap vm fill-disk --disk`), which reads it back with this.
 */
export const fillTargetSchema = z.discriminatedUnion("driver", [
  z
    .object({
      driver: z.literal("iscsi"),
      portal: word,
      target: word,
      lun: z.number().int().min(0).max(16383),
      user: word.optional(),
      initiatorName: word.optional(),
    })
    .strict(),
  z.object({ driver: z.literal("nfs"), server: word, path: word.startsWith("/") }).strict(),
  z.object({ driver: z.enum(["file", "host_device"]), filename: word.startsWith("/") }).strict(),
]);
export type FillTarget = z.infer<typeof fillTargetSchema>;

export interface FillOptions {
  /** The image file (qcow2 or raw) and its format. */
  image: { path: string; format: "qcow2" | "raw" };
  target: FillTarget;
  /** The file holding the iSCSI CHAP password (target.user's). */
  secretFile?: string;
  /** Size of a volume this makes where none exists yet (an NFS or plain file); a LUN has its own. */
  createBytes?: number;
  /** Progress lines for people (stderr in the CLI). */
  log?: (line: string) => void;
}

export type FillResult =
  | { outcome: "filled"; imageBytes: number; volumeBytes: number; created: boolean }
  | { outcome: "holds-data"; volumeBytes: number };

export class FillError extends Error {}

const MiB = 2 ** 20;
const SECRET_ID = "kvmstrap-fill-secret";
const QEMU_TIMEOUT_MS = 60_000;
/** qemu-img info's JSON for one image: a few KB. */
const INFO_MAX_BYTES = 1 * MiB;
/** Writing a whole image over the network: bounded, but generously (hours would be a hang). */
const CONVERT_TIMEOUT_MS = 2 * 60 * 60_000;

/** A value in qemu's option syntax: a comma is written twice. */
const opt = (v: string | number) => String(v).replaceAll(",", ",,");

/** The target's protocol node as options under `prefix` (file. below a raw node). */
export function protocolOptions(t: FillTarget, prefix: string, secret: boolean): string[] {
  const o = (k: string, v: string | number) => `${prefix}${k}=${opt(v)}`;
  switch (t.driver) {
    case "iscsi":
      return [
        o("driver", "iscsi"),
        o("transport", "tcp"),
        o("portal", t.portal),
        o("target", t.target),
        o("lun", t.lun),
        ...(t.user ? [o("user", t.user)] : []),
        ...(t.user && secret ? [o("password-secret", SECRET_ID)] : []),
        ...(t.initiatorName ? [o("initiator-name", t.initiatorName)] : []),
      ];
    case "nfs":
      return [o("driver", "nfs"), o("server.type", "inet"), o("server.host", t.server), o("path", t.path)];
    default:
      return [o("driver", t.driver), o("filename", t.filename)];
  }
}

/** The volume as a raw image, optionally a window of it (offset, size in bytes). */
function rawTarget(o: FillOptions, window: { offset?: number; size?: number } = {}): string {
  return [
    "driver=raw",
    ...(window.offset ? [`offset=${window.offset}`] : []),
    ...(window.size ? [`size=${window.size}`] : []),
    ...protocolOptions(o.target, "file.", o.secretFile !== undefined),
  ].join(",");
}

/** The image as a raw view of its guest bytes, optionally a window of them. */
function rawImage(o: FillOptions, window: { offset?: number; size?: number } = {}): string {
  const file = `file.driver=file,file.filename=${opt(o.image.path)}`;
  const node =
    o.image.format === "qcow2"
      ? `file.driver=qcow2,file.file.driver=file,file.file.filename=${opt(o.image.path)}`
      : file;
  return [
    "driver=raw",
    ...(window.offset ? [`offset=${window.offset}`] : []),
    ...(window.size ? [`size=${window.size}`] : []),
    node,
  ].join(",");
}

const secretArgs = (o: FillOptions) =>
  o.secretFile ? ["--object", `secret,id=${SECRET_ID},file=${opt(o.secretFile)}`] : [];

/** What a volume's URL looks like to people (no secret in it). */
export function describeTarget(t: FillTarget): string {
  switch (t.driver) {
    case "iscsi":
      return `iscsi://${t.portal}/${t.target}/${t.lun}`;
    case "nfs":
      return `nfs://${t.server}${t.path}`;
    default:
      return t.filename;
  }
}

function failed(what: string, r: CommandResult): FillError {
  const reason = r.timedOut
    ? "no answer in time"
    : r.exitCode === undefined
      ? "qemu-utils is not installed"
      : (r.stderr.trim().split("\n").pop() ?? `exit ${r.exitCode}`);
  return new FillError(`${what}: ${reason}`);
}

async function virtualSize(runner: CommandRunner, args: string[], what: string) {
  const r = await runner.run("qemu-img", ["info", "--output=json", ...args], {
    timeoutMs: QEMU_TIMEOUT_MS,
    maxBytes: INFO_MAX_BYTES,
  });
  if (r.exitCode !== 0 || r.timedOut || r.overflowed) return { size: null, r };
  const size = (JSON.parse(r.stdout) as { "virtual-size"?: unknown })["virtual-size"];
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0)
    throw new FillError(`${what}: qemu-img info gave no size`);
  return { size, r };
}

/**
 * Whether the volume reads as zeros in its first and last MiB (qemu-io's read -P 0 fails on any
 * other byte with "Pattern verification failed"; any other failure is an error, never "blank").
 */
async function isBlank(runner: CommandRunner, o: FillOptions, size: number): Promise<boolean> {
  const reads = ["-c", `read -P 0 0 ${Math.min(MiB, size)}`];
  const tail = Math.min(MiB, size - MiB);
  if (tail > 0) reads.push("-c", `read -P 0 ${size - tail} ${tail}`);
  const r = await runner.run("qemu-io", ["-r", ...secretArgs(o), "--image-opts", rawTarget(o), ...reads], {
    timeoutMs: QEMU_TIMEOUT_MS,
    maxBytes: INFO_MAX_BYTES,
  });
  if (r.exitCode === 0) return true;
  if (/Pattern verification failed/.test(r.stdout)) return false;
  throw failed(`reading ${describeTarget(o.target)}`, r);
}

export async function fillDisk(runner: CommandRunner, o: FillOptions): Promise<FillResult> {
  const log = o.log ?? (() => {});
  const where = describeTarget(o.target);
  const image = await virtualSize(runner, ["-f", o.image.format, o.image.path], o.image.path);
  if (image.size === null) throw failed(`reading the image ${o.image.path}`, image.r);

  let volume = await virtualSize(runner, [...secretArgs(o), "--image-opts", rawTarget(o)], where);
  let created = false;
  if (volume.size === null) {
    const t = o.target;
    const url = t.driver === "nfs" ? `nfs://${t.server}${t.path}` : t.driver === "file" ? t.filename : null;
    if (url === null || !/No such file|does not exist|NOENT/i.test(volume.r.stderr))
      throw failed(`opening ${where}`, volume.r);
    if (o.createBytes === undefined) throw new FillError(`${where} does not exist and no size was given`);
    log(`${where}: creating it (${o.createBytes} bytes)`);
    const r = await runner.run("qemu-img", ["create", "-q", "-f", "raw", url, String(o.createBytes)], {
      timeoutMs: QEMU_TIMEOUT_MS,
    });
    if (r.exitCode !== 0) throw failed(`creating ${where}`, r);
    created = true;
    volume = await virtualSize(runner, ["--image-opts", rawTarget(o)], where);
    if (volume.size === null) throw failed(`opening ${where}`, volume.r);
  }
  const volumeBytes = volume.size;
  if (!(await isBlank(runner, o, volumeBytes))) {
    log(`${where}: holds data; used as it is, nothing written`);
    return { outcome: "holds-data", volumeBytes };
  }
  if (image.size > volumeBytes)
    throw new FillError(`${where} is ${volumeBytes} bytes; the image ${o.image.path} needs ${image.size}`);

  const convert = async (window: { offset?: number; size?: number }, what: string) => {
    log(`${where}: writing ${what}`);
    const r = await runner.run(
      "qemu-img",
      [
        "convert",
        "-n",
        ...secretArgs(o),
        "--image-opts",
        rawImage(o, window),
        "--target-image-opts",
        rawTarget(o, window),
      ],
      { timeoutMs: CONVERT_TIMEOUT_MS },
    );
    if (r.exitCode !== 0) throw failed(`writing ${what} onto ${where}`, r);
  };
  const head = Math.min(MiB, image.size);
  if (image.size > head) await convert({ offset: head }, `the image after its first MiB`);
  await convert({ size: head }, "the image's first MiB (the volume counts as written from now on)");
  log(`${where}: ${image.size} bytes of ${o.image.path} written`);
  return { outcome: "filled", imageBytes: image.size, volumeBytes, created };
}
