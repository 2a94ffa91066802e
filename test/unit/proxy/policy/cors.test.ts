import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { describe, it } from "node:test";
import type { CorsSettings } from "../../../../src/config/config.js";
import { CorsPolicy } from "../../../../src/proxy/policy/cors.js";

const settings: CorsSettings = {
  allowOrigins: ["https://app.example.com"],
  allowMethods: ["GET", "POST", "PUT"],
  allowHeaders: ["content-type", "x-api-key"],
  exposeHeaders: ["x-request-id"],
  allowCredentials: true,
  maxAgeMs: 600_000,
};
const req = (method: string, headers: Record<string, string>) =>
  ({ method, headers }) as unknown as IncomingMessage;

describe("CORS policy", () => {
  const cors = new CorsPolicy(settings);

  const preflights: Array<{
    name: string;
    method: string;
    headers: Record<string, string>;
    expected: boolean;
  }> = [
    {
      name: "OPTIONS with an allowed origin and a requested method",
      method: "OPTIONS",
      headers: { origin: "https://app.example.com", "access-control-request-method": "PUT" },
      expected: true,
    },
    {
      name: "OPTIONS from an origin not listed",
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "PUT" },
      expected: false,
    },
    {
      name: "OPTIONS without Access-Control-Request-Method (a plain OPTIONS)",
      method: "OPTIONS",
      headers: { origin: "https://app.example.com" },
      expected: false,
    },
    {
      name: "an origin that differs only by port",
      method: "OPTIONS",
      headers: { origin: "https://app.example.com:8443", "access-control-request-method": "GET" },
      expected: false,
    },
  ];
  for (const row of preflights)
    it(`preflight: ${row.name}`, () =>
      assert.equal(cors.isPreflight(req(row.method, row.headers)), row.expected));

  it("answers a preflight with the origin itself (credentials), methods, headers and max-age", () => {
    const headers = cors.preflightHeaders("https://app.example.com");
    assert.equal(headers["access-control-allow-origin"], "https://app.example.com");
    assert.equal(headers["access-control-allow-credentials"], "true");
    assert.equal(headers["access-control-allow-methods"], "GET, POST, PUT");
    assert.equal(headers["access-control-allow-headers"], "content-type, x-api-key");
    assert.equal(headers["access-control-max-age"], "600");
    assert.match(String(headers.vary), /Origin/);
  });

  it("replaces the backend's CORS headers on an actual response and adds Vary: Origin", () => {
    const headers: Record<string, string | string[]> = {
      "access-control-allow-origin": "*",
      "access-control-allow-methods": "DELETE",
      vary: "Accept-Encoding",
    };
    cors.applyToResponse(headers, "https://app.example.com");
    assert.equal(headers["access-control-allow-origin"], "https://app.example.com");
    assert.equal(headers["access-control-allow-methods"], undefined);
    assert.equal(headers["access-control-expose-headers"], "x-request-id");
    assert.equal(headers.vary, "Accept-Encoding, Origin");
  });

  it('a wildcard policy without credentials answers "*" and needs no Vary', () => {
    const open = new CorsPolicy({ ...settings, allowOrigins: ["*"], allowCredentials: false });
    assert.equal(open.allowedOrigin({ origin: "https://anyone.example" }), "https://anyone.example");
    const headers: Record<string, string> = {};
    open.applyToResponse(headers, "https://anyone.example");
    assert.equal(headers["access-control-allow-origin"], "*");
    assert.equal(headers["access-control-allow-credentials"], undefined);
    assert.equal(headers.vary, undefined);
  });

  it("is off with no allowed origins", () => {
    const off = new CorsPolicy({ ...settings, allowOrigins: [] });
    assert.equal(off.enabled, false);
    assert.equal(off.allowedOrigin({ origin: "https://app.example.com" }), undefined);
  });
});
