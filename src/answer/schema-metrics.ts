// The answer's metrics: `kvmstrap metrics` as a service of the host (plan/metrics-plan.ts renders
// it as kvmstrap-metrics.service). Kept apart from schema.ts, which places it under `metrics:`.
// The figures name every VM and disk of the host, so the exporter listens on the management
// address unless the answer names another: a wildcard (0.0.0.0, ::) only when written here.
import { isIP } from "node:net";
import { z } from "zod";

export const METRICS_PORT_DEFAULT = 9178;

export const metrics = z
  .strictObject({
    listen: z
      .string()
      .refine((a) => isIP(a) !== 0, "an IPv4 or IPv6 address (no name, no port)")
      .optional()
      .describe(
        "the address the exporter listens on (default: the host's management address; 0.0.0.0 or :: only if written here)",
      ),
    port: z
      .number()
      .int()
      .min(1)
      .max(65535)
      .default(METRICS_PORT_DEFAULT)
      .describe("the TCP port of GET /metrics"),
    vcpuStats: z
      .boolean()
      .default(false)
      .describe(
        "also per-vCPU time, wait and delay and the vCPU counts (kvmstrap metrics --vcpu-stats): one more qemu monitor query per running VM per scrape",
      ),
  })
  .describe("kvmstrap metrics as a systemd service: Prometheus figures of the host's VMs and of kvmstrap");

export type Metrics = z.infer<typeof metrics>;
