import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkFraming } from "../../../../src/proxy/http/framing.js";
import { statusForParseError } from "../../../../src/proxy/http/listener.js";
import { checkTarget, isValidAuthority } from "../../../../src/proxy/http/request-target.js";

describe("request target", () => {
  const cases: Array<[string, string, ReturnType<typeof checkTarget>]> = [
    ["GET", "/", { ok: true, path: "/", authority: undefined }],
    // Forwarded as received: no dot-segment removal, no backslash rewriting, no decoding.
    ["GET", "/a/%2e%2e/b", { ok: true, path: "/a/%2e%2e/b", authority: undefined }],
    ["GET", "/a/../b\\c", { ok: true, path: "/a/../b\\c", authority: undefined }],
    ["GET", "//double//slash?q=1?x", { ok: true, path: "//double//slash?q=1?x", authority: undefined }],
    ["GET", "http://example.com/p?q", { ok: true, path: "/p?q", authority: "example.com" }],
    ["GET", "HTTP://example.com:8080", { ok: true, path: "/", authority: "example.com:8080" }],
    ["GET", "http://example.com?x=1", { ok: true, path: "/?x=1", authority: "example.com" }],
    ["GET", "http://[::1]:80/", { ok: true, path: "/", authority: "[::1]:80" }],
    ["OPTIONS", "*", { ok: true, path: "*", authority: undefined }],
    ["GET", "*", { ok: false, status: 400, reason: 'the "*" target is only valid with OPTIONS' }],
    [
      "GET",
      "http://a:99999/",
      { ok: false, status: 400, reason: "invalid authority in absolute-form request target" },
    ],
    [
      "GET",
      "http://%zz/",
      { ok: false, status: 400, reason: "invalid authority in absolute-form request target" },
    ],
    [
      "GET",
      "http://[::1/",
      { ok: false, status: 400, reason: "invalid authority in absolute-form request target" },
    ],
    [
      "GET",
      "http://:80/",
      { ok: false, status: 400, reason: "invalid authority in absolute-form request target" },
    ],
    [
      "GET",
      "http://user@host/",
      { ok: false, status: 400, reason: "invalid authority in absolute-form request target" },
    ],
    [
      "GET",
      "ftp://host/",
      { ok: false, status: 400, reason: "request target must be a path or an absolute http(s) URL" },
    ],
    [
      "CONNECT",
      "host:443",
      { ok: false, status: 400, reason: "request target must be a path or an absolute http(s) URL" },
    ],
    ["GET", "/a\u0000b", { ok: false, status: 400, reason: "invalid character in request target" }],
  ];
  for (const [method, url, expected] of cases) {
    it(`${method} ${JSON.stringify(url)}`, () => assert.deepEqual(checkTarget(method, url, 8192), expected));
  }
  it("answers 414 for a target over the limit", () => {
    assert.deepEqual(checkTarget("GET", `/${"a".repeat(100)}`, 100), {
      ok: false,
      status: 414,
      reason: "request target longer than 100 characters",
    });
  });
  it("validates Host values as authorities", () => {
    for (const good of ["example.com", "example.com:80", "127.0.0.1:8080", "[::1]", "[::1]:443", "a-b.c_d~"])
      assert.equal(isValidAuthority(good), true, good);
    for (const bad of ["", "a b", "x:99999", "%zz", "[::1", "user@host", "host:port", "a/b"])
      assert.equal(isValidAuthority(bad), false, bad);
  });
});

describe("request framing", () => {
  const request = (raw: string[]) => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < raw.length; i += 2) headers[(raw[i] as string).toLowerCase()] = raw[i + 1] as string;
    return { rawHeaders: raw, headers };
  };
  const cases: Array<[string, string[], ReturnType<typeof checkFraming>]> = [
    ["no body", ["Host", "a"], { ok: true, hasBody: false }],
    ["Content-Length 0", ["Host", "a", "Content-Length", "0"], { ok: true, hasBody: false }],
    ["Content-Length 5", ["Host", "a", "Content-Length", "5"], { ok: true, hasBody: true }],
    ["chunked", ["Host", "a", "Transfer-Encoding", "chunked"], { ok: true, hasBody: true }],
    ["Chunked, any case", ["Host", "a", "transfer-encoding", " CHUNKED "], { ok: true, hasBody: true }],
    [
      "TE gzip, chunked",
      ["Host", "a", "Transfer-Encoding", "gzip, chunked"],
      { ok: false, reason: 'unsupported Transfer-Encoding "gzip, chunked"' },
    ],
    [
      "TE xchunked",
      ["Host", "a", "Transfer-Encoding", "xchunked"],
      { ok: false, reason: 'unsupported Transfer-Encoding "xchunked"' },
    ],
    [
      "TE chunked, identity",
      ["Host", "a", "Transfer-Encoding", "chunked, identity"],
      { ok: false, reason: 'unsupported Transfer-Encoding "chunked, identity"' },
    ],
    ["duplicate Host", ["Host", "a", "host", "b"], { ok: false, reason: "duplicate Host header" }],
  ];
  for (const [name, raw, expected] of cases) {
    it(name, () => assert.deepEqual(checkFraming(request(raw)), expected));
  }
});

describe("status for a request that did not parse", () => {
  const packet = (text: string) => Buffer.from(text);
  const cases: Array<[string, { code?: string; rawPacket?: Buffer }, number]> = [
    [
      "headers too large",
      { code: "HPE_HEADER_OVERFLOW", rawPacket: packet(`GET / HTTP/1.1\r\nX: ${"a".repeat(500)}`) },
      431,
    ],
    [
      "request line too long",
      { code: "HPE_HEADER_OVERFLOW", rawPacket: packet(`GET /${"a".repeat(500)}`) },
      414,
    ],
    ["headers not in time", { code: "ERR_HTTP_REQUEST_TIMEOUT" }, 408],
    ["bad chunk size", { code: "HPE_INVALID_CHUNK_SIZE" }, 400],
    ["no code", {}, 400],
  ];
  for (const [name, error, status] of cases) {
    it(name, () => assert.equal(statusForParseError(error, 100), status));
  }
});
