// Builds what one e2e guest needs: an ssh key, the NoCloud seed ISO and the domain XML (both from the
// product's own code in src/vm), a qcow2 overlay on the cached base image, and the test network.
import { generateKeyPairSync } from "node:crypto";
import path from "node:path";
import { execa } from "execa";
import { renderSeed } from "../../src/vm/cloud-init.js";
import { renderDomainXml } from "../../src/vm/domain-xml.js";
import { buildSeedIso } from "../../src/vm/seed-iso.js";
import type { GuestImage } from "./guest-image.js";

export const TEST_NET = {
  name: "kvmstrap-test",
  bridge: "kvmstrap-br0",
  gateway: "192.168.150.1", // the bridge, inside the test libvirtd's network namespace
  host: "192.168.150.2", // the host end of the veth pair: where test servers listen
  prefix: 24,
};

/** An OpenSSH "ssh-ed25519 AAAA... comment" public key line (the private key is not needed). */
export function sshPublicKey(comment: string): string {
  const { publicKey } = generateKeyPairSync("ed25519");
  const raw = Buffer.from(publicKey.export({ format: "jwk" }).x ?? "", "base64url");
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  const blob = Buffer.concat([str(Buffer.from("ssh-ed25519")), str(raw)]);
  return `ssh-ed25519 ${blob.toString("base64")} ${comment}`;
}

export function networkXml(): string {
  return `<network>
  <name>${TEST_NET.name}</name>
  <bridge name="${TEST_NET.bridge}" stp="off" delay="0"/>
  <ip address="${TEST_NET.gateway}" prefix="${TEST_NET.prefix}">
    <dhcp><range start="192.168.150.100" end="192.168.150.200"/></dhcp>
  </ip>
</network>
`;
}

export type SeedParams = {
  dir: string;
  hostname: string;
  user: string;
  sshKey: string;
  phoneHome: string;
};

/**
 * The product's own seed: renderSeed (user-data from templates/cloud-init, instance-id from the
 * content's hash) written by the in-process ISO9660 writer. Returns the ISO path and instance id.
 */
export async function writeSeed(s: SeedParams): Promise<{ iso: string; instanceId: string }> {
  const seed = renderSeed({
    hostname: s.hostname,
    user: { name: s.user, sshKeys: [s.sshKey], sudo: true },
    runcmd: [["sh", "-c", "echo runcmd-ok > /var/tmp/kvmstrap-runcmd"]],
    phoneHomeUrl: s.phoneHome,
  });
  const iso = path.join(s.dir, "seed.iso");
  await buildSeedIso(seed, iso);
  return { iso, instanceId: seed.instanceId };
}

export async function createOverlay(base: string, overlay: string): Promise<void> {
  await execa("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, overlay]);
}

export type DomainInput = {
  name: string;
  image: GuestImage;
  overlay: string;
  seed: string;
  mac: string;
  serialLog: string;
};

/** The product's domain XML (TCG here: /dev/kvm cannot run a stock kernel on these hosts). */
export function domainXml(d: DomainInput): string {
  return renderDomainXml({
    name: d.name,
    domainType: "qemu",
    vcpus: 2,
    memoryMiB: 1024,
    disk: { path: d.overlay, format: "qcow2" },
    seed: { path: d.seed },
    nics: [{ kind: "network", network: TEST_NET.name, mac: d.mac }],
    kernel: { path: d.image.kernel, initrd: d.image.initrd, cmdline: d.image.append },
    serialLog: d.serialLog,
  });
}
