import assert from "node:assert/strict";
import http from "node:http";
import net, { type AddressInfo, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import type { ProxyServer, ProxySettings } from "../../../src/proxy/server.js";
import { proxySettings } from "../../../src/proxy/service.js";
import { defaultConfig } from "../../helpers/defaults.js";
import { startInProcessProxy } from "../../helpers/proxy.js";
import { rawExchange, statuses } from "../../helpers/raw.js";
import { waitFor } from "../../helpers/wait.js";

/**
 * The proxy's deadlines in-process, on a fake clock: real sockets carry the requests, but time only
 * moves when the test says so, so a 60 s timeout is tested without waiting 60 s.
 */
describe("proxy deadlines on a fake clock", () => {
  let clock = 1_000_000;
  let backend: http.Server;
  let backendPort: number;
  let proxy: ProxyServer;
  let proxyPort: number;
  const seen: string[] = [];
  /** Body bytes the backend has received per request target. */
  const bodyBytes = new Map<string, number>();
  const held: http.ServerResponse[] = [];
  const settings: ProxySettings = {
    ...proxySettings(defaultConfig()),
    xForwardedFor: true,
    retries: 0,
    connectTimeoutMs: 2000,
    timeoutMs: 60_000,
    bodyIdleTimeoutMs: 30_000,
    headerTimeoutMs: 30_000,
    maxHeaderBytes: 16_384,
    maxTargetLength: 8192,
    maxInFlightPerClient: 0,
    tls: undefined,
  };

  before(async () => {
    // A backend that never answers /hang and answers everything else once the body has arrived.
    backend = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      if (req.url?.startsWith("/hang")) {
        held.push(res);
        req.on("data", (chunk: Buffer) =>
          bodyBytes.set(req.url ?? "", (bodyBytes.get(req.url ?? "") ?? 0) + chunk.length),
        );
        return;
      }
      req.resume();
      req.on("end", () => res.end("done"));
    });
    await new Promise<void>((resolve) => backend.listen(0, "127.0.0.1", resolve));
    backendPort = (backend.address() as AddressInfo).port;
    ({ proxy, port: proxyPort } = await startInProcessProxy(backendPort, settings, () => clock));
  });
  after(async () => {
    for (const res of held) res.destroy();
    proxy.destroyConnections();
    proxy.stopAccepting();
    backend.closeAllConnections();
    await new Promise<void>((resolve) => backend.close(() => resolve()));
  });

  it("answers 504 when response headers do not come within timeout", async () => {
    const answer = rawExchange(proxyPort, "GET /hang-1 HTTP/1.1\r\nHost: a\r\n\r\n", 10_000);
    await waitFor(() => seen.includes("GET /hang-1"), "the backend to receive the request");
    clock += 59_000;
    proxy.sweepDeadlines();
    clock += 1_000;
    proxy.sweepDeadlines();
    assert.deepEqual(statuses((await answer).text), [504]);
  });

  it("starts the response timeout at the end of the request body, not at dispatch", async () => {
    const socket = await connect(proxyPort);
    const replies: Buffer[] = [];
    socket.on("data", (chunk) => replies.push(chunk));
    const arrived = (n: number) =>
      waitFor(() => bodyBytes.get("/hang-upload") === n, `${n} body bytes at the backend`);
    socket.write("POST /hang-upload HTTP/1.1\r\nHost: a\r\nContent-Length: 8\r\n\r\nabc");
    await arrived(3);
    // The upload takes longer than `timeout` in all (80 s), but never stalls for body-idle-timeout.
    for (let i = 1; i <= 4; i++) {
      clock += 20_000;
      proxy.sweepDeadlines();
      socket.write("x");
      await arrived(3 + i);
    }
    assert.equal(Buffer.concat(replies).length, 0, "no answer while the body still arrives");
    socket.write("y");
    await arrived(8);
    clock += 59_000;
    proxy.sweepDeadlines();
    assert.equal(Buffer.concat(replies).length, 0, "still within timeout of the end of the body");
    clock += 1_000;
    proxy.sweepDeadlines();
    await waitFor(() => statuses(Buffer.concat(replies).toString()).length > 0, "an answer");
    assert.deepEqual(statuses(Buffer.concat(replies).toString()), [504]);
    socket.destroy();
  });

  it("cuts a stalled upload with 408 and closes the connection", async () => {
    const socket = await connect(proxyPort);
    const replies: Buffer[] = [];
    socket.on("data", (chunk) => replies.push(chunk));
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.write("PUT /hang-stall HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nsome");
    await waitFor(() => seen.includes("PUT /hang-stall"), "the backend to receive the headers");
    clock += 29_999;
    proxy.sweepDeadlines();
    assert.equal(Buffer.concat(replies).length, 0);
    clock += 1;
    proxy.sweepDeadlines();
    await closed;
    assert.deepEqual(statuses(Buffer.concat(replies).toString()), [408]);
  });

  it("keeps Expect: 100-continue requests under the same deadlines", async () => {
    const answer = rawExchange(
      proxyPort,
      "PUT /hang-expect HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
      10_000,
    );
    await waitFor(() => seen.includes("PUT /hang-expect"), "the backend to receive the request");
    await waitFor(() => proxy.activeRequests === 1, "the body to arrive");
    clock += 60_000;
    proxy.sweepDeadlines();
    const codes = statuses((await answer).text);
    assert.deepEqual(codes, [100, 504]);
  });
});

function connect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => resolve(socket));
    socket.once("error", reject);
  });
}
