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

const GRUB_LINE = /^(\s*(?:export\s+)?GRUB_CMDLINE_LINUX=)(.*)$/;

function unquote(v: string): { body: string; quote: string } {
  const t = v.trim();
  const q = t[0];
  if ((q === '"' || q === "'") && t.endsWith(q) && t.length >= 2) return { body: t.slice(1, -1), quote: q };
  return { body: t, quote: '"' };
}

/**
 * Rewrites GRUB_CMDLINE_LINUX in /etc/default/grub, keeping every other line (GRUB_CMDLINE_LINUX_DEFAULT,
 * comments) byte for byte. The last assignment wins in shell, so that one is edited; absent, one is added.
 */
export function editGrubDefault(current: string, add: string[], remove: string[] = []): string {
  const lines = current.split("\n");
  let at = -1;
  lines.forEach((l, i) => {
    if (GRUB_LINE.test(l)) at = i;
  });
  if (at === -1) {
    const params = editParams([], add, remove);
    const base = current === "" || current.endsWith("\n") ? current : `${current}\n`;
    return `${base}GRUB_CMDLINE_LINUX="${params.join(" ")}"\n`;
  }
  const m = GRUB_LINE.exec(lines[at] ?? "");
  const { body, quote } = unquote(m?.[2] ?? "");
  const params = editParams(body.split(/\s+/), add, remove);
  for (const p of params) {
    if (p.includes(quote)) throw new Error(`GRUB_CMDLINE_LINUX: parameter ${p} contains the quote character`);
  }
  lines[at] = `${m?.[1]}${quote}${params.join(" ")}${quote}`;
  return lines.join("\n");
}

/** Rewrites systemd-boot's /etc/kernel/cmdline (one line of parameters). */
export function editKernelCmdline(current: string, add: string[], remove: string[] = []): string {
  const params = editParams(current.trim().split(/\s+/), add, remove);
  return `${params.join(" ")}\n`;
}
