#!/usr/bin/env node
// `npm run image`: builds the appliance into iso-build/out/ from the cached live root (lib/live-root.mjs)
// and the built project: kvmstrap-<version>-amd64.iso (BIOS + UEFI, GPT hybrid for USB sticks) and
// netboot/ (vmlinuz, gzip initrd, squashfs, SHA256SUMS, manifest.json, boot.ipxe, grub-local.efi), all cut from one
// staging tree. Everything is made under out/.build-PID and renamed into place once its checks pass.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import {
  appendFile,
  link,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { checkGzip, checkIso, checkRuns, checkSquashfs } from "./lib/checks.mjs";
import { checkInitrdOverlay, overlayCpio } from "./lib/initramfs.mjs";
import { inputsKey, STAMP } from "./lib/inputs.mjs";
import { ensureLiveRoot, IMAGE_CACHE } from "./lib/live-root.mjs";
import { NODE_PIN, ROOT_RECIPE } from "./lib/recipe.mjs";
import { makeSecureBootIso } from "./lib/secureboot.mjs";
import { run, stage } from "./lib/stage.mjs";
import { makeStaging } from "./lib/staging.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const project = path.dirname(here);
const OUT = process.env.KVMSTRAP_IMAGE_OUT ?? path.join(here, "out");
// zstd 15 was measured at 120 s for 182 MiB; lower levels trade size for build time.
const SQUASHFS_LEVEL = process.env.KVMSTRAP_SQUASHFS_LEVEL ?? "15";
const CONSOLES = "console=tty0 console=ttyS0,115200n8"; // the last one is /dev/console
const LIVE_APPEND = `boot=live quiet ${CONSOLES}`;
const FETCH = "fetch=@BASE@/filesystem.squashfs"; // live-boot downloads the root into RAM
// Added to the initrd: fetch= with retries and kvmstrap.fetch-sha256= checked before mounting.
const INITRAMFS_OVERLAY = path.join(here, "initramfs");

async function sourceDateEpoch() {
  const given = process.env.SOURCE_DATE_EPOCH;
  // Passed explicitly to each tool instead: mksquashfs refuses it in the environment beside -all-time.
  delete process.env.SOURCE_DATE_EPOCH;
  if (given) return Number(given);
  const r = await run("git", ["log", "-1", "--format=%ct"], { cwd: project }).catch(() => null);
  return r ? Number(r.stdout.trim()) : Math.floor(Date.now() / 1000);
}

/** xorriso's date format, YYYYMMDDhhmmsscc in UTC. */
function isoDate(epoch) {
  return `${new Date(epoch * 1000).toISOString().replace(/[-:T]/g, "").slice(0, 14)}00`;
}

async function sha256(file) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk);
  return hash.digest("hex");
}

/** Versions of the recipe's packages in the root, from dpkg's status file. */
async function packageVersions(root) {
  const status = await readFile(path.join(root, "var/lib/dpkg/status"), "utf8");
  const versions = {};
  for (const stanza of status.split("\n\n")) {
    const name = /^Package: (.+)$/m.exec(stanza)?.[1];
    if (name && ROOT_RECIPE.packages.includes(name)) versions[name] = /^Version: (.+)$/m.exec(stanza)?.[1];
  }
  return versions;
}

/**
 * mformat gives grub-mkrescue's EFI System image a random volume serial, the only byte difference
 * between two builds from the same inputs; it is set from SOURCE_DATE_EPOCH instead.
 */
async function fixEfiSerial(iso, elTorito, epoch) {
  const uefi = elTorito.find((l) => l.split(/\s+/)[1] === "UEFI");
  const lba = Number(uefi?.split(/\s+/).at(-1));
  if (!Number.isInteger(lba)) return;
  const fd = await open(iso, "r+");
  try {
    const { buffer } = await fd.read(Buffer.alloc(64), 0, 64, lba * 2048);
    if (buffer[38] !== 0x29) return; // no FAT12/16 extended boot record
    const serial = createHash("sha256").update(`kvmstrap-efi-${epoch}`).digest().subarray(0, 4);
    await fd.write(serial, 0, 4, lba * 2048 + 39);
  } finally {
    await fd.close();
  }
}

function bootIpxe(version, append) {
  const base = "$" + "{kvmstrap-base}"; // an iPXE variable, not a JavaScript placeholder
  return `#!ipxe
# kvmstrap ${version} netboot. Set kvmstrap-base to the URL of this directory before chaining here,
# e.g. "set kvmstrap-base http://10.0.0.1:8080/netboot" (no trailing slash).
isset \${kvmstrap-base} || set kvmstrap-base http://\${next-server}/netboot
kernel \${kvmstrap-base}/vmlinuz initrd=initrd.img ${append.replace("@BASE@", base)}
initrd \${kvmstrap-base}/initrd.img
boot
`;
}

/**
 * KVMSTRAP_IMAGE_ANSWER=FILE puts an answer on the ISO as kvmstrap/answer.yaml, where the live
 * system's boot agent finds it (/run/live/medium/kvmstrap/answer.yaml). It is held to the project's
 * own answer loader first, so a broken answer fails the build, not the machine it boots.
 */
async function embedAnswer(file, tree) {
  const { readAnswerSource } = await import(path.join(project, "dist/answer/load.js"));
  await readAnswerSource(file);
  await mkdir(path.join(tree, "kvmstrap"), { recursive: true });
  await run("cp", [file, path.join(tree, "kvmstrap/answer.yaml")]);
}

/** Removes what an interrupted build (its process gone) left: staging trees and .build directories. */
async function removeLeftovers() {
  const alive = (pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (const [dir, prefix] of [
    [IMAGE_CACHE, "staging-"],
    [OUT, ".build-"],
  ]) {
    for (const name of await readdir(dir).catch(() => [])) {
      const pid = Number(name.slice(prefix.length));
      if (name.startsWith(prefix) && Number.isInteger(pid) && !alive(pid)) {
        await rm(path.join(dir, name), { recursive: true, force: true });
      }
    }
  }
}

async function main() {
  const started = Date.now();
  const pkg = JSON.parse(await readFile(path.join(project, "package.json"), "utf8"));
  const version = pkg.version;
  const inputs = await inputsKey(project, OUT);
  if (process.argv.includes("--if-changed")) {
    const stamped = (await readFile(path.join(OUT, STAMP), "utf8").catch(() => "")).trim();
    const iso = await stat(path.join(OUT, `kvmstrap-${version}-amd64.iso`)).catch(() => null);
    if (stamped === inputs && iso) {
      console.log(`[image] ${OUT} is a build of the current inputs (${inputs.slice(0, 12)}): reused`);
      return;
    }
  }
  await removeLeftovers();
  const epoch = await sourceDateEpoch();
  const { root, key, cached } = await stage("live root", ensureLiveRoot);

  const build = path.join(OUT, `.build-${process.pid}`);
  const staging = path.join(IMAGE_CACHE, `staging-${process.pid}`);
  await rm(build, { recursive: true, force: true });
  await mkdir(path.join(build, "netboot"), { recursive: true });
  try {
    const boot = await stage("staging tree (live root + kvmstrap)", () =>
      makeStaging({ root, project, staging }),
    );
    const runs = await stage("check: bundled node and kvmstrap run in the root", () =>
      checkRuns(staging, { node: NODE_PIN.version, kvmstrap: version }),
    );
    const net = path.join(build, "netboot");
    const squashfs = path.join(net, "filesystem.squashfs");
    await stage(`mksquashfs zstd-${SQUASHFS_LEVEL}`, async () => {
      const time = String(epoch);
      await run("mksquashfs", [
        staging,
        squashfs,
        "-noappend",
        "-no-progress",
        "-comp",
        "zstd",
        "-Xcompression-level",
        SQUASHFS_LEVEL,
        "-mkfs-time",
        time,
        "-all-time",
        time,
      ]);
    });
    await stage("check: squashfs has the mount points and kvmstrap", () => checkSquashfs(squashfs));
    await run("cp", [boot.kernel, path.join(net, "vmlinuz")]);
    const initrd = path.join(net, "initrd.img");
    await run("cp", [boot.initrd, initrd]);
    await stage("initrd: kvmstrap's fetch= retry and checksum appended (lib/initramfs.mjs)", async () => {
      await appendFile(initrd, await overlayCpio(INITRAMFS_OVERLAY, epoch));
      await checkInitrdOverlay(initrd, INITRAMFS_OVERLAY);
    });
    await checkGzip(initrd);

    const tree = path.join(build, "isotree");
    await mkdir(path.join(tree, "live"), { recursive: true });
    await mkdir(path.join(tree, "boot/grub"), { recursive: true });
    for (const f of ["vmlinuz", "initrd.img", "filesystem.squashfs"]) {
      await link(path.join(net, f), path.join(tree, "live", f));
    }
    const grub = (await readFile(path.join(here, "grub.cfg.in"), "utf8"))
      .replaceAll("@VERSION@", version)
      .replaceAll("@APPEND@", LIVE_APPEND)
      .replaceAll("@APPEND_SCREEN@", "boot=live quiet console=tty0");
    await writeFile(path.join(tree, "boot/grub/grub.cfg"), grub);
    const embedded = process.env.KVMSTRAP_IMAGE_ANSWER;
    if (embedded) await stage(`embedded answer ${embedded}`, () => embedAnswer(embedded, tree));
    // Debian's signed GRUB CD image finds its medium by this file (the Secure Boot variant).
    await mkdir(path.join(tree, ".disk"), { recursive: true });
    await writeFile(path.join(tree, ".disk/info"), `kvmstrap ${version} amd64 (${ROOT_RECIPE.suite})\n`);
    const isoName = `kvmstrap-${version}-amd64.iso`;
    const iso = path.join(build, isoName);
    const date = isoDate(epoch);
    await stage("grub-mkrescue (BIOS + UEFI hybrid ISO)", () =>
      run(
        "grub-mkrescue",
        [
          "-o",
          iso,
          "--locales=",
          "--themes=",
          "--fonts=",
          "--compress=xz",
          tree,
          "-volid",
          "KVMSTRAP",
          `--modification-date=${date}`,
          "--set_all_file_dates",
          date,
        ],
        { env: { SOURCE_DATE_EPOCH: String(epoch) } },
      ),
    );
    const isoReport = await stage("check: El Torito BIOS+UEFI and partition table", () => checkIso(iso));
    await fixEfiSerial(iso, isoReport.elTorito, epoch);
    const sbName = `kvmstrap-${version}-amd64-secureboot.iso`;
    const sbIso = path.join(build, sbName);
    const signed = await stage("Secure Boot ISO (Debian's signed shim, GRUB and kernel)", () =>
      makeSecureBootIso({ tree, iso: sbIso, work: build, date, epoch }),
    );
    const sbReport = await stage("check: Secure Boot ISO has a UEFI image and a GPT", () =>
      checkIso(sbIso, ["UEFI"]),
    );
    await rm(tree, { recursive: true });

    // The initrd checks the squashfs against this before mounting it (9991-kvmstrap-fetch.sh).
    const squashfsSha256 = await sha256(squashfs);
    const netAppend = `boot=live ${FETCH} kvmstrap.fetch-sha256=${squashfsSha256} quiet ${CONSOLES}`;
    await writeFile(path.join(net, "boot.ipxe"), bootIpxe(version, netAppend));
    await stage("grub-local.efi (UEFI local boot for installed nodes that boot the network first)", () =>
      run(
        "grub-mkstandalone",
        [
          ...["-O", "x86_64-efi", "--locales=", "--themes=", "--fonts="],
          ...[
            "-o",
            path.join(net, "grub-local.efi"),
            `boot/grub/grub.cfg=${path.join(here, "grub-local.cfg")}`,
          ],
        ],
        { env: { SOURCE_DATE_EPOCH: String(epoch) } },
      ),
    );
    const files = {};
    for (const f of ["vmlinuz", "initrd.img", "filesystem.squashfs", "boot.ipxe", "grub-local.efi"]) {
      const file = path.join(net, f);
      files[f] = { size: (await stat(file)).size, sha256: await sha256(file) };
    }
    await writeFile(
      path.join(net, "SHA256SUMS"),
      Object.entries(files)
        .map(([f, v]) => `${v.sha256}  ${f}\n`)
        .join(""),
    );
    const manifest = {
      name: "kvmstrap",
      version,
      sourceDateEpoch: epoch,
      suite: ROOT_RECIPE.suite,
      liveRoot: key,
      kernel: boot.kernelVersion,
      node: runs.node,
      packages: await packageVersions(staging),
      cmdline: netAppend,
      cmdlineNote:
        "@BASE@ is the URL of this directory; the initrd fetches the squashfs with retries and checks kvmstrap.fetch-sha256=",
      isoCmdline: LIVE_APPEND,
      files,
      iso: { name: isoName, size: (await stat(iso)).size, sha256: await sha256(iso), ...isoReport },
      secureBootIso: {
        name: sbName,
        size: (await stat(sbIso)).size,
        sha256: await sha256(sbIso),
        signedBy: signed,
        ...sbReport,
      },
    };
    await writeFile(path.join(net, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);

    // Publish: the checks passed.
    await rm(path.join(OUT, "netboot"), { recursive: true, force: true });
    await rename(net, path.join(OUT, "netboot"));
    await rename(iso, path.join(OUT, isoName));
    await rename(sbIso, path.join(OUT, sbName));
    await writeFile(path.join(OUT, STAMP), `${inputs}\n`);
    const mib = (n) => `${(n / 1024 ** 2).toFixed(0)} MiB`;
    console.log(`[image] ${path.join(OUT, isoName)} ${mib(manifest.iso.size)} sha256 ${manifest.iso.sha256}`);
    console.log(`[image] ${path.join(OUT, "netboot")}/ squashfs ${mib(files["filesystem.squashfs"].size)}`);
    console.log(
      `[image] done in ${((Date.now() - started) / 1000).toFixed(0)} s (live root ${cached ? "cached" : "built"})`,
    );
  } finally {
    await rm(build, { recursive: true, force: true });
    await rm(staging, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`image: ${e.message}`);
  process.exitCode = 1;
});
