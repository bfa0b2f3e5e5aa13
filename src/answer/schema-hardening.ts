// The answer's hardening of libvirt on the host (libvirt's own guidance): qemu's seccomp sandbox
// pinned on, and remote libvirt either off or TLS only with client certificates from the host's
// PKI (kvmstrap pki). Kept apart from schema.ts, which places it under `hardening:`. What is checked
// on the host (sVirt, the device allow-list, consoles, secrets) is `kvmstrap verify`'s hardening.*.
import { z } from "zod";

export const hardening = z
  .strictObject({
    seccompSandbox: z
      .boolean()
      .default(true)
      .describe("qemu.conf seccomp_sandbox = 1: every guest's qemu runs under its seccomp filter"),
    remoteLibvirt: z
      .enum(["off", "tls"])
      .optional()
      .describe(
        "off: no network listener (libvirtd-tcp/-tls sockets disabled); tls: TLS only, client certificates from the host's CA verified, never plain TCP",
      ),
  })
  .describe("libvirt hardening kvmstrap applies (verified by kvmstrap verify's hardening.* checks)");

export type Hardening = z.infer<typeof hardening>;
