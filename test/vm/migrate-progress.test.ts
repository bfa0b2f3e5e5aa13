// virsh domjobinfo as libvirt 9.0 prints it during and after a migration (captured from the cluster
// tier's guest), read into numbers, and the terminal's progress line.
import { describe, expect, it } from "vitest";
import {
  parseJobCompletedEvent,
  parseJobInfo,
  percentDone,
  progressLine,
} from "../../src/vm/migrate-progress.js";

const RUNNING = `Job type:         Unbounded
Operation:        Outgoing migration
Time elapsed:     1204         ms
Data processed:   12.352 MiB
Data remaining:   24.016 MiB
Data total:       36.368 MiB
Memory processed: 8.101 MiB
Memory remaining: 24.016 MiB
Memory total:     32.188 MiB
Memory bandwidth: 11.063 MiB/s
Dirty rate:       0            pages/s
Page size:        4096         bytes
Iteration:        1
Postcopy requests: 0
Constant pages:   2156
Normal pages:     2063
Normal data:      8.059 MiB
Expected downtime: 300          ms
Setup time:       8            ms
`;
const COMPLETED = `Job type:         Completed
Operation:        Incoming migration
Time elapsed:     2301         ms
Time elapsed w/o network: 2298         ms
Data processed:   36.513 MiB
Data remaining:   0.000 B
Data total:       36.368 MiB
Total downtime:   66           ms
Downtime w/o network: 63           ms
`;

describe("domjobinfo", () => {
  it("reads a running job: elapsed, data in bytes, expected downtime; percent done by data", () => {
    const j = parseJobInfo(RUNNING);
    expect(j).toMatchObject({
      type: "Unbounded",
      operation: "Outgoing migration",
      elapsedMs: 1204,
      processedBytes: Math.round(12.352 * 2 ** 20),
      remainingBytes: Math.round(24.016 * 2 ** 20),
      totalBytes: Math.round(36.368 * 2 ** 20),
      expectedDowntimeMs: 300,
      downtimeMs: null,
    });
    expect(percentDone(j)).toBe(33);
    expect(progressLine("web", j)).toBe("web: 33% 12.4/36.4 MiB, 1.2 s");
  });

  it("reads the completed job's downtime and data moved", () => {
    const j = parseJobInfo(COMPLETED);
    expect(j).toMatchObject({ type: "Completed", downtimeMs: 66, remainingBytes: 0, elapsedMs: 2301 });
    expect(percentDone(j)).toBe(100);
  });

  it("no job: type None, nothing else known", () => {
    const j = parseJobInfo("Job type:         None        \n");
    expect(j.type).toBe("None");
    expect(percentDone(j)).toBeNull();
    expect(progressLine("web", j)).toBe("web: -- ?/? MiB, ? s");
  });
});

describe("the source's job-completed event (virsh event, libvirt 9.0, captured from the cluster tier)", () => {
  const EVENT =
    "event 'job-completed' for domain 'kvmcl-probe-11184':\n\toperation: 5\n\ttime_elapsed: 573\n\ttime_elapsed_net: 560\n\tdowntime: 50\n\tdowntime_net: 37\n\tsetup_time: 1\n\tdata_total: 38404096\n\tdata_processed: 5080384\n\tdata_remaining: 0\n\tmemory_total: 34209792\n\tmemory_processed: 886080\n\tmemory_remaining: 0\n\tdisk_total: 4194304\n\tdisk_processed: 4194304\n\tdisk_remaining: 0\nevents received: 1\n\n";

  it("reads the downtime, time and data moved, an outgoing migration", () => {
    expect(parseJobCompletedEvent(EVENT)).toEqual({
      type: "Completed",
      operation: "Outgoing migration",
      elapsedMs: 573,
      processedBytes: 5080384,
      remainingBytes: 0,
      totalBytes: 38404096,
      downtimeMs: 50,
      expectedDowntimeMs: null,
    });
  });

  it("is null for output without the event (the listener stopped first)", () => {
    expect(parseJobCompletedEvent("")).toBeNull();
    expect(parseJobCompletedEvent("events received: 0\n")).toBeNull();
  });
});
