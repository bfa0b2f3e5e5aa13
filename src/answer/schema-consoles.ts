// The answer's remote consoles: VNC and/or SPICE for every VM kvmstrap deploys, over TLS with the
// host's own PKI (kvmstrap pki), on the management address only. Kept apart from schema.ts, which
// places it under `consoles:`. The rule set (rules/consoles.ts) decides what is unsafe (a wildcard
// address, no TLS); this only says what may be written.
import { z } from "zod";

const address = z
  .string()
  .regex(/^([0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*)$/, "an IPv4 or IPv6 address");

export const consoles = z
  .strictObject({
    vnc: z.boolean().default(false).describe("a VNC console on each VM (qemu's VNC server)"),
    spice: z.boolean().default(false).describe("a SPICE console on each VM (all channels on its TLS port)"),
    listen: address.describe("the host's management address: the only address the consoles listen on"),
    tls: z
      .boolean()
      .default(true)
      .describe("TLS with the host's CA (kvmstrap pki); false only for a console reached by SSH tunnel"),
    verifyClients: z
      .boolean()
      .default(true)
      .describe("VNC: only clients holding a certificate from the host's CA connect (vnc_tls_x509_verify)"),
    // Optional without a default: an answer written before it keeps its digest.
    tickets: z
      .boolean()
      .optional()
      .describe(
        "consoles locked until `kvmstrap vm console NAME --ticket` sets a one-time password (VNC and SPICE)",
      ),
  })
  .describe("remote consoles (VNC, SPICE) over TLS on the management network");

export type Consoles = z.infer<typeof consoles>;
