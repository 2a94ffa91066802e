import assert from "node:assert/strict";
import net, { type AddressInfo, type Server, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import type { ProxyServer, ProxySettings } from "../../../src/proxy/server.js";
import { proxySettings } from "../../../src/proxy/service.js";
import { defaultConfig } from "../../helpers/defaults.js";
import { startInProcessProxy } from "../../helpers/proxy.js";
import { rawExchange, statuses } from "../../helpers/raw.js";
import { waitFor } from "../../helpers/wait.js";

/**
 * Backends that answer in ways a well-behaved one does not, on raw sockets, through the proxy
 * in-process: an exception that escaped from the proxy would fail this test process.
 */
describe("the proxy in front of backends that answer oddly", () => {
  let clock = 1_000_000;
  const BODY_BYTES = 4 * 1024 * 1024;
  /** What the backend does with each request, by its target. */
  const answers: Record<string, (socket: Socket) => void> = {
    // A large body the backend ends by closing its connection (Connection: close).
    "/closing": (socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: ${BODY_BYTES}\r\n\r\n`);
      socket.end(Buffer.alloc(BODY_BYTES, "c"));
    },
    // The same without a length: the body ends where the connection does.
    "/unframed": (socket) => {
      socket.write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
      socket.end(Buffer.alloc(BODY_BYTES, "u"));
    },
    // Holds its answer open until the test lets it finish.
    "/hold": (socket) => {
      held = socket;
      socket.write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nho");
    },
    // Headers, a 256 KB body and the close in one write: they reach the proxy in one read.
    "/closing-at-once": (socket) => {
      const head = `HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: ${256 * 1024}\r\n\r\n`;
      socket.end(Buffer.concat([Buffer.from(head), Buffer.alloc(256 * 1024, "a")]));
    },
    // A reason phrase in Latin-1 bytes a client must not be sent as they are decoded.
    "/reason": (socket) => {
      socket.end(
        Buffer.from(
          "HTTP/1.1 200 Ol\xe1 \xe7a va\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
          "latin1",
        ),
      );
    },
    // Answers at once, headers and part of a body, while the client is still uploading.
    "/early": (socket) => {
      socket.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nearly\r\n");
    },
  };
  let held: Socket | undefined;
  let backend: Server;
  let proxy: ProxyServer;
  let proxyPort: number;
  const backendSockets = new Set<Socket>();

  before(async () => {
    backend = net.createServer((socket) => {
      backendSockets.add(socket);
      socket.on("close", () => backendSockets.delete(socket));
      socket.on("error", () => {});
      let head = "";
      socket.on("data", (chunk) => {
        if (head.includes("\r\n\r\n")) return;
        head += chunk.toString("latin1");
        const target = /^[A-Z]+ (\S+)/.exec(head)?.[1];
        if (head.includes("\r\n\r\n") && target) answers[target]?.(socket);
      });
    });
    await new Promise<void>((resolve) => backend.listen(0, "127.0.0.1", resolve));
    const backendPort = (backend.address() as AddressInfo).port;
    const settings: ProxySettings = {
      ...proxySettings(defaultConfig()),
      retries: 0,
      maxInFlightPerClient: 0,
    };
    ({ proxy, port: proxyPort } = await startInProcessProxy(backendPort, settings, () => clock));
  });
  after(async () => {
    proxy.destroyConnections();
    proxy.stopAccepting();
    for (const socket of backendSockets) socket.destroy();
    await new Promise<void>((resolve) => backend.close(() => resolve()));
  });

  for (const target of ["/closing", "/unframed"]) {
    it(`relays all of a large body the backend ends by closing (${target}) to a client that reads late`, async () => {
      const client = net.connect(proxyPort, "127.0.0.1");
      client.pause();
      const received: Buffer[] = [];
      const closed = new Promise<void>((resolve) => client.on("close", () => resolve()));
      client.write(`GET ${target} HTTP/1.1\r\nHost: a\r\n\r\n`);
      // The backend has sent everything and closed while the client has read nothing; then the
      // client reads slowly, so the proxy is behind on every piece of the body, the last one too.
      await waitFor(() => backendSockets.size === 0, "the backend to finish and close");
      client.on("data", (chunk: Buffer) => {
        received.push(chunk);
        client.pause();
        setTimeout(() => client.resume(), 1);
      });
      client.resume();
      await waitFor(() => {
        const text = Buffer.concat(received).toString("latin1");
        const bodyStart = text.indexOf("\r\n\r\n");
        return bodyStart > 0 && text.length - bodyStart - 4 >= BODY_BYTES;
      }, "the whole body at the client");
      const text = Buffer.concat(received).toString("latin1");
      assert.deepEqual(statuses(text), [200]);
      client.destroy();
      await closed;
    });
  }

  it("relays a closing answer queued behind another on the client's connection (never paused: nodejs/undici#5360)", async () => {
    // The second answer arrives whole, with the backend's close, while the first still holds the
    // client connection: Node queues it, so the proxy is "behind" on all of it at once.
    const answer = rawExchange(
      proxyPort,
      "GET /hold HTTP/1.1\r\nHost: a\r\n\r\nGET /closing-at-once HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
      10_000,
      true,
    );
    await waitFor(() => held !== undefined, "the first request at the backend");
    await waitFor(() => backendSockets.size === 1, "the second answer sent and its connection closed");
    await new Promise((resolve) => setImmediate(resolve));
    held?.end("ld");
    const { text, timedOut } = await answer;
    assert.equal(timedOut, false);
    assert.deepEqual(statuses(text), [200, 200]);
    assert.ok(text.endsWith("a".repeat(1000)), "the second body arrived whole");
    assert.equal(text.length - text.lastIndexOf("\r\n\r\n") - 4, 256 * 1024);
  });

  it("gives the client the standard reason phrase when the backend's is not plain ASCII", async () => {
    const { text } = await rawExchange(
      proxyPort,
      "GET /reason HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /\r\n\r\nok$/);
  });

  it("closes the client's connection when its upload stalls after the backend began answering", async () => {
    const client = net.connect(proxyPort, "127.0.0.1");
    const received: Buffer[] = [];
    client.on("data", (chunk: Buffer) => received.push(chunk));
    const closed = new Promise<void>((resolve) => client.on("close", () => resolve()));
    client.write("POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nsome");
    await waitFor(() => Buffer.concat(received).toString("latin1").includes("early"), "the early answer");
    clock += proxySettings(defaultConfig()).bodyIdleTimeoutMs;
    proxy.sweepDeadlines();
    await closed;
    await waitFor(() => proxy.activeRequests === 0, "the request to be over in the proxy");
  });
});
