import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
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
import {
  type ReceivedRequest,
  type RecordingServer,
  rawExchange,
  startRecordingServer,
  statuses,
} from "../helpers/raw.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Hostile requests over raw sockets against `serve` in front of a backend that records every
 * request exactly as its parser framed it. For each case: either the client is refused with a 4xx
 * and the backend receives nothing, or the backend receives exactly the one request the client
 * sent. A request through the proxy afterwards (the barrier) must get its own answer, on the
 * upstream connection the case used: a smuggled request would sit in front of it.
 */

const SMUGGLED = "GET /SMUGGLED HTTP/1.1\r\nHost: a\r\n\r\n";
const chunked = (body: string) => `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;

/** Refused with a 4xx, answered by doproxy itself, or forwarded exactly. */
type Expect = { refused: number } | { answered: number } | { forwarded: Array<Partial<ReceivedRequest>> };

const CASES: Array<[string, string, Expect]> = [
  [
    "DELETE with a chunked body keeps its framing (http-proxy-3 rewrote it to content-length: 0)",
    `DELETE /d HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(SMUGGLED)}`,
    { forwarded: [{ method: "DELETE", url: "/d", body: SMUGGLED }] },
  ],
  [
    "OPTIONS with a chunked body keeps its framing",
    `OPTIONS /o HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(SMUGGLED)}`,
    { forwarded: [{ method: "OPTIONS", url: "/o", body: SMUGGLED }] },
  ],
  [
    "Connection naming Content-Length cannot strip the framing",
    `POST /p HTTP/1.1\r\nHost: a\r\nConnection: content-length\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    { forwarded: [{ method: "POST", url: "/p", body: SMUGGLED }] },
  ],
  [
    "Connection naming Transfer-Encoding cannot strip the framing",
    `POST /p HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(SMUGGLED)}`,
    { forwarded: [{ method: "POST", url: "/p", body: SMUGGLED }] },
  ],
  [
    "Connection naming Host cannot strip it",
    "GET /h HTTP/1.1\r\nHost: a\r\nConnection: host\r\n\r\n",
    { forwarded: [{ method: "GET", url: "/h", body: "" }] },
  ],
  [
    "CL.TE",
    `POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG`,
    { refused: 400 },
  ],
  [
    "TE.CL",
    `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n`,
    { refused: 400 },
  ],
  [
    "TE.TE: a second, obfuscated Transfer-Encoding",
    `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n`,
    { refused: 400 },
  ],
  [
    "TE.TE: xchunked",
    `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`,
    { refused: 400 },
  ],
  [
    "TE.TE: space before the colon",
    `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n`,
    { refused: 400 },
  ],
  [
    "TE.TE: gzip, chunked",
    `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
    { refused: 400 },
  ],
  [
    "duplicate Content-Length with different values",
    `POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab`,
    { refused: 400 },
  ],
  [
    "obs-fold",
    `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n`,
    { refused: 400 },
  ],
  ["bare LF line ends", `GET / HTTP/1.1\nHost: a\n\n`, { refused: 400 }],
  [
    "bad chunk size",
    `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`,
    { refused: 400 },
  ],
  [
    "negative chunk size",
    `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nhello\r\n0\r\n\r\n`,
    { refused: 400 },
  ],
  ["NUL in a header value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\u0000c\r\n\r\n", { refused: 400 }],
  ["a space in a header name", "GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n", { refused: 400 }],
  ["duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", { refused: 400 }],
  ["an invalid Host", "GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", { refused: 400 }],
  ["absolute-form with port 99999", "GET http://a:99999/ HTTP/1.1\r\nHost: a\r\n\r\n", { refused: 400 }],
  ["absolute-form with a bad escape", "GET http://%zz/ HTTP/1.1\r\nHost: a\r\n\r\n", { refused: 400 }],
  ["absolute-form with an open bracket", "GET http://[::1/ HTTP/1.1\r\nHost: a\r\n\r\n", { refused: 400 }],
  ["absolute-form without a host", "GET http://:80/ HTTP/1.1\r\nHost: a\r\n\r\n", { refused: 400 }],
  [
    "absolute-form: its authority wins over Host (RFC 9112 §3.2.2)",
    "GET http://app.example:8080/abs?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n",
    { forwarded: [{ method: "GET", url: "/abs?q=1", body: "" }] },
  ],
  [
    "the target is forwarded as received, not normalised",
    "GET /a/%2e%2e/b/..%5c/./c//d?x=%zz HTTP/1.1\r\nHost: a\r\n\r\n",
    { forwarded: [{ method: "GET", url: "/a/%2e%2e/b/..%5c/./c//d?x=%zz", body: "" }] },
  ],
  [
    "chunk extensions and trailers",
    "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n",
    { forwarded: [{ method: "POST", url: "/t", body: "hello" }] },
  ],
  [
    "a GET with a body keeps it framed",
    `GET /g HTTP/1.1\r\nHost: a\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    { forwarded: [{ method: "GET", url: "/g", body: SMUGGLED }] },
  ],
  [
    "Expect: 100-continue",
    "PUT /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    { forwarded: [{ method: "PUT", url: "/e", body: "hello" }] },
  ],
  [
    "two pipelined requests are two backend requests, in order",
    "GET /one HTTP/1.1\r\nHost: a\r\n\r\nPOST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    {
      forwarded: [
        { method: "GET", url: "/one", body: "" },
        { method: "POST", url: "/two", body: "abc" },
      ],
    },
  ],
  [
    "OPTIONS * asks about the server in general: doproxy answers it, no backend sees it",
    "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    { answered: 204 },
  ],
  [
    "a target over max-target-length",
    `GET /${"a".repeat(2000)} HTTP/1.1\r\nHost: a\r\n\r\n`,
    { refused: 414 },
  ],
  [
    "a request line over the header limit",
    `GET /${"a".repeat(5000)} HTTP/1.1\r\nHost: a\r\n\r\n`,
    { refused: 414 },
  ],
  [
    "headers over the limit",
    `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${"b".repeat(5000)}\r\n\r\n`,
    { refused: 431 },
  ],
  ["CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", { refused: 405 }],
  [
    "a WebSocket upgrade with a broken target",
    "GET http://a:99999/ HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    { refused: 400 },
  ],
  [
    "an h2c upgrade is not tunnelled",
    "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    { refused: 400 },
  ],
];

describe("doproxy serve: hostile clients", () => {
  let ws: Workspace;
  let serve: Daemon;
  let port: number;
  let backend: RecordingServer;
  let barrier = 0;

  before(async () => {
    port = await freePort();
    backend = await startRecordingServer();
    ws = workspace(
      serveConfig(port, {
        proxy: [
          'header-timeout = "1s"',
          'body-idle-timeout = "1s"',
          'timeout = "5s"',
          "max-target-length = 1024",
          "max-header-bytes = 4096",
          "retries = 0",
        ].join("\n"),
      }),
    );
    serve = await startServe(ws);
    const added = await runCliAsync(ws, ["droplets", "add", "--address", backend.address]);
    assert.equal(added.status, 0, added.stderr);
    await waitFor(async () => (await request(port, "/ready")).status === 200, "the backend in rotation");
  });
  after(async () => {
    await serve?.stop();
    await backend?.close();
    cleanupAll(ws);
  });

  /** Runs one case, then a barrier request; returns the answers and what the backend received. */
  async function run(bytes: string): Promise<{ codes: number[]; received: ReceivedRequest[]; text: string }> {
    const start = backend.received.length;
    const { text } = await rawExchange(port, bytes);
    const tag = `/barrier-${++barrier}`;
    const answer = await request(port, tag);
    assert.equal(answer.status, 200, `the barrier request after the case got ${answer.status}`);
    assert.match(answer.body, new RegExp(`GET ${tag}$`), "the barrier got another request's answer");
    const received = backend.received.slice(start).filter((r) => r.url !== tag);
    return { codes: statuses(text), received, text };
  }

  for (const [name, bytes, expected] of CASES) {
    it(name, async () => {
      const { codes, received, text } = await run(bytes);
      if ("refused" in expected || "answered" in expected) {
        const status = "refused" in expected ? expected.refused : expected.answered;
        assert.equal(codes[0], status, `answer: ${text.slice(0, 200)}`);
        assert.deepEqual(received, [], "a request doproxy answers must not reach the backend");
        return;
      }
      assert.deepEqual(
        received.map((r) => ({ method: r.method, url: r.url, body: r.body })),
        expected.forwarded,
        `answer: ${text.slice(0, 300)}`,
      );
      assert.equal(codes.filter((c) => c === 200).length, expected.forwarded.length, text.slice(0, 300));
      for (const r of received) {
        // Framing headers reach the backend as the client sent them.
        assert.ok(
          r.body === "" ||
            r.headers["content-length"] !== undefined ||
            r.headers["transfer-encoding"] === "chunked",
          `body sent without framing: ${JSON.stringify(r.headers)}`,
        );
        assert.equal(r.headers.expect, undefined, "Expect is answered by the proxy, not passed on");
      }
    });
  }

  it("sends the absolute-form authority as Host", async () => {
    const { received } = await run(
      "GET http://app.example:8080/host HTTP/1.1\r\nHost: other.example\r\n\r\n",
    );
    assert.equal(received[0]?.headers.host, "app.example:8080");
  });

  it("answers 408 to a client that does not finish its headers in time (slowloris)", async () => {
    const { text, timedOut } = await rawExchange(
      port,
      "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 1\r\n",
      10_000,
      true,
    );
    assert.equal(timedOut, false, "the proxy must close the connection");
    assert.deepEqual(statuses(text), [408]);
  });

  it("answers 408 and closes the connection when a request body stalls", async () => {
    const start = backend.received.length;
    const { text, timedOut } = await rawExchange(
      port,
      "POST /stall HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly part of it",
      10_000,
      true,
    );
    assert.equal(timedOut, false, "the proxy must close the connection");
    assert.deepEqual(statuses(text), [408]);
    assert.deepEqual(
      backend.received.slice(start).map((r) => r.url),
      [],
      "the backend never sees a complete request",
    );
  });

  it("is alive and never hit a bug after all of it", async () => {
    assert.equal(serve.child.exitCode, null, "serve exited");
    assert.equal((await request(port, "/still-here")).status, 200);
    const bugs = serve.logs().filter((line) => line.bug === true);
    assert.deepEqual(bugs, []);
  });
});
