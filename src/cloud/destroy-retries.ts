/**
 * Destroys that failed, per backend, and when each may be tried again: 5 s after the first
 * failure, doubling up to 5 minutes, so a DELETE that keeps failing (a 5xx, a pending event)
 * costs a few calls an hour, not one a tick. Used by the boot watcher (boot-timeout destroys)
 * and the autoscaler (destroys after a drain).
 */
export class DestroyRetries {
  private readonly pending = new Map<number, { failures: number; retryAt: number }>();

  /** True while `backendId`'s last failed destroy is still waiting out its backoff. */
  waiting(backendId: number, now: number): boolean {
    return now < (this.pending.get(backendId)?.retryAt ?? 0);
  }

  /** A destroy failed: how many times in a row, and how long until the next try. */
  failed(backendId: number, now: number): { failures: number; delayMs: number } {
    const failures = (this.pending.get(backendId)?.failures ?? 0) + 1;
    const delayMs = destroyRetryMs(failures);
    this.pending.set(backendId, { failures, retryAt: now + delayMs });
    return { failures, delayMs };
  }

  succeeded(backendId: number): void {
    this.pending.delete(backendId);
  }
}

/** The wait after the `failures`-th failure in a row: 5 s doubling, at most 5 minutes. */
export function destroyRetryMs(failures: number): number {
  return Math.min(300_000, 5_000 * 2 ** Math.max(0, failures - 1));
}
