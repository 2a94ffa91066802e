import type { Socket } from "node:net";

/** A request kept on its connection's list of open requests (the proxy's exchange). */
export interface ConnectionLinked<T> {
  /** The neighbours on the connection's list; undefined at its ends or when not on it. */
  prevOnConnection: T | undefined;
  nextOnConnection: T | undefined;
}

const STATE = Symbol("doproxy.connection");

/**
 * One client connection as the proxy sees it: the requests it accepted from it and has not yet
 * finished (oldest first), whether it refused one (nothing more is read from it), and what has to
 * wait until those requests are answered (a parse error's answer, a refused CONNECT, an upgrade).
 *
 * Why a list: Node emits `close` only on the response that holds the socket. Responses queued
 * behind it (pipelined requests) never get one when the connection goes (a parse error, a CONNECT
 * or an upgrade behind them, a `Connection: close` answer, the client leaving), so their requests
 * would stay in flight for ever. When the connection closes, the proxy finishes every request
 * still on its list. An intrusive doubly linked list: each request carries its own links, so the
 * request path allocates nothing per request and removes in O(1), in whatever order requests end
 * (docs/architecture.md, "Garbage the young generation cannot drop": no Set or Map per request).
 *
 * Why the wait: an answer doproxy writes on the raw socket (a parse error, CONNECT, an upgrade's
 * refusal or its 101) must come after the answers to the requests before it, in order, or the
 * client takes it for one of theirs.
 */
export class ClientConnection<T extends ConnectionLinked<T>> {
  first: T | undefined = undefined;
  last: T | undefined = undefined;
  /** A request on it was refused: whatever else was read from it is not served. */
  refused = false;
  /** Runs once no accepted request is open any more (and never if the connection closes first). */
  private afterOpen: (() => void) | undefined = undefined;
  /** The socket closed: its remaining requests were finished by `onClosed`. */
  closed = false;

  constructor(
    readonly socket: Socket,
    onClosed: (connection: ClientConnection<T>) => void,
  ) {
    socket.once("close", () => {
      this.closed = true;
      this.afterOpen = undefined;
      onClosed(this);
    });
  }

  /** The connection state of `socket`, made on first use (one object and one listener per connection). */
  static of<T extends ConnectionLinked<T>>(
    socket: Socket,
    onClosed: (connection: ClientConnection<T>) => void,
  ): ClientConnection<T> {
    const holder = socket as Socket & { [STATE]?: ClientConnection<T> };
    let state = holder[STATE];
    if (state === undefined) {
      state = new ClientConnection<T>(socket, onClosed);
      holder[STATE] = state;
    }
    return state;
  }

  get idle(): boolean {
    return this.first === undefined;
  }

  add(item: T): void {
    item.prevOnConnection = this.last;
    item.nextOnConnection = undefined;
    if (this.last === undefined) this.first = item;
    else this.last.nextOnConnection = item;
    this.last = item;
  }

  /** Takes `item` off the list (it must be on it); runs the waiting action once the list is empty. */
  remove(item: T): void {
    const prev = item.prevOnConnection;
    const next = item.nextOnConnection;
    if (prev === undefined) this.first = next;
    else prev.nextOnConnection = next;
    if (next === undefined) this.last = prev;
    else next.prevOnConnection = prev;
    item.prevOnConnection = undefined;
    item.nextOnConnection = undefined;
    if (this.first === undefined && this.afterOpen !== undefined) {
      const action = this.afterOpen;
      this.afterOpen = undefined;
      action();
    }
  }

  /**
   * Runs `action` now if no request is open, else once the open ones are done; stops reading the
   * connection meanwhile. The first action wins: later ones are dropped (one raw answer closes it).
   */
  whenIdle(action: () => void): void {
    if (this.closed) return;
    if (this.first === undefined) {
      action();
      return;
    }
    this.refused = true;
    this.socket.pause();
    this.afterOpen ??= action;
  }
}
