// Every match rule must pick exactly one device: nothing matched, several matched without a pick, or
// a pick that does not apply are errors at the rule's path, with the candidates listed.
import type { Finding, Rule } from "./types.js";

const REMEDIATION = "kvmstrap answer explain FILE lists every candidate and why it matched or not";

export const matchRule: Rule = {
  id: "match",
  summary: "each NIC, disk and PCI match rule picks exactly one device",
  check: ({ facts }) =>
    facts.matches.flatMap((m): Finding[] => {
      const { error, candidates } = m.result;
      if (!error) return [];
      const hits = candidates.filter((c) => c.matched).length;
      const ruleId =
        hits === 0 ? "match.none" : hits > 1 && /match \(/.test(error) ? "match.several" : "match.invalid";
      return [{ ruleId, path: m.path, level: "error", message: error, remediation: REMEDIATION }];
    }),
};
