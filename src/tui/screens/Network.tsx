// Network: pick the uplink; a bridge over it takes over its MAC and addressing (DHCP or static).
// VLANs sit on that bridge; bonds join two or more other NICs. The management NIC (default route) is
// marked and never offered as a bond member; changes to it run under the confirm-or-revert timer.
import { Box } from "ink";
import { type ReactNode, useMemo, useState } from "react";
import { bond as bondSchema, vlan as vlanSchema } from "../../answer/schema.js";
import {
  type BondInput,
  type BridgeInput,
  bridgeOf,
  pickedNic,
  type VlanInput,
  withBonds,
  withBridge,
  withVlans,
} from "../draft.js";
import { bondMemberProblem, uplinkProblem } from "../model.js";
import type { ScreenProps } from "../types.js";
import { Line, ListView, move, NoteLine, Prompt, useHold, useKeys } from "../ui.js";

type Field = "name" | "mode" | "address" | "gateway" | "dns";
type Ask = "vlanId" | "vlanName" | "vlanAddr" | "bondName";
type Setting = { id: Field | "vlan" | "bond"; idx: number; text: string };

export const BOND_MODES = bondSchema.shape.mode.options;

/** The first zod issue of a candidate entry, as one line, or null when it parses. */
const problem = (r: { success: boolean; error?: { issues: { path: PropertyKey[]; message: string }[] } }) => {
  const i = r.success ? undefined : r.error?.issues[0];
  return i ? `${i.path.map(String).join(".") || "entry"}: ${i.message}` : null;
};

export function Network(props: ScreenProps): ReactNode {
  const { model, draft, setDraft, theme, width, height, setHold } = props;
  const [pane, setPane] = useState(0);
  const [sel, setSel] = useState(0);
  const [fsel, setFsel] = useState(0);
  const [editing, setEditing] = useState<Field | null>(null);
  const [ask, setAsk] = useState<Ask | null>(null);
  const [vlanDraft, setVlanDraft] = useState<{ id: number; name: string }>({ id: 1, name: "" });
  const [bondEd, setBondEd] = useState<{ members: string[]; mode: number; sel: number } | null>(null);
  const [note, setNote] = useState("");
  const bridge = bridgeOf(draft);
  const vlans = draft.network?.vlans ?? [];
  const bonds = draft.network?.bonds ?? [];
  const picked = useMemo(() => pickedNic(bridge?.uplink, model.report), [bridge, model]);
  const keyOf = (n: (typeof model.nics)[number]): string => n.nic.pciAddress ?? n.nic.name ?? "";
  const bonded = useMemo(() => {
    const out = new Map<string, string>();
    for (const b of bonds)
      for (const m of b.interfaces) {
        const k = pickedNic(m, model.report);
        if (k) out.set(k, b.name);
      }
    return out;
  }, [bonds, model]);
  // Bond members: the NICs the rule set accepts in a new bond (never the management NIC, the bridge
  // uplink or a NIC already in another bond: validate and plan say the same).
  const candidates = useMemo(
    () => model.nics.filter((n) => bondMemberProblem(model.report, draft, n.rule) === null),
    [model, draft],
  );
  useHold(setHold, editing || ask ? "all" : bondEd ? "esc" : "none");
  const rows = [
    ...model.nics.map((n) => {
      const key = keyOf(n);
      const on = bridge && key === picked;
      const mark = on ? theme.sym.on : theme.sym.off;
      const inBond = bonded.get(key);
      return {
        text: `${mark} ${n.management ? theme.sym.mgmt : " "} ${n.label}${n.management ? " (management)" : ""}${inBond ? ` (in ${inBond})` : ""}`,
      };
    }),
    { text: `${bridge ? theme.sym.off : theme.sym.on}   no bridge (leave the network as it is)` },
  ];
  const dhcp = !bridge || bridge.addresses === undefined || bridge.addresses === "dhcp";
  const addrText = (a: VlanInput["addresses"]) => (Array.isArray(a) ? a.join(", ") : "DHCP");
  const fields: Setting[] = bridge
    ? [
        { id: "name", idx: 0, text: `bridge name   ${bridge.name}` },
        { id: "mode", idx: 0, text: `addressing    ${dhcp ? "DHCP" : "static"}  (Enter toggles)` },
        ...(dhcp
          ? []
          : [
              {
                id: "address" as const,
                idx: 0,
                text: `address/len   ${Array.isArray(bridge.addresses) ? bridge.addresses.join(", ") : ""}`,
              },
              { id: "gateway" as const, idx: 0, text: `gateway       ${bridge.gateway ?? ""}` },
            ]),
        {
          id: "dns",
          idx: 0,
          text: `DNS servers   ${bridge.dns?.servers?.join(", ") ?? "(from DHCP or none)"}`,
        },
      ]
    : [];
  const extra: Setting[] = [
    ...vlans.map((v, idx) => ({
      id: "vlan" as const,
      idx,
      text: `VLAN ${v.name}  id ${v.id} on ${typeof v.link === "string" ? v.link : "a NIC"}, ${addrText(v.addresses)}`,
    })),
    ...bonds.map((b, idx) => ({
      id: "bond" as const,
      idx,
      text: `bond ${b.name}  ${b.mode}: ${b.interfaces.map((m) => m.name ?? m.pci ?? m.mac ?? "?").join(", ")}`,
    })),
  ];
  const settings = [...fields, ...extra];
  const update = (b: BridgeInput | null) => setDraft((d) => withBridge(d, b));
  const pick = (i: number) => {
    const n = model.nics[i];
    if (!n) return update(null);
    const why = uplinkProblem(model.report, draft, n.rule);
    if (why) return setNote(`refused: ${why}`);
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
  const answer = (a: Ask, v: string) => {
    const value = v.trim();
    if (a === "vlanId") {
      const id = /^\d+$/.test(value) ? Number(value) : Number.NaN;
      if (!(id >= 1 && id <= 4094)) {
        setAsk(null);
        return setNote(`refused: VLAN id "${value}" is not 1-4094`);
      }
      setVlanDraft({ id, name: "" });
      setNote("");
      return setAsk("vlanName");
    }
    if (a === "vlanName") {
      setVlanDraft((x) => ({ ...x, name: value }));
      return setAsk("vlanAddr");
    }
    if (a === "vlanAddr") {
      const list = value.split(/[\s,]+/).filter(Boolean);
      const entry: VlanInput = {
        name: vlanDraft.name,
        id: vlanDraft.id,
        link: bridge?.name ?? "br0",
        addresses: list.length === 0 || value.toLowerCase() === "dhcp" ? "dhcp" : list,
      };
      const bad = problem(vlanSchema.safeParse(entry));
      setAsk(null);
      if (bad) return setNote(`refused: ${bad}`);
      if ([bridge?.name, ...vlans.map((x) => x.name), ...bonds.map((x) => x.name)].includes(entry.name))
        return setNote(`refused: ${entry.name} is already an interface name here`);
      setNote(`added VLAN ${entry.name}`);
      return setDraft((d) => withVlans(d, [...(d.network?.vlans ?? []), entry]));
    }
    // bondName
    setAsk(null);
    if (!bondEd) return;
    const entry: BondInput = {
      name: value,
      mode: BOND_MODES[bondEd.mode] ?? "active-backup",
      interfaces: candidates.filter((n) => bondEd.members.includes(keyOf(n))).map((n) => n.rule),
    };
    const bad = problem(bondSchema.safeParse(entry));
    if (bad) return setNote(`refused: ${bad}`);
    if ([bridge?.name, ...vlans.map((x) => x.name), ...bonds.map((x) => x.name)].includes(entry.name))
      return setNote(`refused: ${entry.name} is already an interface name here`);
    setBondEd(null);
    setNote(`added bond ${entry.name}`);
    setDraft((d) => withBonds(d, [...(d.network?.bonds ?? []), entry]));
  };
  const remove = (s: Setting) => {
    if (s.id === "vlan")
      setDraft((d) =>
        withVlans(
          d,
          (d.network?.vlans ?? []).filter((_, i) => i !== s.idx),
        ),
      );
    if (s.id === "bond")
      setDraft((d) =>
        withBonds(
          d,
          (d.network?.bonds ?? []).filter((_, i) => i !== s.idx),
        ),
      );
    setFsel((i) => Math.max(0, Math.min(i, settings.length - 2)));
    setNote(`removed ${s.text.split("  ")[0]}`);
  };
  useKeys((input, key) => {
    if (bondEd) {
      if (key.escape) return setBondEd(null);
      if (input === "m") return setBondEd({ ...bondEd, mode: (bondEd.mode + 1) % BOND_MODES.length });
      if (input === "d") {
        if (bondEd.members.length < 2) return setNote("refused: a bond needs two or more NICs");
        return setAsk("bondName");
      }
      const n = candidates[bondEd.sel];
      if (n && (key.return || input === " ")) {
        const k = keyOf(n);
        const members = bondEd.members.includes(k)
          ? bondEd.members.filter((x) => x !== k)
          : [...bondEd.members, k];
        return setBondEd({ ...bondEd, members });
      }
      return setBondEd({ ...bondEd, sel: move(bondEd.sel, candidates.length, input, key) });
    }
    if (input === "v") {
      if (!bridge) return setNote("pick an uplink first: a VLAN sits on the bridge");
      return setAsk("vlanId");
    }
    if (input === "b") {
      if (candidates.length < 2)
        return setNote("refused: a bond needs two NICs that are not management, uplink or bonded");
      setNote("");
      return setBondEd({ members: [], mode: 0, sel: 0 });
    }
    if (key.tab) return setPane((p) => (settings.length ? 1 - p : 0));
    if (pane === 0) {
      if (key.return || input === " ") pick(sel);
      else setSel(move(sel, rows.length, input, key));
      return;
    }
    const f = settings[Math.min(fsel, settings.length - 1)];
    if (f && input === "x" && (f.id === "vlan" || f.id === "bond")) return remove(f);
    if (f && (key.return || input === " ")) {
      if (f.id === "vlan" || f.id === "bond") return setNote("x removes it");
      if (f.id !== "mode") return setEditing(f.id);
      if (dhcp) return setEditing("address");
      update({ ...bridge, name: bridge?.name ?? "br0", addresses: "dhcp", gateway: undefined });
    } else setFsel(move(fsel, settings.length, input, key));
  }, !editing && !ask);
  const initial: Record<Field, string> = {
    name: bridge?.name ?? "br0",
    mode: "",
    address: Array.isArray(bridge?.addresses) ? bridge.addresses.join(", ") : "",
    gateway: bridge?.gateway ?? "",
    dns: bridge?.dns?.servers?.join(", ") ?? "",
  };
  const asks: Record<Ask, { label: string; initial: string }> = {
    vlanId: { label: "VLAN id (1-4094)", initial: "" },
    vlanName: { label: "VLAN interface name", initial: `vlan${vlanDraft.id}` },
    vlanAddr: { label: "VLAN address/len, or dhcp", initial: "dhcp" },
    bondName: { label: "bond name", initial: `bond${bonds.length}` },
  };
  const bottomH = Math.min(settings.length || 1, Math.max(3, Math.floor(height / 2) - 2));
  const listH = Math.max(3, height - bottomH - 5);
  // Keyed by the question: each prompt starts from its own initial value.
  const prompt = (label: string, init: string, ok: (v: string) => void, cancel: () => void) => (
    <Prompt
      key={label}
      label={label}
      initial={init}
      width={width}
      theme={theme}
      onSubmit={ok}
      onCancel={cancel}
    />
  );
  let bottom: ReactNode;
  if (editing)
    bottom = prompt(
      editing === "address" ? "address/len (e.g. 192.0.2.10/24)" : editing,
      initial[editing],
      (v) => submit(editing, v),
      () => setEditing(null),
    );
  else if (ask)
    bottom = prompt(
      asks[ask].label,
      asks[ask].initial,
      (v) => answer(ask, v),
      () => setAsk(null),
    );
  else if (bondEd)
    bottom = (
      <Box flexDirection="column">
        <Line
          text={`New bond, mode ${BOND_MODES[bondEd.mode]} (m mode, Enter member, d done, Esc cancel):`}
          width={width}
          theme={theme}
          bold
        />
        <ListView
          rows={candidates.map((n) => ({
            text: `${bondEd.members.includes(keyOf(n)) ? theme.sym.on : theme.sym.off} ${n.label}`,
          }))}
          selected={bondEd.sel}
          height={Math.max(2, bottomH)}
          width={width}
          theme={theme}
        />
      </Box>
    );
  else
    bottom = (
      <ListView
        rows={settings}
        selected={fsel}
        height={bottomH}
        width={width}
        theme={theme}
        focused={pane === 1}
      />
    );
  return (
    <Box flexDirection="column">
      <Line text="Uplink for the VM bridge (Enter picks):" width={width} theme={theme} bold={pane === 0} />
      <ListView
        rows={rows}
        selected={sel}
        height={listH}
        width={width}
        theme={theme}
        focused={pane === 0 && !bondEd}
      />
      <Line
        text={
          bridge
            ? "Bridge settings, VLANs, bonds (Tab switches here):"
            : "No bridge: the host network is left as it is."
        }
        width={width}
        theme={theme}
        bold={pane === 1}
      />
      {bottom}
      <NoteLine note={note} width={width} theme={theme} />
    </Box>
  );
}
