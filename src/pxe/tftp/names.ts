// File names as PXE clients send them, turned into a clean relative path or refused. Confinement to
// the served root on disk (symlinks) is the directory source's job (source.ts); this step makes sure
// no source ever sees `..`, a leading slash or a backslash.

export type CleanName = { ok: true; name: string } | { ok: false; reason: string };

const utf8 = new TextDecoder("utf-8", { fatal: true });

export function cleanFileName(raw: Buffer): CleanName {
  // Old Intel PXE ROMs append 0xFF bytes to the name.
  let end = raw.length;
  while (end > 0 && raw[end - 1] === 0xff) end--;
  let text: string;
  try {
    text = utf8.decode(raw.subarray(0, end));
  } catch {
    return { ok: false, reason: "file name is not UTF-8" };
  }
  // Some ROMs and Windows-made configs send backslashes; leading slashes mean "from the root".
  const segments = text.replaceAll("\\", "/").split("/");
  const kept: string[] = [];
  for (const segment of segments) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") return { ok: false, reason: "file name climbs out of the root (..)" };
    // Control characters have no business in a boot file name and confuse logs.
    if (hasControl(segment)) return { ok: false, reason: "file name has control characters" };
    kept.push(segment);
  }
  if (kept.length === 0) return { ok: false, reason: "empty file name" };
  return { ok: true, name: kept.join("/") };
}

function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}
