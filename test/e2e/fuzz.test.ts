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
import { prng } from "../helpers/prng.js";
import {
  type ReceivedRequest,
  type RecordingServer,
  rawExchange,
  startRecordingServer,
} from "../helpers/raw.js";
import { waitFor } from "../helpers/wait.js";

/**
 * A differential fuzzer: seeded, mutated requests are parsed by a reference HTTP server directly
 * and sent through `serve` to a recording backend. What the backend receives must be what the
 * reference parsed (the same requests, in order, with the same method, target and body, but for
 * the OPTIONS * that doproxy answers itself) or less (doproxy refused some), never more or different; and the proxy must be alive after every case.
 * Bounded by a count and a time budget; DOPROXY_FUZZ_SEED and DOPROXY_FUZZ_CASES reproduce or
 * widen a run.
 */

const SEED = Number(process.env.DOPROXY_FUZZ_SEED ?? 20261122);
const CASES = Number(process.env.DOPROXY_FUZZ_CASES ?? 1500);
const BUDGET_MS = Number(process.env.DOPROXY_FUZZ_BUDGET_MS ?? 45_000);

const SMUGGLE = "GET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n";
const CORPUS = [
  "GET /a?b=c HTTP/1.1\r\nHost: app\r\n\r\n",
  `POST /p HTTP/1.1\r\nHost: app\r\nContent-Length: ${SMUGGLE.length}\r\n\r\n${SMUGGLE}`,
  `DELETE /d HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n${SMUGGLE.length.toString(16)}\r\n${SMUGGLE}\r\n0\r\n\r\n`,
  "PUT /u HTTP/1.1\r\nHost: app\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
  "OPTIONS * HTTP/1.1\r\nHost: app\r\n\r\n",
  "GET http://app:8080/abs HTTP/1.1\r\nHost: other\r\nConnection: keep-alive, content-length\r\n\r\n",
  "POST /c HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
  "GET /1 HTTP/1.1\r\nHost: app\r\n\r\nGET /2 HTTP/1.1\r\nHost: app\r\n\r\n",
  "GET /old HTTP/1.0\r\nHost: app\r\nContent-Length: 2\r\n\r\nhi",
];

/** Byte- and line-level mutations that desync attacks are made of. */
const MUTATIONS: Array<(text: string, rnd: () => number) => string> = [
  (t, r) =>
    insertAt(t, r, pick(r, ["\r\n", "\n", "\r", " ", "\t", "\0", ":", ",", ";", "0", "\x7f", "\xff"])),
  (t, r) => {
    const i = Math.floor(r() * t.length);
    return t.slice(0, i) + t.slice(i + 1 + Math.floor(r() * 3));
  },
  (t, r) => {
    const i = Math.floor(r() * t.length);
    return t.slice(0, i) + String.fromCharCode(Math.floor(r() * 256)) + t.slice(i + 1);
  },
  (t, r) => addHeader(t, r, pick(r, HEADERS)),
  (t, r) => t.replace(/\r\n/g, () => (r() < 0.2 ? "\n" : "\r\n")),
  (t, r) => t.replace(/(Content-Length: )(\d+)/i, (_m, p) => `${p}${Math.max(0, Math.floor(r() * 80) - 10)}`),
  (t, r) =>
    t.replace(
      /([0-9a-f]+)(\r\n)/,
      (_m, _n, e) => `${pick(r, ["0x3", "-1", "ffffffffffffffff", "3 ", " 3", "3\t"])}${e}`,
    ),
  (t, r) =>
    t.replace(
      /^(\w+) /,
      () => `${pick(r, ["GET", "POST", "DELETE", "OPTIONS", "PATCH", "HEAD", "TRACE", "get", "G ET"])} `,
    ),
  (t, r) =>
    t.replace(/HTTP\/1\.[01]/, () => pick(r, ["HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/1.10", "HTTP/0.9"])),
  (t, r) =>
    t.replace(/(\r\n)(\r\n)/, (_m, a, b) => `${a}${pick(r, HEADERS)}\r\n${b}`) + (r() < 0.5 ? SMUGGLE : ""),
];

const HEADERS = [
  "Transfer-Encoding: chunked",
  "Transfer-Encoding: identity",
  "Transfer-Encoding : chunked",
  "Transfer-encoding: xchunked",
  " Transfer-Encoding: chunked",
  "Content-Length: 0",
  "Content-Length: 4",
  "Content-Length: +4",
  "Content-Length: 4, 4",
  "Host: evil",
  "Connection: content-length",
  "Connection: transfer-encoding, host",
  "Expect: 100-continue",
  "Upgrade: websocket",
  "X: a\r\n b",
];

function pick<T>(rnd: () => number, items: readonly T[]): T {
  return items[Math.floor(rnd() * items.length)] as T;
}

function insertAt(text: string, rnd: () => number, piece: string): string {
  const i = Math.floor(rnd() * text.length);
  return text.slice(0, i) + piece + text.slice(i);
}

function addHeader(text: string, rnd: () => number, header: string): string {
  const end = text.indexOf("\r\n");
  if (end === -1) return text;
  const at = rnd() < 0.5 ? end : text.indexOf("\r\n\r\n");
  return `${text.slice(0, at)}\r\n${header}${text.slice(at)}`;
}

/** What the backend should see of a request the reference parsed: absolute-form becomes origin-form. */
function expectedTarget(url: string): string {
  const match = /^https?:\/\/[^/?]*(.*)$/i.exec(url);
  if (!match) return url;
  const rest = match[1] as string;
  return rest.startsWith("/") ? rest : `/${rest}`;
}

const view = (r: ReceivedRequest) => ({ method: r.method, url: r.url, body: r.body });

describe("differential fuzzing of the request path", () => {
  let ws: Workspace;
  let serve: Daemon;
  let port: number;
  let backend: RecordingServer;
  let reference: RecordingServer;

  before(async () => {
    port = await freePort();
    backend = await startRecordingServer();
    reference = await startRecordingServer();
    ws = workspace(
      serveConfig(port, {
        proxy: 'header-timeout = "1s"\nbody-idle-timeout = "1s"\ntimeout = "5s"\nretries = 0',
      }),
    );
    serve = await startServe(ws);
    assert.equal((await runCliAsync(ws, ["droplets", "add", "--address", backend.address])).status, 0);
    await waitFor(async () => (await request(port, "/ready")).status === 200, "the backend in rotation");
  });
  after(async () => {
    await serve?.stop();
    await backend?.close();
    await reference?.close();
    cleanupAll(ws);
  });

  it(`never forwards more or other than the client sent (seed ${SEED}, up to ${CASES} cases)`, async () => {
    const rnd = prng(SEED);
    const deadline = Date.now() + BUDGET_MS;
    let ran = 0;
    let forwarded = 0;
    for (let n = 0; n < CASES && Date.now() < deadline; n++) {
      let bytes = pick(rnd, CORPUS);
      const rounds = 1 + Math.floor(rnd() * 3);
      for (let i = 0; i < rounds; i++) bytes = pick(rnd, MUTATIONS)(bytes, rnd);
      const input = Buffer.from(bytes, "latin1");

      const referenceStart = reference.received.length;
      await rawExchange(reference.port, input, 3000);
      // OPTIONS * is about the server in general: doproxy answers it itself, no backend sees it.
      const parsed = reference.received
        .slice(referenceStart)
        .map(view)
        .filter((r) => !(r.method === "OPTIONS" && r.url === "*"));

      const backendStart = backend.received.length;
      await rawExchange(port, input, 5000);
      const barrier = `/barrier-${n}`;
      const answer = await request(port, barrier);
      const context = `case ${n} (seed ${SEED}): ${JSON.stringify(bytes)}`;
      assert.equal(answer.status, 200, `the proxy stopped answering after ${context}`);
      assert.match(answer.body, new RegExp(`GET ${barrier}$`), `a desynced answer after ${context}`);
      const received = backend.received
        .slice(backendStart)
        .filter((r) => r.url !== barrier)
        .map(view);
      const expected = parsed.slice(0, received.length).map((r) => ({ ...r, url: expectedTarget(r.url) }));
      assert.deepEqual(received, expected, `the backend got other requests than the client sent: ${context}`);
      ran++;
      if (received.length > 0) forwarded++;
    }
    assert.ok(ran >= 200, `only ${ran} cases ran within the budget`);
    assert.ok(
      forwarded > 0 && forwarded < ran,
      `forwarded ${forwarded} of ${ran}: the mutations are not varied`,
    );
    const bugs = serve.logs().filter((line) => line.bug === true);
    assert.deepEqual(bugs, []);
  });
});
