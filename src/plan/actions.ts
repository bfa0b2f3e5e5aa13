// The plan's vocabulary: ordered actions, each with what it needs afterwards (nothing, a module
// reload, a reboot) and enough of the prior state to undo it. Actions are plain data so the same
// plan can be printed as a diff, serialised with --json, journaled, and replayed after a reboot.
// Defined once, as zod schemas: the TypeScript types are inferred from them, and a plan read back
// (`apply --plan FILE`, a journal) is parsed with the same schema it was written from.
import { z } from "zod";

export const effectSchema = z.enum(["none", "module-reload", "network", "reboot"]);
export type Effect = z.infer<typeof effectSchema>;

const absolutePath = z.string().startsWith("/", "must be an absolute path");
const argv = z.array(z.string()).min(1, "must be a non-empty list of strings");

const actionBase = {
  /** Stable within a plan: "<section>.<what>", e.g. "kvm.modprobe-conf" or "vfio.bind.0000:01:00.0". */
  id: z.string().min(1, "must be a non-empty string"),
  /** One line for people: what and why. */
  summary: z.string(),
  effect: effectSchema,
  /** What to do when the action fails (apply shows it with the failure). Optional. */
  remediation: z.string().optional(),
};

/** Create or replace a file. The inverse restores `previous` (null: the file did not exist). */
export const writeFileActionSchema = z.object({
  kind: z.literal("write-file"),
  ...actionBase,
  path: absolutePath,
  content: z.string(),
  mode: z.number().int().min(0).max(0o7777, "must be a permission number (e.g. 420 for 0644)"),
  previous: z.string().nullable(),
});

/** Remove a file that kvmstrap manages. The inverse writes `previous` back. */
export const removeFileActionSchema = z.object({
  kind: z.literal("remove-file"),
  ...actionBase,
  path: absolutePath,
  previous: z.string().nullable(),
});

/** Write a value to a sysfs attribute (live state). The inverse writes `previous` back, when known. */
export const writeSysfsActionSchema = z.object({
  kind: z.literal("write-sysfs"),
  ...actionBase,
  path: absolutePath,
  value: z.string(),
  previous: z.string().nullable(),
});

/** Run a program. `undo` is the command that reverses it (null: nothing to reverse, e.g. update-grub
 *  whose inverse, regenerating once the files are restored, is the undo of an earlier action that
 *  checks the tool is there). `check` skips the run when it exits 0. */
export const runCommandActionSchema = z.object({
  kind: z.literal("run-command"),
  ...actionBase,
  argv,
  undo: argv.nullable(),
  check: argv.nullable(),
  /** Positions in argv that hold a secret (a password hash): shown as "[redacted]" wherever the
   *  action is rendered for people (plan diffs, step events, errors, logs). */
  secretArgs: z.array(z.number().int().nonnegative()).optional(),
});

/** The argv of a command as people may see it: secret positions replaced. The one place that decides. */
export function argvForPeople(a: {
  argv: readonly string[];
  secretArgs?: readonly number[] | undefined;
}): string[] {
  if (!a.secretArgs?.length) return [...a.argv];
  return a.argv.map((arg, i) => (a.secretArgs?.includes(i) ? "[redacted]" : arg));
}

/** A VM's disk: a qcow2 overlay backed by a base image (a cached image's name or an absolute path),
 *  never a copy. In place when the file exists on that backing file; the inverse removes it. */
export const vmOverlayActionSchema = z.object({
  kind: z.literal("vm-overlay"),
  ...actionBase,
  path: absolutePath,
  image: z.string().min(1),
  /** Where a cached image's name is looked up. */
  cacheDir: absolutePath,
  sizeBytes: z.number().int().positive(),
});

/** A VM's cloud-init NoCloud seed ISO holding these three documents. In place when the file holds the
 *  same bytes; the inverse removes it. */
export const vmSeedActionSchema = z.object({
  kind: z.literal("vm-seed"),
  ...actionBase,
  path: absolutePath,
  userData: z.string(),
  metaData: z.string(),
  networkConfig: z.string(),
});

/** A libvirt domain, through the libvirt port. define-domain: in place when the domain exists with
 *  this spec's marker (`specHash`, carried in the XML's metadata); the inverse undefines it.
 *  start-domain: in place when it runs; the inverse powers it off. */
export const libvirtActionSchema = z.discriminatedUnion("op", [
  z.object({
    kind: z.literal("libvirt"),
    op: z.literal("define-domain"),
    ...actionBase,
    name: z.string().min(1),
    xml: z.string().min(1),
    specHash: z.string().min(1),
    /** Remove the UEFI NVRAM with the definition. */
    nvram: z.boolean(),
    /** Files the domain writes while it runs (its serial console log): removed with its definition. */
    logs: z.array(absolutePath).default([]),
  }),
  z.object({
    kind: z.literal("libvirt"),
    op: z.literal("start-domain"),
    ...actionBase,
    name: z.string().min(1),
  }),
  /** A libvirt network (NAT or isolated): in place when a network of this name has this `uuid`
   *  (derived from its definition); the inverse undefines it. start-network: in place when active;
   *  the inverse stops it. */
  z.object({
    kind: z.literal("libvirt"),
    op: z.literal("define-network"),
    ...actionBase,
    name: z.string().min(1),
    xml: z.string().min(1),
    uuid: z.string().min(1),
    autostart: z.boolean(),
  }),
  z.object({
    kind: z.literal("libvirt"),
    op: z.literal("start-network"),
    ...actionBase,
    name: z.string().min(1),
  }),
]);

export const actionSchema = z.discriminatedUnion("kind", [
  writeFileActionSchema,
  removeFileActionSchema,
  writeSysfsActionSchema,
  runCommandActionSchema,
  vmOverlayActionSchema,
  vmSeedActionSchema,
  libvirtActionSchema,
]);

export type WriteFileAction = z.infer<typeof writeFileActionSchema>;
export type RemoveFileAction = z.infer<typeof removeFileActionSchema>;
export type WriteSysfsAction = z.infer<typeof writeSysfsActionSchema>;
export type RunCommandAction = z.infer<typeof runCommandActionSchema>;
export type VmOverlayAction = z.infer<typeof vmOverlayActionSchema>;
export type VmSeedAction = z.infer<typeof vmSeedActionSchema>;
export type LibvirtAction = z.infer<typeof libvirtActionSchema>;
export type Action = z.infer<typeof actionSchema>;
export type ActionKind = Action["kind"];

/** Actions whose effect goes through the libvirt port or makes a VM's files. */
export const isVmAction = (a: Action): a is VmOverlayAction | VmSeedAction | LibvirtAction =>
  a.kind === "vm-overlay" || a.kind === "vm-seed" || a.kind === "libvirt";

export const PLAN_SCHEMA_ID = "kvmstrap.plan/1";

export const refusalSchema = z.object({
  path: z.string(),
  reason: z.string(),
  /** The rule that refused (a rule set's id), when one did. */
  ruleId: z.string().optional(),
});

/** What must hold after the reboot: kernel parameters in /proc/cmdline, devices on vfio-pci. */
export const expectSchema = z.object({
  cmdlineParams: z.array(z.string()),
  vfio: z.array(z.string()),
  iommuGroups: z.boolean().optional(),
});

export const planSchema = z
  .object({
    schema: z.literal(PLAN_SCHEMA_ID),
    /** sha256 of the answer file's canonical JSON, so a resumed apply knows it runs the same plan. */
    answerDigest: z.string().default(""),
    actions: z.array(actionSchema),
    /** Reasons the plan refused something, each with the answer path it concerns. */
    refusals: z.array(refusalSchema).default([]),
    needsReboot: z.boolean(),
    expect: expectSchema.optional(),
  })
  .superRefine((plan, ctx) => {
    const seen = new Set<string>();
    plan.actions.forEach((a, i) => {
      if (seen.has(a.id))
        ctx.addIssue({ code: "custom", path: ["actions", i, "id"], message: `duplicate id "${a.id}"` });
      seen.add(a.id);
    });
  });

export type Refusal = z.infer<typeof refusalSchema>;
export type PlanExpect = z.infer<typeof expectSchema>;
export type Plan = z.infer<typeof planSchema>;
