// What the functional KVM probe reports: its verdict and each stage's outcome. The probe (a host
// port) owns this shape; the host report (src/detect/types.ts) embeds it.
import { z } from "zod";

export const probeVerdict = z.enum(["usable", "unusable", "not-run", "unavailable"]);

export const kvmProbe = z.object({
  verdict: probeVerdict,
  /** What was run and what it showed, in one sentence. */
  detail: z.string(),
  stages: z.array(z.object({ name: z.string(), ok: z.boolean(), ms: z.number(), detail: z.string() })),
  cached: z.boolean(),
});

export type ProbeVerdict = z.infer<typeof probeVerdict>;
export type KvmProbe = z.infer<typeof kvmProbe>;
