// `kvmstrap iso prepare`: a site's copy of the appliance ISO. The answer is embedded as
// kvmstrap/answer.yaml (where the boot agent looks: /run/live/medium/kvmstrap/answer.yaml) or named
// by URL on the kernel command line, and the default boot entry can carry kvmstrap.auto=install, the
// explicit go-ahead for an unattended install. xorriso replays the input's boot set-up (El Torito
// for BIOS and UEFI, the protective MBR with GRUB's boot code, the GPT with its EFI partition, the
// Secure Boot variant's appended ESP) and keeps the volume date, by which GRUB's EFI and BIOS images
// find their medium. Both ISOs boot through /boot/grub/grub.cfg (the Secure Boot variant's signed
// GRUB CD image reads the same file), so that file is the one rewritten. The input is only read; the
// output appears whole or not at all.
import { createHash } from "node:crypto";
import { mkdtemp, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { AnswerError, formatIssue, readAnswerSource } from "../answer/load.js";
import { cleanStaleTemps, publishFile, tempPathFor } from "../core/atomic-write.js";
import { InputError, UsageError } from "../core/errors.js";
import { type CommandRunner, ExecaRunner } from "../host/commands.js";
import { digestFile } from "../vm/checksums.js";
import { displayUrl, parseAnswerLocation } from "./answer-source.js";
import { AUTO_INSTALL, CMDLINE } from "./node-protocol.js";

/** Where the answer goes on the ISO; live-boot mounts the medium at /run/live/medium. */
export const ISO_ANSWER_PATH = "/kvmstrap/answer.yaml";
export const ISO_GRUB_CFG = "/boot/grub/grub.cfg";
/** What every kvmstrap appliance ISO carries (iso-build/build.mjs). */
const APPLIANCE_VOLUME_ID = "KVMSTRAP";
const APPLIANCE_FILES = ["/live/vmlinuz", "/live/initrd.img", "/live/filesystem.squashfs", ISO_GRUB_CFG];
const SIGNED_GRUB_FIRST = "/boot/grub/x86_64-efi/grub.cfg";
const MAX_GRUB_CFG_BYTES = 256 * 1024;
/** The words prepare owns on a linux line: removed first, so preparing a prepared ISO replaces them. */
const OWNED = [CMDLINE.answer, CMDLINE.answerSha256, CMDLINE.auto];
const UNATTENDED_TITLE = " - UNATTENDED INSTALL";

export interface IsoPrepareOptions {
  input: string;
  output: string;
  /** An answer file to embed (validated first). */
  answerFile?: string | undefined;
  /** An http(s) URL for kvmstrap.answer= (fetched at boot, not now). */
  answerUrl?: string | undefined;
  /** The sha256 the fetched answer must have (kvmstrap.answer-sha256=). */
  answerSha256?: string | undefined;
  /** kvmstrap.auto=install on the default boot entry. */
  auto: boolean;
  runner?: CommandRunner;
  /** Progress lines (what is being read or written). */
  onProgress?: (line: string) => void;
}

export interface IsoPrepareResult {
  input: string;
  output: string;
  sizeBytes: number;
  sha256: string;
  /** The embedded answer's sha256 (given now, or kept from the input), or null. */
  embeddedAnswer: string | null;
  /** The answer URL as fit for logs (secret query values redacted), or null. */
  answerUrl: string | null;
  answerSha256: string | null;
  auto: boolean;
  /** The default entry's title and its kernel command line as the output's grub.cfg has it. */
  defaultEntry: { title: string; cmdline: string };
  /** El Torito boot images of the output (platform per image): the same as the input's. */
  elTorito: string[];
}

const sha256File = (file: string) => digestFile(file, "sha256");

/** A URL as one GRUB word: single-quoted (GRUB expands $ and splits on ; & | < > { }). */
function grubWord(word: string): string {
  return /^[\w.,:/=+@%-]+$/.test(word) ? word : `'${word}'`;
}

interface MenuEntry {
  title: string;
  /** Index of the entry's `linux /live/vmlinuz ...` line in the file's lines. */
  linuxLine: number;
  /** Index of the menuentry line. */
  titleLine: number;
}

/** The menu entries that boot the live kernel, in order, and `set default`. */
function parseGrubCfg(text: string, where: string): { lines: string[]; entries: MenuEntry[]; def: number } {
  const lines = text.split("\n");
  const entries: MenuEntry[] = [];
  let current: { title: string; titleLine: number } | null = null;
  let def = 0;
  let count = 0;
  for (const [i, line] of lines.entries()) {
    const d = /^\s*set\s+default=["']?([^"'\s]*)["']?\s*$/.exec(line);
    if (d) {
      if (!/^\d+$/.test(d[1] ?? ""))
        throw new InputError(`${where}:${i + 1}: set default=${d[1]} is not an entry number`);
      def = Number(d[1]);
    }
    const m = /^\s*menuentry\s+(["'])(.*?)\1/.exec(line);
    if (m) {
      current = { title: m[2] ?? "", titleLine: i };
      count++;
      continue;
    }
    if (current && /^\s*linux\s+\/live\/vmlinuz(\s|$)/.test(line)) {
      entries.push({ ...current, linuxLine: i });
      current = null;
    }
    if (/^\s*}\s*$/.test(line)) current = null;
  }
  if (count !== entries.length)
    throw new InputError(
      `${where}: ${count - entries.length} menu entries do not boot /live/vmlinuz: not kvmstrap's menu`,
    );
  return { lines, entries, def };
}

/**
 * The input's grub.cfg with the answer URL (and its sha256) on every live entry and
 * kvmstrap.auto=install on the default one; the words prepare owns are replaced, not repeated.
 */
export function prepareGrubCfg(
  text: string,
  o: { answerUrl?: string | undefined; answerSha256?: string | undefined; auto: boolean },
  where = ISO_GRUB_CFG,
): { text: string; defaultEntry: { title: string; cmdline: string } } {
  const { lines, entries, def } = parseGrubCfg(text, where);
  if (!entries.some((e) => /\sboot=live(\s|$)/.test(lines[e.linuxLine] ?? "")))
    throw new InputError(`${where}: no menu entry boots the live system (linux /live/vmlinuz boot=live)`);
  const chosen = entries[def];
  if (!chosen) throw new InputError(`${where}: set default=${def}, but there are ${entries.length} entries`);
  for (const [n, e] of entries.entries()) {
    const words = (lines[e.linuxLine] ?? "").trimEnd().split(/\s+/);
    const indent = /^\s*/.exec(lines[e.linuxLine] ?? "")?.[0] ?? "";
    const kept = words.filter(
      (w) => w !== "" && !OWNED.some((k) => w.replace(/^'/, "").startsWith(`${k}=`) || w === k),
    );
    if (o.answerUrl) kept.push(grubWord(`${CMDLINE.answer}=${o.answerUrl}`));
    if (o.answerUrl && o.answerSha256) kept.push(`${CMDLINE.answerSha256}=${o.answerSha256}`);
    if (o.auto && n === def) kept.push(`${CMDLINE.auto}=${AUTO_INSTALL}`);
    lines[e.linuxLine] = indent + kept.join(" ");
    const title = e.title.replace(UNATTENDED_TITLE, "");
    const newTitle = o.auto && n === def ? `${title}${UNATTENDED_TITLE}` : title;
    lines[e.titleLine] = (lines[e.titleLine] ?? "").replace(e.title, newTitle);
    e.title = newTitle;
  }
  const cmdline = (lines[chosen.linuxLine] ?? "").trim().replace(/^linux\s+\S+\s*/, "");
  return { text: lines.join("\n"), defaultEntry: { title: chosen.title, cmdline } };
}

function checkOptions(o: IsoPrepareOptions): { url: URL | null; sha256: string | null } {
  if (o.answerFile && o.answerUrl) throw new UsageError("give --answer FILE or --answer-url URL, not both");
  if (o.answerSha256 && !o.answerUrl) throw new UsageError("--answer-sha256 goes with --answer-url");
  if (!o.answerFile && !o.answerUrl && !o.auto)
    throw new UsageError("nothing to prepare: give --answer FILE, --answer-url URL and/or --auto");
  let url: URL | null = null;
  if (o.answerUrl) {
    if (!/^https?:\/\//i.test(o.answerUrl))
      throw new UsageError(`--answer-url ${o.answerUrl}: not an http(s) URL (embed a file with --answer)`);
    const loc = parseAnswerLocation(o.answerUrl);
    if (loc.kind !== "url") throw new UsageError(`--answer-url ${o.answerUrl}: not an http(s) URL`);
    // The URL becomes one word of the kernel command line, which has no quoting GRUB would keep.
    if (/[\s'"\\]/.test(loc.url.href))
      throw new UsageError(
        `--answer-url ${displayUrl(loc.url)}: quotes and backslashes cannot go on a kernel command line`,
      );
    url = loc.url;
  }
  let sha256: string | null = null;
  if (o.answerSha256) {
    if (!/^[0-9a-fA-F]{64}$/.test(o.answerSha256))
      throw new UsageError(`--answer-sha256 ${o.answerSha256}: not a sha256 (64 hex digits)`);
    sha256 = o.answerSha256.toLowerCase();
  }
  return { url, sha256 };
}

/** The input's files and El Torito images as xorriso lists them; InputError when it cannot read it. */
async function readIso(runner: CommandRunner, iso: string) {
  const r = await runner.run(
    "xorriso",
    ["-indev", iso, "-report_el_torito", "plain", "-pvd_info", "-find", "/", "-type", "f"],
    { timeoutMs: 120_000 },
  );
  const text = `${r.stdout}\n${r.stderr}`;
  if (r.exitCode !== 0) {
    const why = /FAILURE : (.*)/.exec(text)?.[1] ?? (r.timedOut ? "xorriso timed out" : "xorriso failed");
    throw new InputError(`${iso}: not an ISO 9660 image xorriso can read (${why.trim()})`);
  }
  const volumeId = /^Volume Id\s*:\s*(.*)$/m.exec(text)?.[1]?.trim() ?? "";
  const files = new Set([...text.matchAll(/^'(\/.*)'$/gm)].map((m) => m[1] as string));
  const elTorito = [...text.matchAll(/^El Torito boot img :\s+\d+\s+(\S+)/gm)].map((m) => m[1] as string);
  return { volumeId, files, elTorito };
}

async function extract(runner: CommandRunner, iso: string, from: string, to: string): Promise<void> {
  const r = await runner.run("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", from, to], {
    timeoutMs: 120_000,
  });
  if (r.exitCode !== 0) throw new InputError(`${iso}: cannot read ${from} from it`);
}

async function readBoundedText(file: string, max: number, what: string): Promise<string> {
  const st = await stat(file);
  if (st.size > max) throw new InputError(`${what}: ${st.size} bytes, more than the ${max} a boot menu has`);
  return readFile(file, "utf8");
}

/** Makes OUT from IN as the options say; IN is never written. */
export async function prepareIso(o: IsoPrepareOptions): Promise<IsoPrepareResult> {
  const runner = o.runner ?? new ExecaRunner();
  const say = o.onProgress ?? (() => {});
  const { url, sha256 } = checkOptions(o);
  const input = await realpath(o.input).catch(() => {
    throw new InputError(`${o.input}: no such file`);
  });
  if (!(await stat(input)).isFile()) throw new InputError(`${o.input}: not a regular file`);
  const output = path.join(
    await realpath(path.dirname(path.resolve(o.output))).catch(() => {
      throw new InputError(`${o.output}: its directory does not exist`);
    }),
    path.basename(o.output),
  );
  const existing = await stat(output).catch(() => null);
  if (existing && !existing.isFile()) throw new InputError(`${o.output}: exists and is not a regular file`);
  if (output === input || (existing && (await realpath(output)) === input))
    throw new UsageError("--out must not be the input ISO: prepare never writes its input");
  if (!(await runner.which("xorriso")))
    throw new InputError("xorriso is not installed (apt-get install xorriso)");

  let embedded: { text: string; sha256: string } | null = null;
  if (o.answerFile) {
    try {
      // The project's one answer check (size, YAML, schema), offline: the disk and the network are
      // the target machine's, known only when it boots.
      await readAnswerSource(o.answerFile);
    } catch (e) {
      if (e instanceof AnswerError)
        throw new InputError(
          `${o.answerFile} is not a valid answer file:\n${e.issues.map(formatIssue).join("\n")}`,
        );
      throw e;
    }
    const bytes = await readFile(o.answerFile);
    embedded = { text: bytes.toString("utf8"), sha256: createHash("sha256").update(bytes).digest("hex") };
  }

  say(`reading ${input}`);
  const iso = await readIso(runner, input);
  const missing = APPLIANCE_FILES.filter((f) => !iso.files.has(f));
  if (iso.volumeId !== APPLIANCE_VOLUME_ID || missing.length)
    throw new InputError(
      `${o.input} is not a kvmstrap appliance ISO (${[
        iso.volumeId !== APPLIANCE_VOLUME_ID ? `volume id "${iso.volumeId}", not ${APPLIANCE_VOLUME_ID}` : "",
        missing.length ? `no ${missing.join(", ")}` : "",
      ]
        .filter(Boolean)
        .join("; ")}): build one with npm run image`,
    );
  if (!iso.elTorito.length) throw new InputError(`${o.input}: no El Torito boot image: not a bootable ISO`);
  // Debian's signed GRUB CD image (the Secure Boot variant) sources this one first when it exists:
  // then the menu rewritten here would not be the one it reads.
  if (iso.files.has(SIGNED_GRUB_FIRST))
    throw new InputError(
      `${o.input}: has ${SIGNED_GRUB_FIRST}, which Debian's signed GRUB reads before ${ISO_GRUB_CFG}: not kvmstrap's layout`,
    );
  const hadAnswer = iso.files.has(ISO_ANSWER_PATH);
  if (o.auto && !embedded && !url && !hadAnswer)
    throw new UsageError(
      `--auto needs an answer: --answer FILE or --answer-url URL (${o.input} embeds none); an unattended install starts only with both`,
    );

  const work = await mkdtemp(path.join(tmpdir(), `kvmstrap-iso-${process.pid}-`));
  const tmp = tempPathFor(output);
  try {
    await extract(runner, input, ISO_GRUB_CFG, path.join(work, "grub.in.cfg"));
    const grubIn = await readBoundedText(
      path.join(work, "grub.in.cfg"),
      MAX_GRUB_CFG_BYTES,
      `${o.input}:${ISO_GRUB_CFG}`,
    );
    const grub = prepareGrubCfg(
      grubIn,
      { answerUrl: url?.href, answerSha256: sha256 ?? undefined, auto: o.auto },
      `${o.input}:${ISO_GRUB_CFG}`,
    );
    await writeFile(path.join(work, "grub.cfg"), grub.text);
    const edits = ["-map", path.join(work, "grub.cfg"), ISO_GRUB_CFG];
    if (embedded) {
      await writeFile(path.join(work, "answer.yaml"), embedded.text, { mode: 0o600 });
      edits.push("-map", path.join(work, "answer.yaml"), ISO_ANSWER_PATH);
    } else if (url && hadAnswer) {
      // The URL is the answer now: an older embedded one would only confuse whoever reads the stick.
      edits.push("-rm", ISO_ANSWER_PATH, "--");
    }
    const keptAnswer = !embedded && !url && hadAnswer;
    await cleanStaleTemps(output);
    await rm(tmp, { force: true });
    say(`writing ${output}`);
    const w = await runner.run(
      "xorriso",
      [
        "-indev",
        input,
        "-outdev",
        `stdio:${tmp}`,
        // The input's boot set-up, replayed; Apple's HFS+/APM hybrid (grub-mkrescue's) is left out:
        // xorriso 1.5 cannot replay it beside the GPT, and PCs boot without it.
        "-boot_image",
        "any",
        "replay",
        "-hfsplus",
        "off",
        ...edits,
        "-commit",
      ],
      { timeoutMs: 30 * 60_000 },
    );
    if (w.exitCode !== 0) {
      const why = /(?:FAILURE|SORRY) : (.*)/.exec(`${w.stdout}\n${w.stderr}`)?.[1] ?? "xorriso failed";
      throw new InputError(`writing ${o.output}: ${why.trim()}`);
    }
    // The output is checked before it is published: the same boot images, the new menu, the answer.
    const out = await readIso(runner, tmp);
    if (out.elTorito.join(",") !== iso.elTorito.join(","))
      throw new InputError(
        `writing ${o.output}: its El Torito images (${out.elTorito.join(", ")}) are not the input's (${iso.elTorito.join(", ")})`,
      );
    await extract(runner, tmp, ISO_GRUB_CFG, path.join(work, "grub.out.cfg"));
    if ((await readFile(path.join(work, "grub.out.cfg"), "utf8")) !== grub.text)
      throw new InputError(`writing ${o.output}: its ${ISO_GRUB_CFG} is not the one written`);
    let embeddedAnswer: string | null = null;
    if (embedded || keptAnswer) {
      await extract(runner, tmp, ISO_ANSWER_PATH, path.join(work, "answer.out.yaml"));
      embeddedAnswer = await sha256File(path.join(work, "answer.out.yaml"));
      if (embedded && embeddedAnswer !== embedded.sha256)
        throw new InputError(`writing ${o.output}: its ${ISO_ANSWER_PATH} is not ${o.answerFile}`);
    }
    await publishFile(tmp, output);
    return {
      input,
      output,
      sizeBytes: (await stat(output)).size,
      sha256: await sha256File(output),
      embeddedAnswer,
      answerUrl: url ? displayUrl(url) : null,
      answerSha256: sha256,
      auto: o.auto,
      defaultEntry: {
        title: grub.defaultEntry.title,
        cmdline: url
          ? grub.defaultEntry.cmdline.split(url.href).join(displayUrl(url))
          : grub.defaultEntry.cmdline,
      },
      elTorito: out.elTorito,
    };
  } finally {
    await rm(tmp, { force: true });
    await rm(work, { recursive: true, force: true });
  }
}
