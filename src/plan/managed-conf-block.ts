// The one way kvmstrap writes settings into a libvirt config file it shares with the operator
// (qemu.conf, libvirtd.conf): a managed block at the file's end. The consoles and the hardening
// plans each own one block, told apart by their markers and their comment-out prefix, so each
// restores only what it commented out and leaves the other block where it is.

export type ConfSetting = [key: string, value: string | number];

/** One owner's markers: the block's first and last line, and the prefix of a line it commented out. */
export type ManagedBlock = { readonly begin: string; readonly end: string; readonly disabled: string };

/** The block `owner` writes (e.g. "consoles"); `disabled` must differ between owners. */
export function managedBlock(owner: string, disabled: string): ManagedBlock {
  return {
    begin: `# BEGIN kvmstrap ${owner} (managed: kvmstrap plan/apply rewrites this block)`,
    end: `# END kvmstrap ${owner}`,
    disabled,
  };
}

// libvirt's config grammar: numbers bare, strings double-quoted with JSON's escapes.
const render = ([k, v]: ConfSetting) => `${k} = ${typeof v === "number" ? v : JSON.stringify(v)}`;

/**
 * The file with these settings in the owner's block at its end: an earlier assignment of each key is
 * commented out (libvirt keeps the last one, some versions refuse a key given twice, and an operator
 * reading the file should not find two), the block an earlier apply wrote is replaced, and what it
 * commented out comes back when a key leaves the block. No settings: the file as it was before this
 * owner wrote it (another owner's block stays).
 */
export function withManagedBlock(
  block: ManagedBlock,
  current: string,
  settings: readonly ConfSetting[],
): string {
  const keys = new Set(settings.map(([k]) => k));
  const lines: string[] = [];
  let inBlock = false;
  for (const line of current.split("\n")) {
    if (line === block.begin) inBlock = true;
    else if (line === block.end) inBlock = false;
    else if (!inBlock) {
      const restored = line.startsWith(block.disabled) ? line.slice(block.disabled.length) : line;
      const key = /^\s*([a-z0-9_]+)\s*=/.exec(restored)?.[1];
      lines.push(key && keys.has(key) ? `${block.disabled}${restored}` : restored);
    }
  }
  while (lines.length && lines[lines.length - 1] === "") lines.pop();
  if (!settings.length) return `${lines.join("\n")}\n`;
  return `${[...lines, "", block.begin, ...settings.map(render), block.end].join("\n")}\n`;
}
