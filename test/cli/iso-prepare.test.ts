// kvmstrap iso prepare on real ISOs made here: a small kvmstrap-shaped ISO by grub-mkrescue (BIOS and
// UEFI El Torito, protective MBR with GRUB's boot code, GPT with the EFI image: what npm run image
// makes) and one laid out as the Secure Boot variant (an appended ESP, UEFI only), both read back
// with xorriso. The remaster keeps each boot set-up and the volume date GRUB finds its medium by,
// rewrites only the boot menu and the answer, and never writes its input. The CLI (bin/kvmstrap.js,
// the built dist/) is run for the JSON result and the exit code of bad input.
import { execFile, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepareGrubCfg, prepareIso } from "../../src/app/iso-prepare.js";
import { InputError, UsageError } from "../../src/core/errors.js";
import { projectRoot } from "../helpers/shared-hosts.js";

const TOOLS = ["xorriso", "grub-mkrescue", "mformat", "mkfs.fat", "mmd"];
const have = (t: string) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0;
const missing = TOOLS.filter((t) => !have(t));
const grubDirs = ["/usr/lib/grub/i386-pc", "/usr/lib/grub/x86_64-efi"].filter((d) => !existsSync(d));
const skip = missing.length
  ? `missing ${missing.join(", ")} (apt-get install xorriso grub-common mtools dosfstools)`
  : grubDirs.length
    ? `missing ${grubDirs.join(", ")} (apt-get install grub-pc-bin grub-efi-amd64-bin)`
    : null;

const bin = path.join(projectRoot, "bin/kvmstrap.js");
const DATE = "2026120512345600";
const ANSWER = "version: 1\ninstall:\n  disk:\n    serial: KVMSTRAP-TARGET\n";
const sha256 = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");
const xorriso = (...args: string[]) => {
  const r = spawnSync("xorriso", args, { encoding: "utf8" });
  return `${r.stdout}\n${r.stderr}`;
};
const elTorito = (iso: string) =>
  [
    ...xorriso("-indev", iso, "-report_el_torito", "plain").matchAll(/^El Torito boot img :\s+\d+\s+(\S+)/gm),
  ].map((m) => m[1]);
const read = (iso: string, file: string, dir: string) => {
  const to = path.join(dir, `x-${Math.random().toString(16).slice(2)}`);
  xorriso("-osirrox", "on", "-indev", iso, "-extract", file, to);
  return existsSync(to) ? readFileSync(to, "utf8") : null;
};
const cli = async (args: string[]) => {
  try {
    const r = await promisify(execFile)(process.execPath, [bin, ...args]);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
};

describe.skipIf(skip !== null)("kvmstrap iso prepare", () => {
  let dir = "";
  let iso = "";
  let sbIso = "";
  let answer = "";
  let before = "";

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), `kvmstrap-iso-prepare-${process.pid}-`));
    const tree = path.join(dir, "tree");
    for (const d of ["live", "boot/grub", ".disk"]) mkdirSync(path.join(tree, d), { recursive: true });
    for (const f of ["vmlinuz", "initrd.img", "filesystem.squashfs"])
      writeFileSync(path.join(tree, "live", f), `${f}\n`);
    writeFileSync(path.join(tree, ".disk/info"), "kvmstrap test\n");
    // The menu npm run image writes (iso-build/grub.cfg.in), filled the same way.
    writeFileSync(
      path.join(tree, "boot/grub/grub.cfg"),
      readFileSync(path.join(projectRoot, "iso-build/grub.cfg.in"), "utf8")
        .replaceAll("@VERSION@", "0.0.0-test")
        .replaceAll("@APPEND@", "boot=live quiet console=tty0 console=ttyS0,115200n8")
        .replaceAll("@APPEND_SCREEN@", "boot=live quiet console=tty0"),
    );
    iso = path.join(dir, "in.iso");
    const mk = spawnSync(
      "grub-mkrescue",
      [
        "-o",
        iso,
        "--locales=",
        "--themes=",
        "--fonts=",
        tree,
        "-volid",
        "KVMSTRAP",
        `--modification-date=${DATE}`,
      ],
      { encoding: "utf8" },
    );
    if (mk.status !== 0) throw new Error(`grub-mkrescue: ${mk.stderr}`);
    // The Secure Boot variant's layout (iso-build/lib/secureboot.mjs): the ESP appended as a GPT
    // partition and used as the El Torito EFI image; an empty FAT stands in for Debian's signed shim.
    const esp = path.join(dir, "esp.img");
    spawnSync("mkfs.fat", ["-n", "KVMSTRAP", "-C", esp, "2048"]);
    sbIso = path.join(dir, "in-secureboot.iso");
    const sb = spawnSync(
      "xorriso",
      ["-as", "mkisofs", "-o", sbIso, "-r", "-V", "KVMSTRAP", `--modification-date=${DATE}`]
        .concat(["-append_partition", "2", "0xef", esp, "-appended_part_as_gpt"])
        .concat(["-e", "--interval:appended_partition_2:all::", "-no-emul-boot", tree]),
      { encoding: "utf8" },
    );
    if (sb.status !== 0) throw new Error(`xorriso: ${sb.stderr}`);
    answer = path.join(dir, "answer.yaml");
    writeFileSync(answer, ANSWER);
    before = sha256(iso);
  }, 120_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("embeds the answer and puts kvmstrap.auto=install on the default entry; BIOS, UEFI and the volume date kept", async () => {
    const out = path.join(dir, "site.iso");
    const r = await prepareIso({ input: iso, output: out, answerFile: answer, auto: true });
    expect(sha256(iso)).toBe(before);
    expect(r.sha256).toBe(sha256(out));
    expect(r.embeddedAnswer).toBe(createHash("sha256").update(ANSWER).digest("hex"));
    expect(read(out, "/kvmstrap/answer.yaml", dir)).toBe(ANSWER);
    expect(elTorito(out)).toEqual(["BIOS", "UEFI"]);
    expect(r.elTorito).toEqual(["BIOS", "UEFI"]);
    const report = xorriso("-indev", out, "-pvd_info", "-report_system_area", "plain");
    // GRUB's EFI and BIOS images search for the volume by this date: it must not change.
    expect(report).toMatch(new RegExp(`Modif. Time\\s*:\\s*${DATE}`));
    expect(report).toMatch(/MBR partition\s*:\s+1\s+0x00\s+0xee/);
    expect(report).toMatch(/GPT type GUID\s*:\s+2\s+28732ac11ff8d211ba4b00a0c93ec93b/); // EFI System
    const grub = read(out, "/boot/grub/grub.cfg", dir) ?? "";
    const linux = grub.split("\n").filter((l) => l.trim().startsWith("linux "));
    expect(linux[0]).toMatch(/ console=ttyS0,115200n8 kvmstrap\.auto=install$/);
    expect(linux[1]).not.toMatch(/kvmstrap\.auto/);
    expect(grub).toMatch(
      /menuentry "kvmstrap 0\.0\.0-test live \(screen and serial console ttyS0\) - UNATTENDED INSTALL"/,
    );
    expect(r.defaultEntry.cmdline).toBe(
      "boot=live quiet console=tty0 console=ttyS0,115200n8 kvmstrap.auto=install",
    );
    expect(readdirSync(dir).filter((f) => f.includes(".kvmstrap-tmp-"))).toEqual([]);
  }, 60_000);

  it("a prepared ISO prepared again with an answer URL: the parameters replaced, the embedded answer gone", async () => {
    const first = path.join(dir, "site.iso");
    if (!existsSync(first)) await prepareIso({ input: iso, output: first, answerFile: answer, auto: true });
    const out = path.join(dir, "site-url.iso");
    const sum = "AB".repeat(32);
    const url = "http://10.0.2.2:8080/answers/a.yaml?node=1&token=s3cret";
    const r = await prepareIso({ input: first, output: out, answerUrl: url, answerSha256: sum, auto: true });
    const grub = read(out, "/boot/grub/grub.cfg", dir) ?? "";
    const linux = grub.split("\n").filter((l) => l.trim().startsWith("linux "));
    // One of each, the URL quoted for GRUB (& is a GRUB metacharacter), on every entry.
    expect(linux[0]).toBe(
      `    linux /live/vmlinuz boot=live quiet console=tty0 console=ttyS0,115200n8 'kvmstrap.answer=${url}' kvmstrap.answer-sha256=${sum.toLowerCase()} kvmstrap.auto=install`,
    );
    expect(linux[1]).toMatch(/ 'kvmstrap\.answer=http.*' kvmstrap\.answer-sha256=(ab)+$/);
    expect(grub.match(/UNATTENDED INSTALL/g)).toHaveLength(1);
    expect(read(out, "/kvmstrap/answer.yaml", dir)).toBeNull();
    expect(r.embeddedAnswer).toBeNull();
    // The token is on the medium (that is what the boot reads) but not in what is printed.
    expect(JSON.stringify(r)).not.toContain("s3cret");
    expect(r.answerUrl).toMatch(/token=\[redacted\]/i);
  }, 60_000);

  it("keeps the Secure Boot variant's appended ESP and its UEFI-only El Torito", async () => {
    const out = path.join(dir, "site-secureboot.iso");
    await prepareIso({ input: sbIso, output: out, answerFile: answer, auto: true });
    expect(elTorito(out)).toEqual(["UEFI"]);
    const report = xorriso("-indev", out, "-report_system_area", "plain", "-pvd_info");
    expect(report).toMatch(/GPT type GUID\s*:\s+2\s+28732ac11ff8d211ba4b00a0c93ec93b/);
    expect(report).toMatch(new RegExp(`Modif. Time\\s*:\\s*${DATE}`));
    expect(read(out, "/boot/grub/grub.cfg", dir)).toMatch(/kvmstrap\.auto=install/);
  }, 60_000);

  it("refuses bad input with the reason, and writes nothing", async () => {
    const out = path.join(dir, "refused.iso");
    const bad = path.join(dir, "bad-answer.yaml");
    writeFileSync(bad, "version: 1\ninstall:\n  disk:\n    serial: X\n  wipe: maybe\n");
    await expect(prepareIso({ input: iso, output: out, answerFile: bad, auto: true })).rejects.toThrow(
      /bad-answer\.yaml:5.*wipe/,
    );
    await expect(prepareIso({ input: iso, output: out, auto: true })).rejects.toThrow(
      /--auto needs an answer/,
    );
    await expect(prepareIso({ input: iso, output: iso, answerFile: answer, auto: true })).rejects.toThrow(
      UsageError,
    );
    await expect(
      prepareIso({ input: iso, output: out, answerUrl: "ftp://x/a.yaml", auto: true }),
    ).rejects.toThrow(/not an http\(s\) URL/);
    await expect(
      prepareIso({ input: iso, output: out, answerUrl: "http://x/a.yaml", answerSha256: "12", auto: true }),
    ).rejects.toThrow(/not a sha256/);
    // An ISO that is not kvmstrap's, and a file that is not an ISO.
    const other = path.join(dir, "other.iso");
    mkdirSync(path.join(dir, "other"));
    writeFileSync(path.join(dir, "other/readme.txt"), "hello\n");
    spawnSync("xorriso", ["-as", "mkisofs", "-o", other, "-V", "OTHER", path.join(dir, "other")]);
    await expect(prepareIso({ input: other, output: out, answerFile: answer, auto: true })).rejects.toThrow(
      /is not a kvmstrap appliance ISO \(volume id "OTHER", not KVMSTRAP; no \/live\/vmlinuz/,
    );
    await expect(prepareIso({ input: answer, output: out, answerFile: answer, auto: true })).rejects.toThrow(
      InputError,
    );
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.includes(".kvmstrap-tmp-"))).toEqual([]);
    expect(sha256(iso)).toBe(before);
  }, 60_000);

  it("the CLI prints JSON, and exits 2 on a menu that is not kvmstrap's", async () => {
    const out = path.join(dir, "cli.iso");
    const r = await cli(["iso", "prepare", iso, "--out", out, "--answer", answer, "--auto", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { output: string; auto: boolean; elTorito: string[] };
    expect(j).toMatchObject({ output: out, auto: true, elTorito: ["BIOS", "UEFI"] });
    const bad = await cli(["iso", "prepare", iso, "--out", out]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/nothing to prepare/);
    expect(() =>
      prepareGrubCfg('set default=0\nmenuentry "x" {\n  linux /boot/vmlinuz root=/dev/sda1\n}\n', {
        auto: true,
      }),
    ).toThrow(/do not boot \/live\/vmlinuz/);
  }, 60_000);
});
if (skip) it.skip(`kvmstrap iso prepare: ${skip}`, () => {});
