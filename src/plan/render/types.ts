// Inputs of the pure renderers: already-resolved network state (match rules applied, NIC names and MACs
// known). The planner builds these from the answer file and the detected facts.
export type Addressing = {
  dhcp: boolean;
  addresses: string[];
  gateway?: string;
  dns?: { servers: string[]; search: string[] };
  mtu?: number;
  routes?: { to: string; via: string; metric?: number }[];
};
export type NetBridge = {
  name: string;
  ports: string[];
  mac?: string;
  stp: boolean;
  vlanAware: boolean;
} & Addressing;
export type NetBond = { name: string; interfaces: string[]; mode: string } & Addressing;
export type NetVlan = { name: string; id: number; link: string } & Addressing;
export type NetworkDesired = {
  bridges: NetBridge[];
  bonds: NetBond[];
  vlans: NetVlan[];
  /** physical NICs that become ports: no addresses of their own */
  ports: { name: string; mac?: string }[];
};

/** A rendered file: where it goes, what it holds, and its mode. */
export type RenderedFile = { path: string; content: string; mode: number };
