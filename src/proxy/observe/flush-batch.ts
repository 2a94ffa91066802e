import type { ServerResponse } from "node:http";

/**
 * While the event loop is saturated, holds the first write of each response started during one
 * turn of it and sends them all together at the turn's end (the check phase, after every ready
 * socket has been read), like Netty's FlushConsolidationHandler.
 *
 * Why: on loopback, and far more in a VM, most of what a response's write costs is waking the
 * process that reads it (an inter-processor interrupt when that process sleeps on another core).
 * Written one by one, with the proxy's work for the next response in between, each write finds the
 * client asleep again and pays the wake-up; written back to back, only the first does. A response
 * waits at most for the rest of the turn it was finished in: the other ready sockets' work.
 *
 * Only under saturation (`busy`): below it the proxy has CPU to spare for the wake-ups, and
 * holding would only add latency. Worse, clients that send again a fixed time after each answer
 * (wrk's pacing, polling loops) would get their answers in clumps and send their next requests in
 * clumps, each waiting behind the others: measured at 5,000 paced req/s, batching always doubled
 * the median latency (1.1 to 2 ms).
 *
 * Only the first flush is held: headers and whatever body arrived with them, or the whole of a
 * small response. A long body streams on as it arrives, paced by the client as before.
 */
export class FlushBatch {
  /**
   * Responses whose socket this batch corked, in the order they were held, and whether each one's
   * backend response is complete (it ends when the batch flushes). Plain arrays replaced every
   * turn, not a long-lived Set with an add and a delete per response: such a Set keeps every
   * response's objects alive into the old generation once a full collection has run under load
   * (docs/architecture.md, "Garbage the young generation cannot drop").
   */
  private held: ServerResponse[] = [];
  private ending: boolean[] = [];
  private scheduled = false;
  private readonly flushNow = () => this.flush();

  /** `busy`: whether batching pays now (the event loop is saturated: loop-saturation.ts). */
  constructor(private readonly busy: () => boolean) {}

  /**
   * Holds `res`'s writes until the batch flushes; false when it does not: the loop is not busy,
   * or the response has no socket of its own yet (queued behind a pipelined one).
   */
  hold(res: ServerResponse): boolean {
    const socket = res.socket;
    if (!socket || socket.destroyed || !this.busy()) return false;
    socket.cork();
    this.held.push(res);
    this.ending.push(false);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushNow);
    }
    return true;
  }

  /** Ends `res` now, or with the batch if its writes are held. */
  end(res: ServerResponse): void {
    // A linear search: a batch holds at most the responses of one turn (tens).
    const index = this.held.lastIndexOf(res);
    if (index >= 0) this.ending[index] = true;
    else res.end();
  }

  /** Sends every held response: ends the complete ones, uncorks the rest. */
  flush(): void {
    this.scheduled = false;
    const held = this.held;
    const ending = this.ending;
    this.held = [];
    this.ending = [];
    for (let i = 0; i < held.length; i++) {
      const res = held[i] as ServerResponse;
      if (ending[i]) {
        // end() uncorks the socket fully: the headers, the body and its end go in one write.
        if (!res.destroyed && !res.writableEnded) res.end();
      } else res.socket?.uncork();
    }
  }
}
