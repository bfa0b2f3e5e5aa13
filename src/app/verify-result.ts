// What `kvmstrap verify` finds, defined once (zod): the file /var/lib/kvmstrap/verify.json, the
// --json output and the one line the consoles show. A check is pass, fail, warn or unknown; only a
// fail fails the verification ("unknown" is what a tree or a missing tool cannot tell).
import { z } from "zod";

export const VERIFY_SCHEMA_ID = "kvmstrap.verify/1";
export const VERIFY_LINE_PREFIX = "KVMSTRAP-VERIFY:";

export const verifyStatusSchema = z.enum(["pass", "fail", "warn", "unknown"]);
export type VerifyStatus = z.infer<typeof verifyStatusSchema>;

export const verifyCheckSchema = z.strictObject({
  /** Stable: "module.kvm", "vfio.0000:01:00.0", "bridge.br0", "vm.boot"... */
  id: z.string().min(1),
  status: verifyStatusSchema,
  /** What the answer or plan promised. */
  expected: z.string(),
  /** What this host shows. */
  found: z.string(),
  /** Files and commands to look at next. */
  where: z.array(z.string()),
});
export type VerifyCheck = z.infer<typeof verifyCheckSchema>;

export const verifyResultSchema = z.strictObject({
  schema: z.literal(VERIFY_SCHEMA_ID),
  status: z.enum(["pass", "fail"]),
  time: z.string(),
  durationMs: z.number().nonnegative(),
  hostname: z.string().nullable(),
  kernel: z.string().nullable(),
  /** The machine root checked ("/": this running host). */
  root: z.string(),
  live: z.boolean(),
  /** Where the promises came from: an answer file, or the journal of the last apply run. */
  source: z.strictObject({
    kind: z.enum(["answer", "journal"]),
    file: z.string().optional(),
    runId: z.string().optional(),
    planDigest: z.string().optional(),
  }),
  counts: z.strictObject({
    pass: z.number().int(),
    fail: z.number().int(),
    warn: z.number().int(),
    unknown: z.number().int(),
  }),
  failed: z.array(z.string()),
  checks: z.array(verifyCheckSchema),
});
export type VerifyResult = z.infer<typeof verifyResultSchema>;

/** The one line the image tests grep the serial console for. */
export function verifyLine(r: Pick<VerifyResult, "status" | "failed">): string {
  if (r.status === "pass") return `${VERIFY_LINE_PREFIX} PASS`;
  return `${VERIFY_LINE_PREFIX} FAIL (${r.failed.length} failed: ${r.failed.join(", ")})`;
}

export function summarize(checks: VerifyCheck[]): Pick<VerifyResult, "status" | "counts" | "failed"> {
  const counts = { pass: 0, fail: 0, warn: 0, unknown: 0 };
  for (const c of checks) counts[c.status]++;
  const failed = checks.filter((c) => c.status === "fail").map((c) => c.id);
  return { status: failed.length ? "fail" : "pass", counts, failed };
}
