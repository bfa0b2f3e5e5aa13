// kvmstrap.answer=https://... with and without kvmstrap.answer-fingerprint=, against a real Node
// https server whose self-signed certificate openssl makes here; the expected fingerprint is
// openssl's own reading of that certificate, not a value computed the way the code under test does.
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MAX_ANSWER_BYTES } from "../../src/answer/load.js";
import { findAnswer } from "../../src/app/answer-source.js";
import { parseKernelCmdline } from "../../src/app/node-protocol.js";

const ANSWER = "version: 1\nkvm:\n  nested: true\n";
const TOKEN = "tok-TLS-SECRET-42";

const opensslWhy = spawnSync("openssl", ["version"]).status === 0 ? undefined : "openssl missing";

describe.skipIf(opensslWhy)(
  `https answer source with a pinned certificate${opensslWhy ? ` (skipped: ${opensslWhy})` : ""}`,
  () => {
    let scratch = "";
    let server: Server;
    let base = "";
    let fingerprint = ""; // AB:CD:... as openssl prints it
    let handshakes = 0; // TCP connections, each one TLS handshake
    let requests: { url: string; auth: string | undefined }[] = [];
    let handler: (req: IncomingMessage, res: ServerResponse) => void = (_q, r) => r.end(ANSWER);

    beforeAll(async () => {
      scratch = await mkdtemp(path.join(tmpdir(), "kvms-tls-"));
      const key = path.join(scratch, "key.pem");
      const cert = path.join(scratch, "cert.pem");
      const made = spawnSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-keyout",
          key,
          "-out",
          cert,
          "-days",
          "2",
          "-subj",
          "/CN=kvmstrap-boot-server",
          "-addext",
          "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        { encoding: "utf8" },
      );
      if (made.status !== 0) throw new Error(`openssl req: ${made.stderr}`);
      const fp = spawnSync("openssl", ["x509", "-in", cert, "-noout", "-fingerprint", "-sha256"], {
        encoding: "utf8",
      });
      fingerprint = /Fingerprint=([0-9A-F:]+)/i.exec(fp.stdout)?.[1]?.toUpperCase() ?? "";
      expect(fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      server = createServer({ key: await readFile(key), cert: await readFile(cert) }, (req, res) => {
        requests.push({ url: req.url ?? "", auth: req.headers.authorization });
        handler(req, res);
      });
      server.on("connection", () => handshakes++);
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      server?.closeAllConnections();
      await new Promise((r) => server?.close(r));
      await rm(scratch, { recursive: true, force: true });
    });
    beforeEach(() => {
      handshakes = 0;
      requests = [];
      handler = (_q, r) => r.end(ANSWER);
    });

    const fast = { attempts: 3, backoffMs: 20, timeoutMs: 2000 };
    const find = (extra: string, http: object = {}) =>
      findAnswer(parseKernelCmdline(`quiet kvmstrap.answer=${base}/answer.yaml ${extra}`), {
        embedded: null,
        http: { ...fast, bearer: { origin: base, token: TOKEN }, ...http },
      });

    it("a matching pin (sha256: prefix, colons, lower case) fetches the answer from a self-signed server", async () => {
      const got = await find(`kvmstrap.answer-fingerprint=sha256:${fingerprint.toLowerCase()}`);
      expect(got).toMatchObject({ text: ANSWER, answer: { kvm: { nested: true } } });
      expect(requests).toEqual([{ url: "/answer.yaml", auth: `Bearer ${TOKEN}` }]);
      // The bare form: 64 hex digits, no prefix, no colons.
      const bare = await find(`kvmstrap.answer-fingerprint=${fingerprint.replaceAll(":", "")}`);
      expect(bare?.text).toBe(ANSWER);
    });

    it("a pin that does not match is refused at once, naming both fingerprints, and nothing is sent", async () => {
      const other = `${fingerprint.slice(0, -2)}${fingerprint.endsWith("00") ? "01" : "00"}`;
      await expect(find(`kvmstrap.answer-fingerprint=${other}`)).rejects.toThrow(
        `answer from ${base}/answer.yaml: the server's certificate has SHA-256 fingerprint ${fingerprint}, ` +
          `not the kvmstrap.answer-fingerprint=${other} the command line pinned; nothing was sent to it`,
      );
      expect(handshakes).toBe(1); // final: a retry would meet the same certificate
      expect(requests).toEqual([]); // no request, so no bearer token, reached the server
    });

    it("without a pin the usual CA check refuses the self-signed certificate, at once, with a hint", async () => {
      const retries: string[] = [];
      await expect(find("", { onRetry: (l: string) => retries.push(l) })).rejects.toThrow(
        `answer from ${base}/answer.yaml: DEPTH_ZERO_SELF_SIGNED_CERT (the certificate is not trusted; a self-signed one can be pinned with kvmstrap.answer-fingerprint=sha256:...)`,
      );
      expect(retries).toEqual([]);
      expect(requests).toEqual([]);
    });

    it("a malformed pin, or a pin without an https answer, is an input error naming the parameter", async () => {
      for (const bad of ["sha256:XYZ", "AB:CD", `md5:${fingerprint}`, `${fingerprint}:00`]) {
        await expect(find(`kvmstrap.answer-fingerprint=${bad}`)).rejects.toMatchObject({
          name: "InputError",
          exitCode: 2,
          message: `kvmstrap.answer-fingerprint=${bad}: not a SHA-256 certificate fingerprint (64 hex digits, colons and a sha256: prefix optional)`,
        });
      }
      await expect(
        findAnswer(
          parseKernelCmdline(
            `kvmstrap.answer=http://127.0.0.1:1/a.yaml kvmstrap.answer-fingerprint=${fingerprint}`,
          ),
          { embedded: null },
        ),
      ).rejects.toThrow(/pins an https server's certificate, but kvmstrap.answer= is not an https:\/\/ URL/);
      expect(requests).toEqual([]);
    });

    it("the pinned fetch keeps the size and time bounds", async () => {
      handler = (_q, res) => {
        res.write("#".repeat(600_000));
        res.end("#".repeat(MAX_ANSWER_BYTES));
      };
      await expect(find(`kvmstrap.answer-fingerprint=${fingerprint}`)).rejects.toThrow(
        /too large for an answer file/,
      );
      handler = () => {}; // holds the request open
      const t = Date.now();
      await expect(
        find(`kvmstrap.answer-fingerprint=${fingerprint}`, { attempts: 2, backoffMs: 10, timeoutMs: 300 }),
      ).rejects.toThrow(`answer from ${base}/answer.yaml: no answer within 300 ms`);
      expect(Date.now() - t).toBeGreaterThanOrEqual(600);
      expect(requests).toHaveLength(3);
      server.closeAllConnections();
    });
  },
);
