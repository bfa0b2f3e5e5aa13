// Does the disk an answer names already hold the install of that answer? The appliance's stick stays
// first in the boot order after an unattended install, so the machine boots it again: without this
// the agent would erase the host it has just installed, on every boot. The marker the install plan
// writes (INSTALL_MARKER on the partition named ROOT_PARTITION_NAME) is read WITHOUT mounting: a
// mount would replay the ext4 journal and change the disk, and a disk that is not ours may hold
// anything. The partition table is read by partx, the file by debugfs in catastrophic (read-only)
// mode at the partition's byte offset on the whole disk, so no partition node need exist.
import { z } from "zod";
import { type CommandRunner, ExecaRunner } from "../host/commands.js";
import { INSTALL_MARKER, type InstallMarker, ROOT_PARTITION_NAME } from "../plan/install-plan.js";

/** The marker is a few hundred bytes: anything beyond this is not ours. */
const MAX_MARKER_BYTES = 64 * 1024;
const TIMEOUT_MS = 15_000;

const markerSchema = z.object({
  schema: z.literal("kvmstrap.installed/1"),
  answerSha256: z.string().regex(/^[0-9a-f]{64}$/),
  version: z.string().max(100),
  installedAt: z.string().max(100),
  disk: z.object({
    device: z.string().max(4096),
    serial: z.string().max(200).nullable(),
    wwn: z.string().max(200).nullable(),
    sizeBytes: z.number().int().nonnegative().nullable(),
  }),
}) satisfies z.ZodType<InstallMarker>;

/** What the disk holds: the marker, or why there is none (a blank disk, another system, unreadable). */
export type InstalledFrom = { marker: InstallMarker } | { marker: null; why: string };

/** Reads the install marker of DEVICE (a whole disk) read-only, bounded in size and time. */
export async function installedFrom(
  device: string,
  runner: CommandRunner = new ExecaRunner(),
): Promise<InstalledFrom> {
  const table = await runner.run("partx", ["-g", "-P", "-o", "NR,START,NAME", device], {
    timeoutMs: TIMEOUT_MS,
  });
  if (table.timedOut)
    return { marker: null, why: `partx did not read ${device} within ${TIMEOUT_MS / 1000} s` };
  if (table.exitCode !== 0) return { marker: null, why: `no partition table on ${device}` };
  const rows = table.stdout.split("\n").map((l) => ({
    start: /\bSTART="(\d+)"/.exec(l)?.[1],
    name: /\bNAME="((?:[^"\\]|\\.)*)"/.exec(l)?.[1],
  }));
  const root = rows.find((r) => r.name === ROOT_PARTITION_NAME && r.start);
  if (!root?.start) return { marker: null, why: `no partition named "${ROOT_PARTITION_NAME}" on ${device}` };
  // partx counts START in 512-byte sectors whatever the disk's logical sector size.
  const at = `${device}?offset=${BigInt(root.start) * 512n}`;
  const cat = await runner.run(
    "sh",
    [
      "-c",
      // -c: catastrophic mode, opened read-only, no bitmaps read; head bounds what a foreign disk yields.
      'debugfs -c -R "cat $2" "$1" 2>/dev/null | head -c "$3"',
      "sh",
      at,
      INSTALL_MARKER,
      String(MAX_MARKER_BYTES + 1),
    ],
    { timeoutMs: TIMEOUT_MS },
  );
  if (cat.timedOut)
    return { marker: null, why: `debugfs did not read ${device} within ${TIMEOUT_MS / 1000} s` };
  const text = cat.stdout;
  if (!text.trim())
    return { marker: null, why: `no ${INSTALL_MARKER} on ${device}'s "${ROOT_PARTITION_NAME}"` };
  if (Buffer.byteLength(text) > MAX_MARKER_BYTES)
    return { marker: null, why: `${INSTALL_MARKER} on ${device} is larger than ${MAX_MARKER_BYTES} bytes` };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { marker: null, why: `${INSTALL_MARKER} on ${device} is not JSON` };
  }
  const parsed = markerSchema.safeParse(json);
  return parsed.success
    ? { marker: parsed.data }
    : { marker: null, why: `${INSTALL_MARKER} on ${device} is not kvmstrap's marker` };
}

export type ReinstallDecision = "install" | "already-installed";

/**
 * The same answer's install on the disk: leave it. No marker, or another answer's (the operator
 * changed the answer): install, under the rule set's usual verdict on erasing that disk.
 */
export function reinstallDecision(answerSha256: string, marker: InstallMarker | null): ReinstallDecision {
  return marker !== null && marker.answerSha256 === answerSha256 ? "already-installed" : "install";
}

/** How that line starts: the boot agent tells "left as it is" from "installed" by it. */
export const ALREADY_INSTALLED = "installed already: ";

/** The one line the CLI ends with (and the boot agent shows) when the disk is left as it is. */
export function alreadyInstalledLine(device: string, marker: InstallMarker): string {
  return (
    `${ALREADY_INSTALLED}${device} holds the install of this answer (sha256 ${marker.answerSha256.slice(0, 12)}, ` +
    `kvmstrap ${marker.version}, installed ${marker.installedAt}); nothing was erased: ` +
    "remove the boot medium or pick the disk in the firmware's boot menu (to erase it anyway: --force, " +
    "or kvmstrap.reinstall=1 on the appliance's command line)"
  );
}
