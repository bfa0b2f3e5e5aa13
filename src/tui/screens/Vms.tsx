// VMs: the answer file's `vms:` entries, as `kvmstrap vm deploy --answer FILE` will deploy them after
// the host is applied. `a` adds one, a prompt per field of the schema's vmEntry (each checked by the
// schema as it is typed); `x` removes the selected one.
import { Box } from "ink";
import { type ReactNode, useState } from "react";
import { vmEntry, vmNic } from "../../answer/schema.js";
import { bridgeOf, type VmInput, withVms } from "../draft.js";
import type { ScreenProps } from "../types.js";
import { Line, ListView, move, NoteLine, Prompt, useHold, useKeys } from "../ui.js";

type Step = "name" | "template" | "image" | "vcpus" | "memoryMiB" | "diskGiB" | "nic" | "user" | "sshKey";
const STEPS: Step[] = ["name", "template", "image", "vcpus", "memoryMiB", "diskGiB", "nic", "user", "sshKey"];
const LABELS: Record<Step, string> = {
  name: "VM name",
  template: "cloud-init template dir (empty: built-in)",
  image: "image (cached name or /path)",
  vcpus: "vCPUs",
  memoryMiB: "memory MiB",
  diskGiB: "disk GiB",
  nic: "NIC: br BRIDGE or net NETWORK",
  user: "login user",
  sshKey: "ssh public key (paste; empty for none)",
};

type Parsed = { ok: true; value: unknown } | { ok: false; message: string };
const fromZod = (r: {
  success: boolean;
  data?: unknown;
  error?: { issues: { message: string }[] };
}): Parsed =>
  r.success ? { ok: true, value: r.data } : { ok: false, message: r.error?.issues[0]?.message ?? "invalid" };
const num = (v: string) => (/^\d+(\.\d+)?$/.test(v) ? Number(v) : Number.NaN);

/** One typed value, checked by the very schema field it fills. */
function parseStep(step: Step, v: string): Parsed {
  const s = vmEntry.shape;
  switch (step) {
    case "name":
      return fromZod(s.name.safeParse(v));
    case "template":
      return v ? fromZod(s.template.safeParse(v)) : { ok: true, value: undefined };
    case "image":
      return fromZod(s.image.safeParse(v));
    case "vcpus":
      return fromZod(s.vcpus.safeParse(num(v)));
    case "memoryMiB":
      return fromZod(s.memoryMiB.safeParse(num(v)));
    case "diskGiB":
      return fromZod(s.diskGiB.safeParse(num(v)));
    case "nic": {
      const m = /^(br|bridge|net|network)\s+(\S+)$/.exec(v);
      if (!m) return { ok: false, message: 'give "br NAME" (a bridge) or "net NAME" (a libvirt network)' };
      const nic = m[1]?.startsWith("br") ? { bridge: m[2] } : { network: m[2] };
      return fromZod(vmNic.safeParse(nic));
    }
    case "user":
      return fromZod(s.user.shape.name.safeParse(v));
    case "sshKey":
      return v ? fromZod(s.user.shape.sshKeys.safeParse([v])) : { ok: true, value: [] };
  }
}

const nicText = (n: Record<string, unknown>) =>
  "network" in n ? `net ${n.network}` : "bridge" in n ? `br ${n.bridge}` : "sriov" in n ? "VF" : "macvtap";

export function Vms({ draft, setDraft, theme, width, height, setHold }: ScreenProps): ReactNode {
  const vms = draft.vms ?? [];
  const [sel, setSel] = useState(0);
  const [step, setStep] = useState<number | null>(null);
  const [attempt, setAttempt] = useState(0);
  const [values, setValues] = useState<Partial<Record<Step, string>>>({});
  const [note, setNote] = useState("");
  useHold(setHold, step !== null ? "all" : "none");
  const bridge = bridgeOf(draft);
  const defaults: Record<Step, string> = {
    name: `vm-${vms.length + 1}`,
    template: "",
    image: "debian-12",
    vcpus: "2",
    memoryMiB: "2048",
    diskGiB: "20",
    nic: bridge ? `br ${bridge.name}` : "net default",
    user: "ops",
    sshKey: "",
  };
  const finish = (all: Partial<Record<Step, string>>) => {
    const val = (s: Step) => {
      const r = parseStep(s, (all[s] ?? "").trim());
      return r.ok ? r.value : undefined;
    };
    const entry = {
      name: val("name"),
      ...(val("template") ? { template: val("template") } : {}),
      image: val("image"),
      vcpus: val("vcpus"),
      memoryMiB: val("memoryMiB"),
      diskGiB: val("diskGiB"),
      user: { name: val("user"), sshKeys: val("sshKey") },
      nics: [val("nic")],
    } as VmInput;
    const r = vmEntry.safeParse(entry);
    if (!r.success) return setNote(`refused: ${r.error.issues[0]?.message ?? "invalid VM"}`);
    setNote(`added VM ${entry.name}`);
    setDraft((d) => withVms(d, [...(d.vms ?? []), entry]));
    setSel(vms.length);
  };
  const submit = (v: string) => {
    if (step === null) return;
    const s = STEPS[step] as Step;
    const value = v.trim();
    const r = parseStep(s, value);
    if (!r.ok) {
      setNote(`refused ${LABELS[s]}: ${r.message}`);
      setValues((x) => ({ ...x, [s]: value }));
      return setAttempt((a) => a + 1);
    }
    if (s === "name" && vms.some((x) => x.name === value)) {
      setNote(`refused: a VM named ${value} is already in the answer`);
      return setAttempt((a) => a + 1);
    }
    const all = { ...values, [s]: value };
    setValues(all);
    setNote("");
    if (step + 1 < STEPS.length) return setStep(step + 1);
    setStep(null);
    finish(all);
  };
  useKeys((input, key) => {
    if (input === "a") {
      setValues({});
      setNote("");
      return setStep(0);
    }
    if (input === "x" && vms[sel]) {
      const name = vms[sel]?.name;
      setDraft((d) =>
        withVms(
          d,
          (d.vms ?? []).filter((_, i) => i !== sel),
        ),
      );
      setSel(Math.max(0, Math.min(sel, vms.length - 2)));
      return setNote(`removed VM ${name}`);
    }
    setSel(move(sel, vms.length, input, key));
  }, step === null);
  const rows = vms.map((v) => {
    const e = v as Record<string, unknown>;
    const nics = Array.isArray(e.nics)
      ? (e.nics as Record<string, unknown>[]).map(nicText).join(", ")
      : "net default";
    return {
      text: `${String(e.name)}: ${String(e.image)}, ${String(e.vcpus)} vCPU, ${String(e.memoryMiB)} MiB, ${String(e.diskGiB)} GiB; ${nics}`,
    };
  });
  const current = step === null ? null : (STEPS[step] as Step);
  return (
    <Box flexDirection="column">
      <Line
        text={
          vms.length
            ? `${vms.length} VM${vms.length === 1 ? "" : "s"} in the answer file; after apply: kvmstrap vm deploy --answer`
            : "No VMs in the answer file yet: a adds one (or start with --answer FILE)."
        }
        width={width}
        theme={theme}
      />
      <Line text="" width={width} theme={theme} />
      {rows.length ? (
        <ListView
          rows={rows}
          selected={sel}
          height={Math.max(2, height - 6)}
          width={width}
          theme={theme}
          focused={step === null}
        />
      ) : null}
      <Line text="" width={width} theme={theme} />
      {current ? (
        <Prompt
          key={`${current}-${attempt}`}
          label={`${step === null ? 0 : step + 1}/${STEPS.length} ${LABELS[current]}`}
          initial={values[current] ?? defaults[current]}
          width={width}
          theme={theme}
          onSubmit={submit}
          onCancel={() => {
            setStep(null);
            setNote("VM not added");
          }}
        />
      ) : (
        <Line
          text="a adds a VM, x removes the selected one; n reviews the plan."
          width={width}
          theme={theme}
        />
      )}
      <NoteLine note={note} width={width} theme={theme} />
    </Box>
  );
}
