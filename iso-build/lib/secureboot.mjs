// The Secure Boot variant: UEFI only, booted by Debian's Microsoft-signed shim, which loads Debian's
// signed GRUB CD image (gcdx64: it finds the medium by /.disk/info and reads /boot/grub/grub.cfg),
// which loads Debian's signed kernel. Nothing here is signed by us. The ESP (10 MiB FAT, a
// deterministic one) is the El Torito EFI image and a GPT partition, so the file also boots from USB.
import { existsSync } from "node:fs";
import { chmod, mkdir, readdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { IMAGE_CACHE } from "./live-root.mjs";
import { run } from "./stage.mjs";

const PACKAGES = ["shim-signed", "grub-efi-amd64-signed", "shim-helpers-amd64-signed"];
const ESP_FILES = {
  "EFI/BOOT/BOOTX64.EFI": "usr/lib/shim/shimx64.efi.signed",
  "EFI/BOOT/grubx64.efi": "usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed",
  "EFI/BOOT/mmx64.efi": "usr/lib/shim/mmx64.efi.signed",
};

/** Debian's signed binaries, unpacked from the candidate .debs into CACHE/secureboot/<versions>. */
async function signedBinaries() {
  const versions = {};
  for (const p of PACKAGES) {
    const policy = (await run("apt-cache", ["policy", p])).stdout;
    const v = /Candidate: (\S+)/.exec(policy)?.[1];
    if (!v || v === "(none)") throw new Error(`${p}: no candidate in apt (run apt-get update)`);
    versions[p] = v;
  }
  const dir = path.join(
    IMAGE_CACHE,
    "secureboot",
    Object.values(versions)
      .join("_")
      .replace(/[^\w.+~-]/g, "_"),
  );
  if (existsSync(path.join(dir, "root"))) return { root: path.join(dir, "root"), versions };
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await chmod(tmp, 0o755);
  // As root into a root-owned directory: apt's _apt sandbox user could not write there.
  const wanted = PACKAGES.map((p) => `${p}=${versions[p]}`);
  await run("apt-get", ["-q", "-o", "APT::Sandbox::User=root", "download", ...wanted], { cwd: tmp });
  for (const deb of (await readdir(tmp)).filter((f) => f.endsWith(".deb"))) {
    await run("dpkg-deb", ["-x", path.join(tmp, deb), path.join(tmp, "root")]);
  }
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return { root: path.join(dir, "root"), versions };
}

/** Makes the Secure Boot ISO from the same ISO tree as the main one. Returns the signed versions. */
export async function makeSecureBootIso({ tree, iso, work, date, epoch }) {
  const { root, versions } = await signedBinaries();
  const esp = path.join(work, "esp.img");
  const env = { SOURCE_DATE_EPOCH: String(epoch) };
  const volid = epoch.toString(16).padStart(8, "0").slice(-8);
  await run("mkfs.fat", ["--invariant", "-i", volid, "-n", "KVMSTRAP", "-C", esp, "10240"], { env });
  await run("mmd", ["-i", esp, "::/EFI", "::/EFI/BOOT"], { env });
  for (const [to, from] of Object.entries(ESP_FILES)) {
    await run("mcopy", ["-m", "-i", esp, path.join(root, from), `::/${to}`], { env });
  }
  await run(
    "xorriso",
    [
      "-as",
      "mkisofs",
      "-o",
      iso,
      "-r",
      "-V",
      "KVMSTRAP",
      `--modification-date=${date}`,
      "--set_all_file_dates",
      date,
      "-append_partition",
      "2",
      "0xef",
      esp,
      "-appended_part_as_gpt",
      "-e",
      "--interval:appended_partition_2:all::",
      "-no-emul-boot",
      tree,
    ],
    { env },
  );
  return versions;
}
