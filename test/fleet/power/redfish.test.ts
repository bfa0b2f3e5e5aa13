// The Redfish power driver against the HTTP requests it makes. No BMC can exist here, so a small
// responder plays one, built from the DMTF Redfish schema's documented resources: a Systems
// collection whose Members name each system by @odata.id; a ComputerSystem with PowerState (On, Off)
// and Actions["#ComputerSystem.Reset"] = { target, "ResetType@Redfish.AllowableValues" }; the Reset
// action taking {"ResetType": ...} by POST and answering 204; errors as {"error": {"message",
// "@Message.ExtendedInfo"}}; HTTP basic authentication. It records every request. HTTPS with a
// self-signed certificate (made by openssl for the test) checks that one is refused unless the
// target says insecure.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import {
  createServer as createHttp,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttps } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { PowerError } from "../../../src/fleet/power/port.js";
import { RedfishPower } from "../../../src/fleet/power/redfish.js";

const USER = "root";
const PASSWORD = "calvin-Not-Default";

interface Bmc {
  url: string;
  power: Record<string, "On" | "Off">;
  requests: { method: string; path: string; body: unknown; auth: string | undefined }[];
  close(): Promise<void>;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

function bmc(
  o: { systems?: string[]; allowed?: string[]; tls?: { key: Buffer; cert: Buffer }; huge?: boolean } = {},
): Promise<Bmc> {
  const systems = o.systems ?? ["/redfish/v1/Systems/System.Embedded.1"];
  const allowed = o.allowed ?? ["On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle", "Nmi"];
  const power: Bmc["power"] = Object.fromEntries(systems.map((s) => [s, "Off"]));
  const requests: Bmc["requests"] = [];
  const send = (res: ServerResponse, status: number, body?: unknown) => {
    res.writeHead(status, body === undefined ? {} : { "content-type": "application/json" });
    res.end(body === undefined ? undefined : JSON.stringify(body));
  };
  const error = (res: ServerResponse, status: number, message: string) =>
    send(res, status, {
      error: {
        code: "Base.1.8.GeneralError",
        message: "A general error has occurred.",
        "@Message.ExtendedInfo": [{ Message: message }],
      },
    });
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    let raw = "";
    req.on("data", (c) => {
      raw += c;
    });
    req.on("end", () => {
      const p = new URL(req.url ?? "/", "http://x").pathname;
      const body = raw ? JSON.parse(raw) : null;
      requests.push({ method: req.method ?? "", path: p, body, auth: req.headers.authorization });
      if (req.headers.authorization !== `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}`)
        return error(
          res,
          401,
          "The authentication credentials included with this request are missing or invalid.",
        );
      if (o.huge) return send(res, 200, { pad: "x".repeat(2 * 1024 * 1024) });
      if (req.method === "GET" && p === "/redfish/v1/Systems")
        return send(res, 200, {
          "@odata.id": "/redfish/v1/Systems",
          "Members@odata.count": systems.length,
          Members: systems.map((s) => ({ "@odata.id": s })),
        });
      const system = systems.find((s) => p === s);
      if (req.method === "GET" && system)
        return send(res, 200, {
          "@odata.id": system,
          "@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem",
          PowerState: power[system],
          Actions: {
            "#ComputerSystem.Reset": {
              target: `${system}/Actions/ComputerSystem.Reset`,
              "ResetType@Redfish.AllowableValues": allowed,
            },
          },
        });
      const resetOf = systems.find((s) => p === `${s}/Actions/ComputerSystem.Reset`);
      if (req.method === "POST" && resetOf) {
        const type = body?.ResetType;
        if (!allowed.includes(type))
          return error(
            res,
            400,
            `The value ${type} for the parameter ResetType is not in the list of acceptable values.`,
          );
        if (type === "On" && power[resetOf] === "On") return error(res, 409, "The system is already on.");
        power[resetOf] = type === "ForceOff" ? "Off" : "On";
        return send(res, 204);
      }
      return error(res, 404, `no resource at ${p}`);
    });
  };
  const server = o.tls ? createHttps({ key: o.tls.key, cert: o.tls.cert }, handler) : createHttp(handler);
  servers.push(server);
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `${o.tls ? "https" : "http"}://127.0.0.1:${port}`,
        power,
        requests,
        close: () => new Promise((r) => server.close(() => r())),
      });
    }),
  );
}

const target = (url: string) => ({ url, user: USER, password: PASSWORD });

describe("Redfish power (ComputerSystem.Reset)", () => {
  it("finds the system, powers it on and cycles it with allowed reset types, with basic auth", async () => {
    const b = await bmc();
    const p = new RedfishPower(target(b.url));
    expect(await p.status()).toBe("off");
    await p.on();
    expect(b.power["/redfish/v1/Systems/System.Embedded.1"]).toBe("On");
    await p.on(); // already on: nothing posted
    await p.cycle();
    await p.off();
    expect(await p.status()).toBe("off");
    const posts = b.requests.filter((r) => r.method === "POST");
    expect(posts.map((r) => [r.path, r.body])).toEqual([
      ["/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset", { ResetType: "On" }],
      ["/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset", { ResetType: "PowerCycle" }],
      ["/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset", { ResetType: "ForceOff" }],
    ]);
    expect(b.requests.filter((r) => r.path === "/redfish/v1/Systems")).toHaveLength(1); // found once
  });

  it("cycles with ForceRestart where PowerCycle is not allowed, and names the system to use when there are several", async () => {
    const b = await bmc({
      systems: ["/redfish/v1/Systems/1", "/redfish/v1/Systems/2"],
      allowed: ["On", "ForceOff", "ForceRestart"],
    });
    await expect(new RedfishPower(target(b.url)).status()).rejects.toThrow(
      "the service lists 2 systems: name one (system: /redfish/v1/Systems/ID)",
    );
    const p = new RedfishPower({ ...target(b.url), system: "/redfish/v1/Systems/2" });
    await p.on();
    await p.cycle();
    expect(
      b.requests.filter((r) => r.method === "POST").map((r) => (r.body as { ResetType: string }).ResetType),
    ).toEqual(["On", "ForceRestart"]);
    expect(b.power["/redfish/v1/Systems/1"]).toBe("Off");
  });

  it("reports the service's own error message, never the password", async () => {
    const b = await bmc();
    const wrong = new RedfishPower({ ...target(b.url), password: "wrong-password" });
    const err = await wrong.on().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PowerError);
    expect((err as Error).message).toBe(
      `redfish ${b.url}: GET /redfish/v1/Systems: HTTP 401: The authentication credentials included with this request are missing or invalid.`,
    );
    expect((err as Error).message).not.toContain("wrong-password");
    const noCycle = await bmc({ allowed: ["On", "ForceOff"] });
    const p = new RedfishPower(target(noCycle.url));
    await p.on();
    await expect(p.cycle()).rejects.toThrow(
      "the system allows ResetType On, ForceOff, not PowerCycle or ForceRestart",
    );
  });

  it("refuses a reply over 1 MiB", async () => {
    const b = await bmc({ huge: true });
    await expect(new RedfishPower(target(b.url)).status()).rejects.toThrow("reply larger than 1048576 bytes");
  });

  const tmp = mkdtempSync(path.join(tmpdir(), `kvmstrap-redfish-${process.pid}-`));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("refuses a self-signed certificate unless the target says insecure", async () => {
    const key = path.join(tmp, "key.pem");
    const cert = path.join(tmp, "cert.pem");
    execFileSync(
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
        "1",
        "-subj",
        "/CN=bmc.test",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ],
      { stdio: "ignore" },
    );
    const b = await bmc({ tls: { key: readFileSync(key), cert: readFileSync(cert) } });
    await expect(new RedfishPower(target(b.url)).status()).rejects.toThrow(/self.signed certificate/);
    expect(await new RedfishPower({ ...target(b.url), insecure: true }).status()).toBe("off");
  });
});
