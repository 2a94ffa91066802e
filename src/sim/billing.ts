/** One moment at which the number of billed droplets changed. */
interface LedgerEvent {
  ts: number;
  delta: 1 | -1;
  id: number;
  tags: string[];
}

/** What GET /_sim/billing answers. */
export interface BillingReport {
  /** The tag the report is limited to, or null for every droplet of the account. */
  tag: string | null;
  /** Droplets that exist (and bill) now. */
  alive: number;
  /** The most that existed at any one moment. */
  peak: number;
  /** Every change, in order: how many existed right after it. */
  timeline: Array<{ ts: number; alive: number }>;
}

/**
 * The billing invariant's ledger: a droplet bills from the moment it is created to the moment it
 * is destroyed, whatever its status (new, active, off) and whether or not lists show it yet. Each
 * create and destroy is kept with the droplet's tags (fixed at create in the simulator), so a
 * test can ask how many droplets carrying a tag existed at every moment, and the peak.
 */
export class BillingLedger {
  private readonly events: LedgerEvent[] = [];

  created(droplet: { id: number; tags: string[] }, now = Date.now()): void {
    this.events.push({ ts: now, delta: 1, id: droplet.id, tags: [...droplet.tags] });
  }

  destroyed(droplet: { id: number; tags: string[] }, now = Date.now()): void {
    this.events.push({ ts: now, delta: -1, id: droplet.id, tags: [...droplet.tags] });
  }

  report(tag?: string): BillingReport {
    let alive = 0;
    let peak = 0;
    const timeline: BillingReport["timeline"] = [];
    for (const event of this.events) {
      if (tag !== undefined && !event.tags.includes(tag)) continue;
      alive += event.delta;
      peak = Math.max(peak, alive);
      timeline.push({ ts: event.ts, alive });
    }
    return { tag: tag ?? null, alive, peak, timeline };
  }
}
