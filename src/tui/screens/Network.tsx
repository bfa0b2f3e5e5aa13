// Network: pick the uplink; a bridge over it takes over its MAC and addressing (DHCP or static).
// The management NIC (default route) is marked; changes to it run under the confirm-or-revert timer.
import { Box } from "ink";
import { type ReactNode, useMemo, useState } from "react";
import { type BridgeInput, bridgeOf, pickedNic, withBridge } from "../draft.js";
import type { ScreenProps } from "../types.js";
import { Line, ListView, move, Prompt, useHold, useKeys } from "../ui.js";

type Field = "name" | "mode" | "address" | "gateway" | "dns";

export function Network(props: ScreenProps): ReactNode {
  const { model, draft, setDraft, theme, width, height, setHold } = props;
  const [pane, setPane] = useState(0);
  const [sel, setSel] = useState(0);
  const [fsel, setFsel] = useState(0);
  const [editing, setEditing] = useState<Field | null>(null);
  const bridge = bridgeOf(draft);
  const picked = useMemo(() => pickedNic(bridge?.uplink, model.report), [bridge, model]);
  useHold(setHold, editing ? "all" : "none");
  const rows = [
    ...model.nics.map((n) => {
      const key = n.nic.pciAddress ?? n.nic.name;
      const on = bridge && key === picked;
      const mark = on ? theme.sym.on : theme.sym.off;
      return {
        text: `${mark} ${n.management ? theme.sym.mgmt : " "} ${n.label}${n.management ? " (management)" : ""}`,
      };
    }),
    { text: `${bridge ? theme.sym.off : theme.sym.on}   no bridge (leave the network as it is)` },
  ];
  const dhcp = !bridge || bridge.addresses === undefined || bridge.addresses === "dhcp";
  const fields: { id: Field; text: string }[] = bridge
    ? [
        { id: "name", text: `bridge name   ${bridge.name}` },
        { id: "mode", text: `addressing    ${dhcp ? "DHCP" : "static"}  (Enter toggles)` },
        ...(dhcp
          ? []
          : [
              {
                id: "address" as const,
                text: `address/len   ${Array.isArray(bridge.addresses) ? bridge.addresses.join(", ") : ""}`,
              },
              { id: "gateway" as const, text: `gateway       ${bridge.gateway ?? ""}` },
            ]),
        { id: "dns", text: `DNS servers   ${bridge.dns?.servers?.join(", ") ?? "(from DHCP or none)"}` },
      ]
    : [];
  const update = (b: BridgeInput | null) => setDraft((d) => withBridge(d, b));
  const pick = (i: number) => {
    const n = model.nics[i];
    if (!n) return update(null);
    update({ ...(bridge ?? { name: "br0", addresses: "dhcp" }), uplink: n.rule });
  };
  const submit = (f: Field, v: string) => {
    setEditing(null);
    if (!bridge) return;
    const value = v.trim();
    const list = value.split(/[\s,]+/).filter(Boolean);
    if (f === "name" && value) update({ ...bridge, name: value });
    if (f === "address") update({ ...bridge, addresses: list.length ? list : "dhcp" });
    if (f === "gateway") update({ ...bridge, gateway: value || undefined });
    if (f === "dns") update({ ...bridge, dns: list.length ? { servers: list } : undefined });
  };
  useKeys((input, key) => {
    if (key.tab) return setPane((p) => (bridge ? 1 - p : 0));
    if (pane === 0) {
      if (key.return || input === " ") pick(sel);
      else setSel(move(sel, rows.length, input, key));
      return;
    }
    const f = fields[Math.min(fsel, fields.length - 1)];
    if (f && (key.return || input === " ")) {
      if (f.id !== "mode") return setEditing(f.id);
      if (dhcp) return setEditing("address");
      update({ ...bridge, name: bridge?.name ?? "br0", addresses: "dhcp", gateway: undefined });
    } else setFsel(move(fsel, fields.length, input, key));
  }, !editing);
  const initial: Record<Field, string> = {
    name: bridge?.name ?? "br0",
    mode: "",
    address: Array.isArray(bridge?.addresses) ? bridge.addresses.join(", ") : "",
    gateway: bridge?.gateway ?? "",
    dns: bridge?.dns?.servers?.join(", ") ?? "",
  };
  const listH = Math.max(3, height - fields.length - 4);
  return (
    <Box flexDirection="column">
      <Line text="Uplink for the VM bridge (Enter picks):" width={width} theme={theme} bold={pane === 0} />
      <ListView rows={rows} selected={sel} height={listH} width={width} theme={theme} focused={pane === 0} />
      <Line
        text={
          bridge ? "Bridge settings (Tab switches here):" : "No bridge: the host network is left as it is."
        }
        width={width}
        theme={theme}
        bold={pane === 1}
      />
      {editing ? (
        <Prompt
          label={editing === "address" ? "address/len (e.g. 192.0.2.10/24)" : editing}
          initial={initial[editing]}
          width={width}
          theme={theme}
          onSubmit={(v) => submit(editing, v)}
          onCancel={() => setEditing(null)}
        />
      ) : (
        <ListView
          rows={fields}
          selected={fsel}
          height={fields.length || 1}
          width={width}
          theme={theme}
          focused={pane === 1}
        />
      )}
    </Box>
  );
}
