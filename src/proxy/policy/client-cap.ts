/**
 * [proxy] max-in-flight-per-client: how many requests one client address may have in flight at
 * once, so a single client (a hundred trickling uploads) cannot hold the whole proxy. Memory is
 * one map entry per client with requests in flight; entries go when their count reaches zero.
 */
export class ClientInFlight {
  private readonly counts = new Map<string, number>();

  constructor(private limit: number) {}

  setLimit(limit: number): void {
    this.limit = limit;
  }

  get enabled(): boolean {
    return this.limit > 0;
  }

  /** Counts a request for this client; false (and nothing counted) when it is at its cap. */
  tryAcquire(client: string): boolean {
    const current = this.counts.get(client) ?? 0;
    if (current >= this.limit) return false;
    this.counts.set(client, current + 1);
    return true;
  }

  release(client: string): void {
    const current = this.counts.get(client) ?? 0;
    if (current <= 1) this.counts.delete(client);
    else this.counts.set(client, current - 1);
  }

  get clients(): number {
    return this.counts.size;
  }
}
