// A running domain's <graphics> as libvirt writes them (single quotes, the ports it chose), turned
// into virt-viewer's .vv file and a URI: the ports, the CA with escaped newlines, SPICE's subject,
// every channel secure when SPICE has only a TLS port, no password; and the CLI's usage errors.
import { describe, expect, it } from "vitest";
import { vmConsoleCommand, wantsRemoteConsole } from "../../src/cli/vm-console-command.js";
import { consoleUri, graphicsOf, renderVv } from "../../src/vm/console-file.js";
import { captureCli } from "../helpers/capture-cli.js";

const LIVE = `<domain type='qemu' id='1'>
  <devices>
    <graphics type='vnc' port='5900' autoport='yes' listen='192.0.2.10'>
      <listen type='address' address='192.0.2.10'/>
    </graphics>
    <graphics type='spice' tlsPort='5901' autoport='yes' listen='192.0.2.10' defaultMode='secure'>
      <listen type='address' address='192.0.2.10'/>
      <image compression='off'/>
    </graphics>
    <graphics type='sdl'/>
  </devices>
</domain>`;

const CA = "-----BEGIN CERTIFICATE-----\nMIIB\nAAAA\n-----END CERTIFICATE-----\n";

describe("console connection files", () => {
  it("reads the ports libvirt chose for VNC and SPICE", () => {
    expect(graphicsOf(LIVE)).toEqual([
      { type: "vnc", listen: "192.0.2.10", port: 5900, tlsPort: null },
      { type: "spice", listen: "192.0.2.10", port: null, tlsPort: 5901 },
    ]);
    // A defined but stopped domain: autoport leaves port='-1'.
    expect(
      graphicsOf(
        `<graphics type='vnc' port='-1' autoport='yes'><listen type='address' address='::1'/></graphics>`,
      ),
    ).toEqual([{ type: "vnc", listen: "::1", port: null, tlsPort: null }]);
  });

  it("a SPICE .vv: TLS port only, every channel secure, the CA on one line, the subject to check", () => {
    const vv = renderVv({
      type: "spice",
      title: "web1",
      host: "192.0.2.10",
      port: null,
      tlsPort: 5901,
      ca: CA,
      hostSubject: "O=kvmstrap,CN=kvm1",
    });
    expect(vv.split("\n")).toEqual([
      "[virt-viewer]",
      "type=spice",
      "title=web1",
      "host=192.0.2.10",
      "tls-port=5901",
      "ca=-----BEGIN CERTIFICATE-----\\nMIIB\\nAAAA\\n-----END CERTIFICATE-----\\n",
      "host-subject=O=kvmstrap,CN=kvm1",
      "secure-channels=all",
      "delete-this-file=0",
      "",
    ]);
    expect(vv).not.toMatch(/password/i);
  });

  it("a VNC .vv and the URIs", () => {
    const vnc = {
      type: "vnc" as const,
      title: "web1",
      host: "2001:db8::10",
      port: 5900,
      tlsPort: null,
      ca: CA,
      hostSubject: null,
    };
    expect(renderVv(vnc)).toContain("type=vnc\ntitle=web1\nhost=2001:db8::10\nport=5900\nca=");
    expect(consoleUri(vnc)).toBe("vnc://[2001:db8::10]:5900");
    expect(consoleUri({ ...vnc, type: "spice", host: "192.0.2.10", port: null, tlsPort: 5901 })).toBe(
      "spice://192.0.2.10?tls-port=5901",
    );
  });

  it("vm console --vnc|--spice goes to the remote console; its usage errors exit 2", async () => {
    expect(wantsRemoteConsole(["console", "web1", "--spice"])).toBe(true);
    expect(wantsRemoteConsole(["console", "web1"])).toBe(false);
    expect((await captureCli(() => vmConsoleCommand(["web1", "--vnc", "--spice"]))).code).toBe(2);
    expect((await captureCli(() => vmConsoleCommand(["web1"]))).code).toBe(2);
    expect((await captureCli(() => vmConsoleCommand(["--vnc"]))).code).toBe(2);
  });
});
