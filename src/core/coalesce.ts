// Group commit for a file that mirrors in-memory state (the boot server's installed nodes, its DHCP
// leases): one write in flight at a time, and every change made while it runs rides on the next
// one, which snapshots the state when it starts. A caller's promise settles once a write that began
// after its call (so one that holds its change) has finished: N changes cost one or two writes, not
// N one after another, and nobody is told "saved" before its change is on disk.

export class Coalescer {
  /** The last write queued or running; never rejects (errors go to that write's callers). */
  private tail: Promise<unknown> = Promise.resolve();
  /** A write queued behind the running one and not started yet: new callers join it. */
  private queued: Promise<void> | undefined;

  /** `write` reads the state to save when it is called (before its first await). */
  constructor(private readonly write: () => Promise<void>) {}

  /** Resolves once a write holding every change made before this call is durable. */
  request(): Promise<void> {
    if (this.queued) return this.queued;
    const run = () => {
      this.queued = undefined;
      return this.write();
    };
    const next = this.tail.then(run, run);
    this.queued = next;
    this.tail = next.catch(() => {});
    return next;
  }

  /** Waits for the writes queued so far (at stop). */
  async idle(): Promise<void> {
    await this.tail;
  }
}
