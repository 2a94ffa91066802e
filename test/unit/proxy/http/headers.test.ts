import assert from "node:assert/strict";
import type { IncomingHttpHeaders } from "node:http";
import { describe, it } from "node:test";
import {
  headersFromRaw,
  prepareResponseHeaders,
  relayableReason,
  responseMayPause,
} from "../../../../src/proxy/http/headers.js";

const raw = (...pairs: string[]) => pairs.map((text) => Buffer.from(text, "latin1"));

describe("a backend's response headers as the client gets them", () => {
  const cases: Array<[string, Buffer[], IncomingHttpHeaders]> = [
    [
      "names in lower case",
      raw("Content-Type", "text/plain", "X-Id", "7"),
      { "content-type": "text/plain", "x-id": "7" },
    ],
    [
      "each Set-Cookie kept on its own",
      raw("Set-Cookie", "a=1", "set-cookie", "b=2; Path=/"),
      { "set-cookie": ["a=1", "b=2; Path=/"] },
    ],
    [
      "other repeated fields joined (RFC 9110 §5.3)",
      raw("Vary", "Origin", "vary", "Accept"),
      { vary: "Origin, Accept" },
    ],
    ["bytes above ASCII as Node reads them (latin1)", raw("X-Name", "caf\xe9"), { "x-name": "caf\xe9" }],
    ["an empty value stays", raw("X-Empty", ""), { "x-empty": "" }],
    [
      "fields named like Object's own members are fields like any other",
      raw("Constructor", "x", "__proto__", "y", "toString", "z"),
      { constructor: "x", ["__proto__"]: "y", tostring: "z" },
    ],
  ];
  for (const [name, input, expected] of cases) {
    it(name, () => assert.deepEqual(Object.entries(headersFromRaw(input)), Object.entries(expected)));
  }

  it("drops hop-by-hop fields and what Connection lists, keeps the framing, states the connection", () => {
    const headers = headersFromRaw(
      raw(
        "Connection",
        "x-secret, content-length",
        "X-Secret",
        "s",
        "Keep-Alive",
        "timeout=5",
        "Content-Length",
        "3",
        "Transfer-Encoding",
        "chunked",
      ),
    );
    prepareResponseHeaders(headers, false);
    assert.deepEqual(
      { ...headers },
      { "content-length": "3", "transfer-encoding": "chunked", connection: "keep-alive" },
    );
  });
});

describe("which backend responses may be paused for a slow client", () => {
  const cases: Array<[string, IncomingHttpHeaders, boolean]> = [
    ["a length on a kept-alive connection", { "content-length": "10" }, true],
    ["chunked on a kept-alive connection", { "transfer-encoding": "chunked" }, true],
    ["gzip then chunked", { "transfer-encoding": "gzip, chunked" }, true],
    [
      "the backend closes after it (Connection: close)",
      { "content-length": "10", connection: "close" },
      false,
    ],
    ["close among other connection options", { "content-length": "10", connection: "x-foo, Close" }, false],
    ["no length: the body ends where the connection does", {}, false],
    ["chunked that is not the final coding", { "transfer-encoding": "chunked, gzip" }, false],
  ];
  for (const [name, headers, expected] of cases) {
    it(name, () => assert.equal(responseMayPause(headers), expected));
  }
});

describe("the reason phrase a client is given", () => {
  const cases: Array<[string, string, string | undefined]> = [
    ["plain ASCII passes", "Not Found", "Not Found"],
    ["an empty one passes", "", ""],
    ["Latin-1 as undici decodes it gives Node's own", "Ol\ufffd", undefined],
    ["non-Latin text gives Node's own", "\u898b\u3064\u304b\u308a\u307e\u305b\u3093", undefined],
    ["a control character gives Node's own", "OK\u0001", undefined],
  ];
  for (const [name, text, expected] of cases) {
    it(name, () => assert.equal(relayableReason(text), expected));
  }
});
