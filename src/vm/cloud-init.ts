// cloud-init NoCloud seed documents (user-data, meta-data, network-config), built as objects from a
// typed, validated SeedInput, merged over the static templates/cloud-init/*.yaml and serialised by
// the yaml package as YAML 1.1 (what cloud-init's PyYAML reads: "on", "yes", "0644" come out
// quoted). No text substitution, so no value can inject YAML.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { z } from "zod";
import { InputError } from "../core/errors.js";
import { type Grammar, HOSTNAME, PASSWORD_HASH, SSH_PUBLIC_KEY, USER_NAME } from "../core/grammar.js";
import type { CommandRunner } from "../host/commands.js";

const oneLine = (what: string) =>
  z
    .string()
    .min(1)
    .regex(/^[^\r\n\0]*$/, `${what} must be a single line`);
/** The answer schema's identifier grammars, so a seed accepts exactly what `answer validate` does. */
const grammar = (g: Grammar) =>
  z.string().regex(g.pattern, { message: g.describe, abort: true }).refine(g.test, { message: g.describe });
const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const cidr = z.string().refine((s) => {
  const [ip, len, extra] = s.split("/");
  const v = isIP(ip ?? "");
  return v !== 0 && extra === undefined && /^\d+$/.test(len ?? "") && Number(len) <= (v === 4 ? 32 : 128);
}, "expected an address with a prefix length, e.g. 192.0.2.10/24");
const ip = z.string().refine((s) => isIP(s) !== 0, "expected an IP address");

export const seedInputSchema = z.strictObject({
  instanceId: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,128}$/)
    .optional(),
  hostname: grammar(HOSTNAME),
  user: z.strictObject({
    name: grammar(USER_NAME),
    sshKeys: z.array(grammar(SSH_PUBLIC_KEY)),
    passwordHash: grammar(PASSWORD_HASH).optional(),
    sudo: z.boolean().default(false),
  }),
  packages: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.+:~_=-]*$/, "a package name")).default([]),
  runcmd: z.array(z.union([z.string().min(1), z.array(z.string()).min(1)])).default([]),
  writeFiles: z
    .array(
      z.strictObject({
        path: oneLine("a path").regex(/^\//, "an absolute path"),
        content: z.string(),
        permissions: z
          .string()
          .regex(/^0[0-7]{3,4}$/)
          .default("0644"),
        owner: oneLine("an owner")
          .regex(/^[a-z_][a-z0-9_-]*(:[a-z_][a-z0-9_-]*)?$/)
          .optional(),
      }),
    )
    .default([]),
  phoneHomeUrl: z
    .string()
    .url()
    .refine((u) => /^https?:\/\//.test(u), "an http(s) URL")
    .optional(),
  network: z
    .strictObject({
      /** Matches the NIC by MAC (recommended: it names the NIC on every renderer). */
      macAddress: z
        .string()
        .regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i)
        .optional(),
      /** The interface name (default eth0); set-name when macAddress is given too. */
      interface: z
        .string()
        .regex(/^[a-z][a-z0-9._-]{0,14}$/)
        .optional(),
      dhcp: z.boolean().optional(),
      addresses: z.array(cidr).optional(),
      gateway: ip.optional(),
      dns: z.array(ip).optional(),
      search: z.array(z.string().regex(new RegExp(`^${LABEL}(?:\\.${LABEL})*$`, "i"))).optional(),
    })
    .refine((n) => Boolean(n.dhcp) !== Boolean(n.addresses?.length), "give dhcp: true or static addresses")
    .optional(),
});

export type SeedInput = z.input<typeof seedInputSchema>;
export type Seed = { userData: string; metaData: string; networkConfig: string; instanceId: string };
type Doc = Record<string, unknown>;

export const DEFAULT_TEMPLATE_DIR = fileURLToPath(new URL("../../templates/cloud-init/", import.meta.url));
export type SeedTemplates = { userData: Doc; metaData: Doc; networkConfig: Doc };
const cache = new Map<string, SeedTemplates>();

/** The static template documents (read once per directory). */
export function loadSeedTemplates(dir = DEFAULT_TEMPLATE_DIR): SeedTemplates {
  let t = cache.get(dir);
  if (!t) {
    const read = (f: string): Doc => {
      const v = parse(readFileSync(path.join(dir, f), "utf8"), { version: "1.1" }) as unknown;
      if (v === null || v === undefined) return {};
      if (typeof v !== "object" || Array.isArray(v)) throw new InputError(`${dir}/${f}: must be a mapping`);
      return v as Doc;
    };
    t = {
      userData: read("user-data.yaml"),
      metaData: read("meta-data.yaml"),
      networkConfig: read("network-config.yaml"),
    };
    cache.set(dir, t);
  }
  return t;
}

/** Template first; the deployment's lists are appended, its other values win. */
function merge(base: Doc, add: Doc): Doc {
  const out: Doc = structuredClone(base);
  for (const [k, v] of Object.entries(add)) {
    const b = out[k];
    out[k] = Array.isArray(b) && Array.isArray(v) ? [...b, ...v] : v;
  }
  return out;
}

const toYaml = (doc: Doc) => stringify(doc, { version: "1.1", aliasDuplicateObjects: false, lineWidth: 0 });

function networkDoc(n: z.output<typeof seedInputSchema>["network"]): Doc | null {
  if (!n) return null;
  const name = n.interface ?? "eth0";
  const eth: Doc = {};
  if (n.macAddress) eth.match = { macaddress: n.macAddress.toLowerCase() };
  if (n.macAddress && n.interface) eth["set-name"] = n.interface;
  if (n.dhcp) eth.dhcp4 = true;
  if (n.addresses?.length) eth.addresses = n.addresses;
  if (n.gateway) eth.routes = [{ to: isIP(n.gateway) === 6 ? "::/0" : "0.0.0.0/0", via: n.gateway }];
  if (n.dns?.length || n.search?.length) {
    eth.nameservers = {
      ...(n.dns?.length ? { addresses: n.dns } : {}),
      ...(n.search ? { search: n.search } : {}),
    };
  }
  return { ethernets: { [name]: eth } };
}

/** Builds the three seed documents. Invalid input throws an InputError naming the field. */
export function renderSeed(input: SeedInput, templates: SeedTemplates = loadSeedTemplates()): Seed {
  const r = seedInputSchema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new InputError(`seed: ${i?.path.join(".") || "(input)"}: ${i?.message ?? "invalid"}`);
  }
  const s = r.data;
  const short = s.hostname.split(".")[0] as string;
  const user: Doc = { name: s.user.name, shell: "/bin/bash", lock_passwd: !s.user.passwordHash };
  if (s.user.passwordHash) user.hashed_passwd = s.user.passwordHash;
  if (s.user.sudo) user.sudo = "ALL=(ALL) NOPASSWD:ALL";
  if (s.user.sshKeys.length) user.ssh_authorized_keys = s.user.sshKeys;
  const ud: Doc = { hostname: short, manage_etc_hosts: true, users: [user] };
  if (short !== s.hostname) ud.fqdn = s.hostname;
  if (s.packages.length) ud.packages = s.packages;
  if (s.writeFiles.length) ud.write_files = s.writeFiles;
  if (s.runcmd.length) ud.runcmd = s.runcmd;
  if (s.phoneHomeUrl) ud.phone_home = { url: s.phoneHomeUrl, post: ["instance_id", "hostname"], tries: 10 };
  const userData = `#cloud-config\n${toYaml(merge(templates.userData, ud))}`;
  const net = networkDoc(s.network);
  // No network input: an empty document, so cloud-init uses its fallback (DHCP on the first NIC).
  // ("version: 2" alone would be read as "configure nothing".)
  const networkConfig = net ? toYaml(merge(templates.networkConfig, net)) : "{}\n";
  const instanceId =
    s.instanceId ??
    `iid-kvmstrap-${createHash("sha256").update(userData).update("\0").update(networkConfig).digest("hex").slice(0, 24)}`;
  const metaData = toYaml(merge(templates.metaData, { "instance-id": instanceId, "local-hostname": short }));
  return { userData, metaData, networkConfig, instanceId };
}

export type SeedValidation = { ok: boolean; issues: string[]; checkedBy: string[] };

const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function structural(seed: Seed): string[] {
  const issues: string[] = [];
  const load = (name: string, text: string): Doc | null => {
    try {
      const v = parse(text, { version: "1.1" }) as unknown;
      if (v && typeof v === "object" && !Array.isArray(v)) return v as Doc;
      issues.push(`${name}: must be a mapping`);
    } catch (e) {
      issues.push(`${name}: ${(e as Error).message.split("\n")[0]}`);
    }
    return null;
  };
  if (!seed.userData.startsWith("#cloud-config\n")) issues.push("user-data: must start with #cloud-config");
  const ud = load("user-data", seed.userData);
  const md = load("meta-data", seed.metaData);
  const nc = load("network-config", seed.networkConfig);
  const type = (
    doc: Doc | null,
    name: string,
    key: string,
    t: "string" | "array" | "object",
    need = false,
  ) => {
    const v = doc?.[key];
    if (v === undefined) {
      if (need && doc) issues.push(`${name}: ${key}: required`);
      return;
    }
    const ok = t === "array" ? Array.isArray(v) : typeof v === t && !Array.isArray(v) && v !== null;
    if (!ok) issues.push(`${name}: ${key}: must be ${t === "array" ? "a list" : `a ${t}`}`);
  };
  type(md, "meta-data", "instance-id", "string", true);
  type(md, "meta-data", "local-hostname", "string");
  for (const k of ["hostname", "fqdn"]) type(ud, "user-data", k, "string");
  for (const k of ["users", "packages", "runcmd", "write_files"]) type(ud, "user-data", k, "array");
  type(ud, "user-data", "phone_home", "object");
  for (const [i, u] of asList(ud?.users).entries()) {
    if (u !== "default" && typeof (u as Doc)?.name !== "string")
      issues.push(`user-data: users.${i}.name: required`);
  }
  for (const [i, f] of asList(ud?.write_files).entries()) {
    if (typeof (f as Doc)?.path !== "string") issues.push(`user-data: write_files.${i}.path: required`);
  }
  const netv = (nc?.network as Doc | undefined) ?? nc;
  if (netv && Object.keys(netv).length > 0 && netv.version !== 2 && netv.version !== 1) {
    issues.push("network-config: version: must be 1 or 2");
  }
  return issues;
}

/**
 * Structural checks always; then `cloud-init schema --config-file` on the user-data when cloud-init
 * is installed (Debian package cloud-init; its services need not run).
 */
export async function validateSeed(seed: Seed, runner: CommandRunner): Promise<SeedValidation> {
  const issues = structural(seed);
  const checkedBy = ["structure"];
  if (issues.length === 0 && (await runner.which("cloud-init"))) {
    const dir = await mkdtemp(path.join(tmpdir(), "kvmstrap-seed-"));
    try {
      const file = path.join(dir, "user-data");
      await writeFile(file, seed.userData);
      const r = await runner.run("cloud-init", ["schema", "--config-file", file], { timeoutMs: 60_000 });
      checkedBy.push("cloud-init schema");
      if (r.exitCode !== 0) {
        const lines = `${r.stderr}\n${r.stdout}`.split("\n").map((l) => l.trim());
        issues.push(
          ...lines
            .filter((l) => l && !/^(Error:.*schema|Error:|Cloud config schema deprecations:)$/.test(l))
            .slice(0, 20),
        );
        if (!issues.length) issues.push(`cloud-init schema exited ${r.exitCode}`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  return { ok: issues.length === 0, issues, checkedBy };
}
