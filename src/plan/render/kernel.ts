// Kernel module options, modules to load at boot, the kernel command line (GRUB or systemd-boot) and
// hugepages. The command-line editors are idempotent: applying the same edit twice changes nothing.

const HEADER = "# Managed by kvmstrap: edits are overwritten.\n";
const MODULE = /^[a-zA-Z0-9_-]+$/;

function checkModule(m: string): string {
  if (!MODULE.test(m)) throw new Error(`kernel render: invalid module name ${JSON.stringify(m)}`);
  return m;
}

/** /etc/modprobe.d/kvmstrap.conf */
export function renderModprobeConf(opts: {
  vendorModule: "kvm_intel" | "kvm_amd";
  nested?: boolean;
  vfioSoftdeps?: string[];
}): string {
  const lines: string[] = [];
  if (opts.nested !== undefined) lines.push(`options ${opts.vendorModule} nested=${opts.nested ? 1 : 0}`);
  // The host driver must wait for vfio-pci, so the bind unit (driver_override) claims the device first.
  for (const d of [...new Set(opts.vfioSoftdeps ?? [])])
    lines.push(`softdep ${checkModule(d)} pre: vfio-pci`);
  return HEADER + lines.map((l) => `${l}\n`).join("");
}

/** /etc/modules-load.d/kvmstrap.conf */
export function renderModulesLoad(modules: string[]): string {
  return HEADER + [...new Set(modules)].map((m) => `${checkModule(m)}\n`).join("");
}

/** /etc/sysctl.d/60-kvmstrap-hugepages.conf */
export function renderHugepagesSysctl(pages2M: number): string {
  if (!Number.isInteger(pages2M) || pages2M < 0)
    throw new Error(`kernel render: bad hugepage count ${pages2M}`);
  return `${HEADER}vm.nr_hugepages = ${pages2M}\n`;
}

const keyOf = (param: string): string => param.split("=", 1)[0] ?? param;

/**
 * Edits a whitespace-separated parameter list. `add`: a bare flag is appended when absent; key=value
 * replaces the first parameter with that key (in place) and drops later ones. `remove`: a bare key
 * drops every parameter with that key; key=value drops only that exact parameter.
 */
export function editParams(params: string[], add: string[], remove: string[] = []): string[] {
  let out = params.filter(
    (p) => !remove.some((r) => (r.includes("=") ? p === r : keyOf(p) === r)) && p.length > 0,
  );
  for (const a of add) {
    if (/\s/.test(a) || a.length === 0)
      throw new Error(`kernel cmdline: invalid parameter ${JSON.stringify(a)}`);
    const key = keyOf(a);
    const first = out.findIndex((p) => keyOf(p) === key);
    if (first === -1) {
      out.push(a);
      continue;
    }
    out = out.filter((p, i) => i === first || keyOf(p) !== key);
    out[first] = a;
  }
  return out;
}

/** An assignment of a kernel command line variable GRUB reads ("export" allowed). */
const GRUB_ASSIGN = /^(\s*(?:export\s+)?)(GRUB_CMDLINE_LINUX(?:_DEFAULT)?)=(.*)$/;

type ShellValue = { quote: '"' | "'" | ""; body: string; rest: string };

/** A shell assignment's value: its quoting, the words inside, and what follows (a comment). */
function splitValue(raw: string): ShellValue {
  const q = raw[0];
  if (q === '"' || q === "'") {
    let i = 1;
    while (i < raw.length && raw[i] !== q) i += q === '"' && raw[i] === "\\" ? 2 : 1;
    if (i < raw.length) return { quote: q, body: raw.slice(1, i), rest: raw.slice(i + 1) };
  }
  const m = /^(\S*)(.*)$/.exec(raw);
  return { quote: "", body: m?.[1] ?? "", rest: m?.[2] ?? "" };
}

export type ConfigText = { path: string; content: string };

/**
 * Edits the kernel command line across /etc/default/grub and the drop-ins grub-mkconfig sources
 * after it (/etc/default/grub.d/*.cfg), given in that order, as the one shell script they are. The
 * parameters go into the last assignment of GRUB_CMDLINE_LINUX (the one that wins; appended to the
 * first file when there is none). Every other GRUB_CMDLINE_LINUX(_DEFAULT) assignment loses the
 * parameters that would contradict them: GRUB_CMDLINE_LINUX_DEFAULT comes later on the kernel's
 * line, so an `intel_iommu=off` left there would win over the `intel_iommu=on` added.
 */
export function editGrubFiles(files: ConfigText[], add: string[], remove: string[] = []): ConfigText[] {
  const lines = files.map((f) => f.content.split("\n"));
  let target: [number, number] | null = null;
  lines.forEach((ls, f) => {
    ls.forEach((l, i) => {
      if (GRUB_ASSIGN.exec(l)?.[2] === "GRUB_CMDLINE_LINUX") target = [f, i];
    });
  });
  const addKeys = new Set(add.map(keyOf));
  const conflicts = [...remove, ...addKeys];
  lines.forEach((ls, f) => {
    ls.forEach((l, i) => {
      const m = GRUB_ASSIGN.exec(l);
      if (!m) return;
      const v = splitValue(m[3] ?? "");
      const words = v.body.split(/\s+/).filter(Boolean);
      const isTarget = target !== null && target[0] === f && target[1] === i;
      const params = isTarget ? editParams(words, add, remove) : editParams(words, [], conflicts);
      if (params.join(" ") === words.join(" ")) return;
      const quote = v.quote || '"';
      for (const p of add) {
        if (p.includes(quote) || /[$`\\]/.test(p))
          throw new Error(`${m[2]}: parameter ${p} cannot be written inside ${quote} quotes`);
      }
      ls[i] = `${m[1]}${m[2]}=${quote}${params.join(" ")}${quote}${v.rest}`;
    });
  });
  const out = files.map((f, i) => ({ path: f.path, content: (lines[i] ?? []).join("\n") }));
  const first = out[0];
  if (target === null && first && add.length) {
    const base = first.content === "" || first.content.endsWith("\n") ? first.content : `${first.content}\n`;
    first.content = `${base}GRUB_CMDLINE_LINUX="${editParams([], add, remove).join(" ")}"\n`;
  }
  return out;
}

/** editGrubFiles for /etc/default/grub alone. */
export function editGrubDefault(current: string, add: string[], remove: string[] = []): string {
  return editGrubFiles([{ path: "/etc/default/grub", content: current }], add, remove)[0]?.content ?? "";
}

/** Rewrites systemd-boot's /etc/kernel/cmdline (one line of parameters). */
export function editKernelCmdline(current: string, add: string[], remove: string[] = []): string {
  const params = editParams(current.trim().split(/\s+/), add, remove);
  return `${params.join(" ")}\n`;
}
