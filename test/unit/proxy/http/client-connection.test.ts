import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { describe, it } from "node:test";
import { ClientConnection, type ConnectionLinked } from "../../../../src/proxy/http/client-connection.js";

class Item implements ConnectionLinked<Item> {
  prevOnConnection: Item | undefined = undefined;
  nextOnConnection: Item | undefined = undefined;
  constructor(readonly name: string) {}
}

/** Enough of a socket for the connection state: close events and pause. */
function fakeSocket(): Socket & { paused: boolean } {
  const socket = new EventEmitter() as unknown as Socket & { paused: boolean };
  socket.paused = false;
  socket.pause = () => {
    socket.paused = true;
    return socket;
  };
  return socket;
}

function names(connection: ClientConnection<Item>): string[] {
  const out: string[] = [];
  for (let item = connection.first; item !== undefined; item = item.nextOnConnection) out.push(item.name);
  return out;
}

describe("a client connection's open requests", () => {
  it("keeps them in order and removes any of them, in any order", () => {
    const connection = ClientConnection.of<Item>(fakeSocket(), () => {});
    const [a, b, c, d] = ["a", "b", "c", "d"].map((n) => new Item(n)) as [Item, Item, Item, Item];
    for (const item of [a, b, c, d]) connection.add(item);
    assert.deepEqual(names(connection), ["a", "b", "c", "d"]);
    connection.remove(c);
    assert.deepEqual(names(connection), ["a", "b", "d"]);
    connection.remove(a);
    assert.deepEqual(names(connection), ["b", "d"]);
    connection.remove(d);
    assert.deepEqual(names(connection), ["b"]);
    assert.equal(connection.last, b);
    connection.remove(b);
    assert.equal(connection.idle, true);
    assert.equal(connection.last, undefined);
  });

  it("is one state per socket", () => {
    const socket = fakeSocket();
    assert.equal(
      ClientConnection.of<Item>(socket, () => {}),
      ClientConnection.of<Item>(socket, () => {}),
    );
  });

  it("runs a waiting action at once when idle, else after the last open request, and stops reading meanwhile", () => {
    const socket = fakeSocket();
    const connection = ClientConnection.of<Item>(socket, () => {});
    const ran: string[] = [];
    connection.whenIdle(() => ran.push("now"));
    assert.deepEqual(ran, ["now"]);
    const a = new Item("a");
    const b = new Item("b");
    connection.add(a);
    connection.add(b);
    connection.whenIdle(() => ran.push("after"));
    connection.whenIdle(() => ran.push("second, dropped"));
    assert.equal(socket.paused, true);
    assert.equal(connection.refused, true);
    connection.remove(b);
    assert.deepEqual(ran, ["now"]);
    connection.remove(a);
    assert.deepEqual(ran, ["now", "after"]);
  });

  it("hands what is still open to its owner when the socket closes, and runs no waiting action", () => {
    const socket = fakeSocket();
    const left: string[] = [];
    const connection = ClientConnection.of<Item>(socket, (closed) => {
      for (let item = closed.first; item !== undefined; item = closed.first) {
        left.push(item.name);
        closed.remove(item);
      }
    });
    const ran: string[] = [];
    connection.add(new Item("a"));
    connection.add(new Item("b"));
    connection.whenIdle(() => ran.push("raw answer"));
    socket.emit("close");
    assert.deepEqual(left, ["a", "b"]);
    assert.equal(ran.length, 0);
    connection.whenIdle(() => ran.push("too late"));
    assert.equal(ran.length, 0);
  });
});
