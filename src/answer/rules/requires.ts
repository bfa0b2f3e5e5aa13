// requires: the answer's own preconditions on the host (checks that must pass, NICs, memory, VFs),
// each an error or a warning as the answer says.
import { runChecks } from "../../checks/index.js";
import { nicCandidates } from "../match.js";
import { formatPath } from "../positions.js";
import { type Emit, type Rule, rule } from "./types.js";

const at = (emit: Emit, level: "fail" | "warn") => (level === "fail" ? emit.error : emit.warning);

export const requireRules: Rule[] = [
  rule("requires.checks", "readiness checks the answer requires pass", ({ answer, report }, emit) => {
    const entries = Object.entries(answer.requires?.checks ?? {});
    if (!entries.length) return;
    const checks = new Map(runChecks(report, new Set(entries.map(([id]) => id))).map((c) => [c.id, c]));
    for (const [id, level] of entries) {
      const path = formatPath(["requires", "checks", id]);
      const c = checks.get(id);
      if (!c) emit.warning(path, `check ${id} does not apply to this host (not run)`);
      else if (c.level === "fail" || c.level === "warn")
        at(emit, level)(path, `check ${id} is ${c.level}: ${c.reason}`, c.remediation ?? null);
    }
  }),
  rule("requires.min-nics", "the host has the NICs the answer requires", ({ answer, report }, emit) => {
    const req = answer.requires?.minNics;
    if (!req) return;
    const { count, minSpeedMbps, level } = req;
    const nics = nicCandidates(report).filter(
      (n) => minSpeedMbps === undefined || (n.speedMbps ?? -1) >= minSpeedMbps,
    );
    if (nics.length < count) {
      const speed = minSpeedMbps !== undefined ? ` at ${minSpeedMbps} Mb/s or more` : "";
      at(emit, level)("requires.minNics", `${count} NICs${speed} required, this host has ${nics.length}`);
    }
  }),
  rule("requires.min-memory", "the host has the memory the answer requires", ({ answer, report }, emit) => {
    const req = answer.requires?.minMemoryGiB;
    if (!req) return;
    const kib = report.memory.totalKiB;
    if (kib === null) emit.warning("requires.minMemoryGiB", "memory size unknown");
    else if (kib / 1024 ** 2 < req.value)
      at(emit, req.level)(
        "requires.minMemoryGiB",
        `${req.value} GiB of memory required, this host has ${(kib / 1024 ** 2).toFixed(1)} GiB`,
      );
  }),
  rule(
    "requires.min-vfs",
    "the host supports the SR-IOV VFs the answer requires",
    ({ answer, report }, emit) => {
      const req = answer.requires?.minVfs;
      if (!req) return;
      const total = report.pci.reduce((sum, p) => sum + (p.sriov?.totalVfs ?? 0), 0);
      if (total < req.count)
        at(emit, req.level)(
          "requires.minVfs",
          `${req.count} SR-IOV VFs required, this host supports ${total}`,
        );
    },
  ),
];
