// corosync.conf for a kvmstrap cluster: kronosnet transport with corosync's own encryption (the
// authkey the cluster plan writes at COROSYNC_AUTHKEY, the same on every member), one node per
// member with a fixed nodeid (its position in the answer, so every member renders the same file),
// and votequorum. With two members pacemaker could never keep quorum after losing one, so two_node
// (which implies wait_for_all: a freshly booted member waits to see the other once before it may act
// alone, so two halves of a cold-started partition never both run the VMs) is on by default there.
import type { Cluster } from "../../answer/schema-cluster.js";

export const COROSYNC_CONF = "/etc/corosync/corosync.conf";
/** The first words of the file kvmstrap writes: what tells it from a package's default corosync.conf. */
export const COROSYNC_CONF_MARK = "# Written by kvmstrap from the answer's cluster: section";
export const COROSYNC_AUTHKEY = "/etc/corosync/authkey";

/** two_node: the answer's ha.twoNode, else on exactly when the cluster has two members. */
export function twoNodeQuorum(c: Cluster): boolean {
  return c.ha?.twoNode ?? c.members.length === 2;
}

export function renderCorosyncConf(c: Cluster): string {
  const nodes = c.members.map(
    (m, i) => `\tnode {\n\t\tname: ${m.host}\n\t\tnodeid: ${i + 1}\n\t\tring0_addr: ${m.address}\n\t}\n`,
  );
  const quorum = ["\tprovider: corosync_votequorum"];
  if (twoNodeQuorum(c)) quorum.push("\ttwo_node: 1", "\twait_for_all: 1");
  return `${COROSYNC_CONF_MARK} (${c.name}); edits are replaced.
totem {
\tversion: 2
\tcluster_name: ${c.name}
\ttransport: knet
\tcrypto_cipher: aes256
\tcrypto_hash: sha256
\tkeyfile: ${COROSYNC_AUTHKEY}
}

nodelist {
${nodes.join("")}}

quorum {
${quorum.join("\n")}
}

logging {
\tto_syslog: yes
\tto_stderr: no
\tto_logfile: no
\ttimestamp: on
}
`;
}
