import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { describe, it } from "node:test";
import { isAllowedHost, isAuthorized } from "../../../src/admin/auth.js";

const withAuth = (authorization?: string) => ({ headers: { authorization } }) as unknown as IncomingMessage;

describe("admin bearer token", () => {
  const cases: Array<[string | undefined, boolean]> = [
    ["Bearer s3cret", true],
    ["bearer s3cret", true],
    ["BEARER s3cret", true],
    ["Bearer  s3cret", true],
    ["Bearer wrong", false],
    ["Bearer ", false],
    ["Basic s3cret", false],
    ["s3cret", false],
    [undefined, false],
  ];
  for (const [header, expected] of cases) {
    it(`${JSON.stringify(header)} -> ${expected}`, () =>
      assert.equal(isAuthorized(withAuth(header), "s3cret"), expected));
  }
  it("lets everything through when no token is configured", () =>
    assert.equal(isAuthorized(withAuth(undefined), undefined), true));
});

describe("admin Host allow-list (DNS rebinding)", () => {
  const cases: Array<[string | undefined, string, string[], boolean]> = [
    ["127.0.0.1:9090", "127.0.0.1", [], true],
    ["localhost:9090", "127.0.0.1", [], true],
    ["[::1]:9090", "::1", [], true],
    ["10.1.2.3:9090", "0.0.0.0", [], true],
    ["attacker.example:9090", "127.0.0.1", [], false],
    ["ADMIN.internal:9090", "127.0.0.1", ["admin.internal"], true],
    ["proxy-1.example", "proxy-1.example", [], true],
    [undefined, "127.0.0.1", [], false],
  ];
  for (const [host, listen, allowed, expected] of cases) {
    it(`${host} on ${listen} -> ${expected}`, () =>
      assert.equal(isAllowedHost(host, listen, allowed), expected));
  }
});
