import assert from "node:assert/strict";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { adminUrl } from "../helpers/admin.js";
import { freePort } from "../helpers/backend.js";
import {
  cleanupAll,
  type Daemon,
  runCliAsync,
  serveConfig,
  startServe,
  type Workspace,
  workspace,
} from "../helpers/cli.js";
import { request } from "../helpers/http.js";
import { rawExchange, statuses } from "../helpers/raw.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Issue #24, the data plane: what follows a request on its connection (garbage, a refusal, an
 * upgrade, the client leaving) never leaves it counted in flight, doproxy's own answers never
 * silence or reorder the ones pipelined around them, WebSocket upgrades have deadlines and never
 * outlive their client, request lines without HTTP/1.x are refused, the access log says what the
 * client got, and CORS answers that depend on the origin say so. Raw sockets against `serve` in
 * front of a scriptable backend.
 */

const get = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nHost: a\r\n${extra}\r\n`;
const UPGRADE =
  "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

/** What the backend saw and holds: requests by target, and the upgrade connections still open on its side. */
interface ScriptedBackend {
  address: string;
  received: string[];
  openUpgrades: Set<net.Socket>;
  close(): Promise<void>;
}

/**
 * A backend whose answer depends on the target: /hang* never answers, /slow answers after 300 ms,
 * /garbage answers garbage, /204-body a 204 with a body, /304-length a 304 with a Content-Length
 * (valid), /broken-chunk a 200 whose first chunk is broken; anything else "ok <target>". Upgrades:
 * /ws-hang* never answer, /ws switches protocols and echoes.
 */
async function startScriptedBackend(): Promise<ScriptedBackend> {
  const received: string[] = [];
  const openUpgrades = new Set<net.Socket>();
  const held: http.ServerResponse[] = [];
  const raw = (res: http.ServerResponse, bytes: string) => {
    res.socket?.write(bytes);
    res.socket?.destroySoon();
  };
  const server = http.createServer((req, res) => {
    if (req.url === "/health") {
      res.end("ok");
      return;
    }
    received.push(`${req.method} ${req.url}`);
    req.resume();
    const url = req.url ?? "";
    if (url.startsWith("/hang")) held.push(res);
    else if (url === "/slow") setTimeout(() => res.end("slow"), 300);
    else if (url === "/garbage") raw(res, "garbage\r\n\r\n");
    else if (url === "/204-body") raw(res, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello");
    else if (url === "/304-length")
      raw(res, "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: x\r\n\r\n");
    else if (url === "/broken-chunk")
      raw(res, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
    else res.end(`ok ${url}`);
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket) => {
    received.push(`UPGRADE ${req.url}`);
    openUpgrades.add(socket);
    socket.on("close", () => openUpgrades.delete(socket));
    socket.on("error", () => {});
    // Closes its side when the proxy closes its own (the listener keeps half-open sockets).
    socket.on("end", () => socket.end());
    if (req.url?.startsWith("/ws-hang")) return;
    socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    socket.on("data", (chunk) => socket.write(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    received,
    openUpgrades,
    close: async () => {
      for (const res of held) res.destroy();
      for (const socket of openUpgrades) socket.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A raw client connection: what came back so far, and whether the proxy closed it. */
function openRaw(port: number): Promise<{ socket: net.Socket; text: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let text = "";
    const closed = new Promise<void>((done) => socket.on("close", () => done()));
    socket.on("data", (chunk) => {
      text += chunk.toString("latin1");
    });
    socket.on("error", () => {});
    socket.once("connect", () => resolve({ socket, text: () => text, closed }));
    socket.once("error", reject);
  });
}

/** The sum of a metric's samples in a Prometheus text page. */
function metricSum(page: string, name: string): number {
  let sum = 0;
  for (const line of page.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

describe("doproxy serve: pipelines, upgrades and doproxy's own answers (issue #24)", () => {
  let ws: Workspace;
  let serve: Daemon;
  let port: number;
  let admin: string;
  let backend: ScriptedBackend;

  before(async () => {
    port = await freePort();
    backend = await startScriptedBackend();
    ws = workspace(
      serveConfig(port, {
        proxy: ['timeout = "1s"', 'header-timeout = "2s"', 'body-idle-timeout = "2s"', "retries = 0"].join(
          "\n",
        ),
        rest: '[cors]\nallow-origins = ["https://good.example"]\n',
      }),
    );
    serve = await startServe(ws);
    admin = await adminUrl(serve);
    const added = await runCliAsync(ws, ["droplets", "add", "--address", backend.address]);
    assert.equal(added.status, 0, added.stderr);
    await waitFor(async () => (await request(port, "/ready")).status === 200, "the backend in rotation");
  });
  after(async () => {
    await serve?.stop();
    await backend?.close();
    cleanupAll(ws);
  });

  const metrics = async () => (await fetch(`${admin}/metrics`)).text();
  /** Waits until no request is in flight and no WebSocket open, as /metrics reports them. */
  async function settled(what: string): Promise<void> {
    let last = "";
    await waitFor(
      async () => {
        const page = await metrics();
        last = `in flight ${metricSum(page, "doproxy_in_flight_requests")}, websockets ${metricSum(page, "doproxy_websockets_open")}`;
        return (
          metricSum(page, "doproxy_in_flight_requests") === 0 &&
          metricSum(page, "doproxy_websockets_open") === 0
        );
      },
      () => `${what}: nothing in flight (${last})`,
      8_000,
    );
  }

  describe("whatever follows a request on its connection, it is counted out", () => {
    const trailers: Array<[string, string, number]> = [
      ["garbage", "XXX\r\n\r\n", 400],
      ["a CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405],
      [
        "Transfer-Encoding: xchunked",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        400,
      ],
      ["a duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400],
    ];
    for (const [name, trailer, status] of trailers) {
      it(`GET /a, GET /b, then ${name}: both answered, then ${status}, in order; in flight back to zero`, async () => {
        const { text, timedOut } = await rawExchange(port, get("/a") + get("/b") + trailer);
        assert.equal(timedOut, false, "the proxy must close the connection");
        assert.deepEqual(statuses(text), [200, 200, status], text.slice(0, 400));
        assert.match(text, /ok \/a[\s\S]*ok \/b/, "the answers in request order");
        await settled(name);
      });
    }

    it("15 such connections at once hold nothing in flight afterwards (the autoscaler's input)", async () => {
      const results = await Promise.all(
        Array.from({ length: 15 }, (_, i) =>
          rawExchange(port, get(`/p${i}-a`) + get(`/p${i}-b`) + (trailers[i % trailers.length]?.[1] ?? "")),
        ),
      );
      for (const { text } of results) assert.equal(statuses(text).length, 3, text.slice(0, 300));
      await settled("15 pipelines");
    });

    it("a request pipelined behind a Connection: close answer is counted out when the connection goes", async () => {
      const { text } = await rawExchange(port, get("/closing", "Connection: close\r\n") + get("/behind"));
      assert.deepEqual(statuses(text), [200]);
      assert.match(text, /connection: close/i);
      await settled("behind Connection: close");
    });

    it("a client that leaves with requests pipelined behind a slow one leaves nothing in flight", async () => {
      const client = await openRaw(port);
      client.socket.write(get("/slow") + get("/x1") + get("/x2"));
      await waitFor(() => backend.received.includes("GET /x2"), "the pipelined requests at the backend");
      client.socket.destroy();
      await settled("client gone");
    });
  });

  describe("doproxy's own answers keep the pipeline in order", () => {
    it("a parse error behind a request still waiting comes after its answer (504), not in its place", async () => {
      const { text, timedOut } = await rawExchange(port, `${get("/hang-parse")}XXX\r\n\r\n`);
      assert.equal(timedOut, false);
      assert.deepEqual(statuses(text), [504, 400], text.slice(0, 400));
      await settled("parse error behind a hanging request");
    });

    it("after a 502 for a backend's garbage, the requests behind it are answered in order", async () => {
      const client = await openRaw(port);
      client.socket.write(get("/garbage") + get("/g1") + get("/g2"));
      await waitFor(
        () => statuses(client.text()).length === 3,
        () => `three answers, got: ${client.text()}`,
      );
      assert.deepEqual(statuses(client.text()), [502, 200, 200]);
      assert.match(client.text(), /ok \/g1[\s\S]*ok \/g2/);
      client.socket.destroy();
    });

    it("after a 504, the requests behind it are answered in order", async () => {
      const client = await openRaw(port);
      client.socket.write(get("/hang-504") + get("/t1"));
      await waitFor(
        () => statuses(client.text()).length === 2,
        () => `two answers, got: ${client.text()}`,
      );
      assert.deepEqual(statuses(client.text()), [504, 200]);
      client.socket.destroy();
    });

    it("a refusal behind answered requests closes the connection with Connection: close on it", async () => {
      const start = backend.received.length;
      const { text, timedOut } = await rawExchange(
        port,
        `${get("/r1")}GET /r2 HTTP/1.1\r\nHost: a:99999\r\n\r\n${get("/r3")}`,
        5_000,
        true,
      );
      assert.equal(timedOut, false, "closed at once, not left idle");
      assert.deepEqual(statuses(text), [200, 400]);
      assert.match(text.slice(text.indexOf("HTTP/1.1 400")), /connection: close/i);
      assert.deepEqual(backend.received.slice(start), ["GET /r1"], "nothing behind the refusal is forwarded");
    });
  });

  describe("request lines without HTTP/1.x", () => {
    it("a request line without a version is refused (400), never forwarded", async () => {
      const start = backend.received.length;
      const { text } = await rawExchange(port, "GET /noversion\r\nHost: a\r\n\r\n");
      assert.deepEqual(statuses(text), [400], text);
      assert.deepEqual(backend.received.slice(start), []);
    });

    it("HTTP/2.0 in a request line is refused (505), never forwarded as HTTP/1.1", async () => {
      const start = backend.received.length;
      const { text } = await rawExchange(port, "GET /h2 HTTP/2.0\r\nHost: a\r\n\r\n");
      assert.deepEqual(statuses(text), [505], text);
      assert.deepEqual(backend.received.slice(start), []);
    });
  });

  describe("WebSocket upgrades", () => {
    it("an upgrade the backend never answers gets 504 after timeout, and its backend connection closes", async () => {
      const { text, timedOut } = await rawExchange(port, get("/ws-hang-1", UPGRADE), 5_000, true);
      assert.equal(timedOut, false, "the proxy must answer and close within its timeout");
      assert.deepEqual(statuses(text), [504], text);
      await waitFor(() => backend.openUpgrades.size === 0, "the backend's side of the upgrade closed");
      await settled("upgrade timed out");
    });

    for (const [how, leave] of [
      ["closes", (s: net.Socket) => s.destroy()],
      ["half-closes", (s: net.Socket) => s.end()],
    ] as const) {
      it(`a client that ${how} before the backend switches protocols takes the backend connection with it`, async () => {
        const client = await openRaw(port);
        client.socket.write(get(`/ws-hang-${how}`, UPGRADE));
        await waitFor(
          () => backend.received.includes(`UPGRADE /ws-hang-${how}`),
          "the upgrade at the backend",
        );
        leave(client.socket);
        await waitFor(
          () => backend.openUpgrades.size === 0,
          "the backend's side of the upgrade closed",
          3_000,
        );
        await client.closed;
        await settled(`client ${how}`);
      });
    }

    it("a tunnel ends on both sides when the client goes, and the WebSocket gauge returns to zero", async () => {
      const client = await openRaw(port);
      client.socket.write(get("/ws", UPGRADE));
      await waitFor(
        () => statuses(client.text())[0] === 101,
        () => `a 101, got: ${client.text()}`,
      );
      client.socket.write("ping");
      await waitFor(() => client.text().endsWith("ping"), "the echo through the tunnel");
      assert.equal(metricSum(await metrics(), "doproxy_websockets_open"), 1);
      client.socket.destroy();
      await waitFor(() => backend.openUpgrades.size === 0, "the backend's side closed");
      await settled("tunnel closed");
    });

    it("an upgrade with a body is refused (400), not forwarded without it", async () => {
      const start = backend.received.length;
      const { text } = await rawExchange(port, `${get("/ws-body", `${UPGRADE}Content-Length: 5\r\n`)}hello`);
      assert.deepEqual(statuses(text), [400], text);
      assert.deepEqual(backend.received.slice(start), []);
      await settled("upgrade with a body");
    });

    it("an upgrade pipelined behind a slow request waits for its answer: 200, then 101", async () => {
      const client = await openRaw(port);
      client.socket.write(get("/slow") + get("/ws", UPGRADE));
      await waitFor(
        () => statuses(client.text()).length === 2,
        () => `two answers, got: ${client.text()}`,
      );
      assert.deepEqual(statuses(client.text()), [200, 101]);
      client.socket.destroy();
      await settled("upgrade behind a request");
    });
  });

  describe("what the client got", () => {
    it("a 304 with a Content-Length (valid) reaches the client whole, and the request behind it too", async () => {
      const { text } = await rawExchange(port, get("/304-length") + get("/after-304"));
      assert.deepEqual(statuses(text), [304, 200], text);
      assert.match(text, /etag: x/i);
    });

    it("a 204 with a body reaches the client as a 204 without one", async () => {
      const { text } = await rawExchange(port, get("/204-body") + get("/after-204"));
      assert.deepEqual(statuses(text), [204, 200], text);
      const head = text.slice(0, text.indexOf("\r\n\r\n"));
      assert.doesNotMatch(head, /content-length|transfer-encoding/i);
      assert.doesNotMatch(text, /hello/);
    });

    it("a broken chunk after 200 headers: the client is cut, and the access log does not say 200", async () => {
      const { text } = await rawExchange(port, get("/broken-chunk"));
      assert.deepEqual(statuses(text), [], "the client got nothing but the close");
      const line = await serve.waitForLog(
        (l) => l.msg === "request" && l.path === "/broken-chunk",
        "its access line",
      );
      assert.equal(line.aborted, true, JSON.stringify(line));
      assert.equal(line.status, 0, JSON.stringify(line));
    });
  });

  describe("CORS", () => {
    const withOrigin = (origin?: string) => request(port, "/cors", { headers: origin ? { origin } : {} });
    it("an origin [cors] does not allow gets Vary: Origin (and no CORS headers)", async () => {
      const reply = await withOrigin("https://evil.example");
      assert.equal(reply.status, 200);
      assert.match(String(reply.headers.vary), /origin/i);
      assert.equal(reply.headers["access-control-allow-origin"], undefined);
    });
    it("so does a request without Origin, and an allowed origin (with its CORS headers)", async () => {
      assert.match(String((await withOrigin()).headers.vary), /origin/i);
      const allowed = await withOrigin("https://good.example");
      assert.match(String(allowed.headers.vary), /origin/i);
      assert.equal(allowed.headers["access-control-allow-origin"], "https://good.example");
    });
  });

  it("never hit a bug", async () => {
    assert.equal(serve.child.exitCode, null, "serve exited");
    assert.deepEqual(
      serve.logs().filter((line) => line.bug === true),
      [],
    );
  });
});
