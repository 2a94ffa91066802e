import assert from "node:assert/strict";
import type { IncomingHttpHeaders } from "node:http";
import { describe, it } from "node:test";
import { headersFromRaw, prepareResponseHeaders } from "../../../src/proxy/headers.js";

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
  ];
  for (const [name, input, expected] of cases) {
    it(name, () => assert.deepEqual({ ...headersFromRaw(input) }, expected));
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
