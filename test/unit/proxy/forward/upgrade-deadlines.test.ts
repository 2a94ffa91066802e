import assert from "node:assert/strict";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import type { ProxyServer, ProxySettings } from "../../../../src/proxy/server.js";
import { proxySettings } from "../../../../src/proxy/service.js";
import { defaultConfig } from "../../../helpers/defaults.js";
import { startInProcessProxy } from "../../../helpers/proxy.js";
import { statuses } from "../../../helpers/raw.js";
import { waitFor } from "../../../helpers/wait.js";

const UPGRADE =
  "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

/**
 * WebSocket upgrades on a fake clock: until the backend switches protocols an upgrade has the
 * request's `timeout` (504); once it has switched, no request deadline applies to the tunnel.
 */
describe("upgrade deadlines on a fake clock", () => {
  let clock = 1_000_000;
  let backend: http.Server;
  let proxy: ProxyServer;
  let proxyPort: number;
  const seen: string[] = [];
  const open = new Set<net.Socket>();
  const settings: ProxySettings = {
    ...proxySettings(defaultConfig()),
    retries: 0,
    connectTimeoutMs: 2_000,
    timeoutMs: 60_000,
    tls: undefined,
  };

  before(async () => {
    backend = http.createServer((_req, res) => res.end("plain"));
    backend.on("upgrade", (req: http.IncomingMessage, socket: net.Socket) => {
      seen.push(req.url ?? "");
      open.add(socket);
      socket.on("close", () => open.delete(socket));
      socket.on("error", () => {});
      socket.on("end", () => socket.end());
      if (req.url?.startsWith("/hang")) return;
      socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
      socket.on("data", (chunk) => socket.write(chunk));
    });
    await new Promise<void>((resolve) => backend.listen(0, "127.0.0.1", resolve));
    const backendPort = (backend.address() as AddressInfo).port;
    ({ proxy, port: proxyPort } = await startInProcessProxy(backendPort, settings, () => clock));
  });
  after(async () => {
    proxy.destroyConnections();
    proxy.stopAccepting();
    for (const socket of open) socket.destroy();
    backend.closeAllConnections();
    await new Promise<void>((resolve) => backend.close(() => resolve()));
  });

  function connect(): Promise<{ socket: net.Socket; text: () => string; closed: () => boolean }> {
    return new Promise((resolve) => {
      const socket = net.connect(proxyPort, "127.0.0.1");
      let text = "";
      let isClosed = false;
      const closed = () => isClosed;
      socket.on("close", () => {
        isClosed = true;
      });
      socket.on("data", (chunk) => {
        text += chunk.toString("latin1");
      });
      socket.on("error", () => {});
      socket.once("connect", () => resolve({ socket, text: () => text, closed }));
    });
  }

  it("answers 504 to an upgrade the backend does not answer within timeout, and closes the backend side", async () => {
    const client = await connect();
    client.socket.write(`GET /hang-1 HTTP/1.1\r\nHost: a\r\n${UPGRADE}\r\n`);
    await waitFor(() => seen.includes("/hang-1"), "the upgrade at the backend");
    clock += 59_000;
    proxy.sweepDeadlines();
    assert.deepEqual(statuses(client.text()), [], "not before the timeout");
    clock += 1_000;
    proxy.sweepDeadlines();
    await waitFor(client.closed, "the proxy to close the client connection");
    assert.deepEqual(statuses(client.text()), [504]);
    await waitFor(() => open.size === 0, "the backend side of the upgrade closed");
  });

  it("leaves a tunnel alone once the backend switched protocols, however long it lives", async () => {
    const client = await connect();
    client.socket.write(`GET /ws HTTP/1.1\r\nHost: a\r\n${UPGRADE}\r\n`);
    await waitFor(() => statuses(client.text())[0] === 101, "the switch");
    clock += 10 * 60_000;
    proxy.sweepDeadlines();
    client.socket.write("still here");
    await waitFor(
      () => client.text().endsWith("still here"),
      "the echo after the deadline would have passed",
    );
    client.socket.destroy();
    await waitFor(() => open.size === 0, "the backend side closed with the client");
  });
});
