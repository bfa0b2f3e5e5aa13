// `kvmstrap verify` on this host against a test-owned libvirtd: the built CLI defines its test VM
// (the boot sector of src/app/verify-vm-boot.S, TCG here) through the libvirt port, reads the marker
// with this run's nonce from the serial console, leaves no domain behind, finds the answer's storage
// pool active, and reports PASS; a pool that is not started fails it.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyResultSchema } from "../../src/app/verify-result.js";
import { projectRoot } from "../helpers/shared-hosts.js";
import { startTestLibvirtd, type TestLibvirtd } from "./libvirtd.js";

let daemon: TestLibvirtd | undefined;
let work = "";

beforeAll(async () => {
  daemon = await startTestLibvirtd();
  work = await mkdtemp(path.join("/var/tmp", `kvmstrap-verify-e2e-${process.pid}-`));
});
afterAll(async () => {
  await daemon?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const virsh = (...args: string[]) =>
  execa("virsh", ["-c", daemon?.uri ?? "", ...args], { env: { LC_ALL: "C" } });

async function verify(answer: string, uri = daemon?.uri ?? "") {
  const stateDir = path.join(work, "state");
  const r = await execa(
    process.execPath,
    [path.join(projectRoot, "bin/kvmstrap.js"), "verify", answer, "--connect", uri, "--state-dir", stateDir],
    { reject: false, env: { LC_ALL: "C" } },
  );
  const result = verifyResultSchema.parse(
    JSON.parse(await readFile(path.join(stateDir, "verify.json"), "utf8")),
  );
  return { ...r, result };
}

describe("kvmstrap verify boots its test VM", () => {
  it("passes: the VM printed its marker, the pool is active, nothing is left defined", async () => {
    if (!daemon) throw new Error("no test libvirtd");
    const poolDir = path.join(work, "pool");
    await virsh("pool-define-as", "verifypool", "dir", "--target", poolDir);
    await virsh("pool-build", "verifypool");
    await virsh("pool-start", "verifypool");
    const answer = path.join(work, "answer.yaml");
    await writeFile(
      answer,
      `version: 1\nstorage:\n  pools: [{ name: verifypool, type: dir, path: ${poolDir} }]\n`,
    );
    const t0 = Date.now();
    const r = await verify(answer);
    const ms = Date.now() - t0;
    const vm = r.result.checks.find((c) => c.id === "vm.boot");
    expect(vm?.status, `${vm?.found}\n${r.stderr}`).toBe("pass");
    expect(vm?.found).toMatch(/booted \((TCG|KVM)\) and printed its marker in \d+ ms/);
    expect(r.result.checks.find((c) => c.id === "pool.verifypool")?.status).toBe("pass");
    expect(r.stdout).toBe("KVMSTRAP-VERIFY: PASS");
    expect(r.exitCode).toBe(0);
    // The transient domain is gone, and so are its disk and serial log.
    expect((await virsh("list", "--all", "--name")).stdout.trim()).toBe("");
    console.log(`kvmstrap verify with the test VM: ${ms} ms (${vm?.found})`);

    await virsh("pool-destroy", "verifypool");
    const stopped = await verify(answer);
    expect(stopped.exitCode).toBe(1);
    expect(stopped.stdout).toBe("KVMSTRAP-VERIFY: FAIL (1 failed: pool.verifypool)");
    expect(stopped.result.checks.find((c) => c.id === "pool.verifypool")?.found).toBe(
      "defined but not active",
    );

    // No libvirtd behind the URI: both libvirt checks fail and say so.
    const away = await verify(answer, `qemu+unix:///system?socket=${work}/no-such-sock`);
    expect(away.exitCode).toBe(1);
    expect(away.result.checks.find((c) => c.id === "vm.boot")?.found).toMatch(
      /could not run the test VM \(\w+\): connect/,
    );
    expect(away.result.checks.find((c) => c.id === "pool.verifypool")?.found).toMatch(
      /^libvirt did not answer: connect/,
    );
  });
});
