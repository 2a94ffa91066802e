import type { ServerResponse } from "node:http";

/**
 * Holds the first write of each response started during one turn of the event loop and sends them
 * all together at its end (the check phase, after every ready socket has been read), like Netty's
 * FlushConsolidationHandler.
 *
 * Why: on loopback, and far more in a VM, most of what a response's write costs is waking the
 * process that reads it (an inter-processor interrupt when that process sleeps on another core).
 * Written one by one, with the proxy's work for the next response in between, each write finds the
 * client asleep again and pays the wake-up; written back to back, only the first does. A response
 * waits at most for the rest of the turn it was finished in: the other ready sockets' work.
 *
 * Only the first flush is held: headers and whatever body arrived with them, or the whole of a
 * small response. A long body streams on as it arrives, paced by the client as before.
 */
export class FlushBatch {
  /** Responses whose socket this batch corked, in the order they were held. */
  private held = new Set<ServerResponse>();
  /** Of those, the ones whose backend response is complete: they end when the batch flushes. */
  private readonly ending = new Set<ServerResponse>();
  private scheduled = false;
  private readonly flushNow = () => this.flush();

  /** Holds `res`'s writes until the batch flushes; false when it cannot (no socket of its own yet). */
  hold(res: ServerResponse): boolean {
    const socket = res.socket;
    if (!socket || socket.destroyed) return false;
    socket.cork();
    this.held.add(res);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushNow);
    }
    return true;
  }

  /** Ends `res` now, or with the batch if its writes are held. */
  end(res: ServerResponse): void {
    if (this.held.has(res)) this.ending.add(res);
    else res.end();
  }

  /** Sends every held response: ends the complete ones, uncorks the rest. */
  flush(): void {
    this.scheduled = false;
    const held = this.held;
    this.held = new Set();
    for (const res of held) {
      if (this.ending.delete(res)) {
        // end() uncorks the socket fully: the headers, the body and its end go in one write.
        if (!res.destroyed && !res.writableEnded) res.end();
      } else res.socket?.uncork();
    }
  }
}
