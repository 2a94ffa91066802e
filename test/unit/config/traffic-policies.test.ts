import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfigText } from "../../../src/config/load.js";
import { ConfigError } from "../../../src/errors.js";

function errorOf(text: string): string {
  try {
    parseConfigText(text, "/etc/doproxy/doproxy.toml", {});
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    return error.message;
  }
  assert.fail("expected the configuration to be rejected");
}

describe("traffic policy configuration", () => {
  it("keeps today's behaviour by default: no weights, ejection, limits, CORS or stickiness", () => {
    const config = parseConfigText("", undefined, {});
    assert.equal(config.proxy.slowStartMs, 0);
    assert.equal(config.proxy.sticky.mode, "none");
    assert.deepEqual(config.proxy.trustedProxies, []);
    assert.equal(config.health.ejectAfter, 0);
    assert.equal(config.rateLimit.requests, 0);
    assert.deepEqual(config.cors.allowOrigins, []);
    assert.equal(config.digitalocean.weight, 1);
    assert.equal(config.proxy.redirectHttp, undefined);
  });

  it("reads every key", () => {
    const config = parseConfigText(
      `[proxy]
slow-start = "30s"
sticky = "hash"
sticky-hash-key = "header:X-User"
trusted-proxies = ["10.0.0.0/8", "loopback"]
[health]
eject-after = 5
eject-time = "10s"
max-eject-time = "2m"
max-ejected-percent = 30
[rate-limit]
requests = 100
per = "1m"
burst = 20
key = "header:X-Api-Key"
[cors]
allow-origins = ["https://app.example.com"]
allow-credentials = true
max-age = "1h"
[digitalocean]
weight = "vcpus"
`,
      "/etc/doproxy/doproxy.toml",
      {},
    );
    assert.equal(config.proxy.slowStartMs, 30_000);
    assert.deepEqual(config.proxy.sticky.hashKey, { kind: "header", name: "x-user" });
    assert.equal(config.health.ejectTimeMs, 10_000);
    assert.deepEqual(config.rateLimit, {
      requests: 100,
      perMs: 60_000,
      burst: 20,
      key: { kind: "header", name: "x-api-key" },
      maxKeys: 100_000,
    });
    assert.equal(config.cors.maxAgeMs, 3_600_000);
    assert.equal(config.digitalocean.weight, "vcpus");
  });

  const rejected: Array<{ name: string; text: string; says: RegExp }> = [
    {
      name: "credentials with a wildcard origin (the Fetch standard forbids it)",
      text: '[cors]\nallow-origins = ["*"]\nallow-credentials = true',
      says: /:3: \[cors\] allow-credentials.*cannot be combined with "\*"/,
    },
    {
      name: "an origin with a path",
      text: '[cors]\nallow-origins = ["https://app.example.com/login"]',
      says: /:2: \[cors\] allow-origins.*expected "\*" or an origin/,
    },
    {
      name: "a trusted proxy that is not a CIDR block",
      text: '[proxy]\ntrusted-proxies = ["10.0.0.0/33"]',
      says: /:2: \[proxy\] trusted-proxies.*10\.0\.0\.0\/33/,
    },
    { name: "an unknown sticky mode", text: '[proxy]\nsticky = "ip"', says: /:2: \[proxy\] sticky = "ip"/ },
    {
      name: "a rate-limit key that is neither ip nor a header",
      text: '[rate-limit]\nkey = "cookie:session"',
      says: /:2: \[rate-limit\] key.*"ip" or "header:NAME"/,
    },
    {
      name: "a weight of 0",
      text: "[digitalocean]\nweight = 0",
      says: /:2: \[digitalocean\] weight.*1 to 1000/,
    },
    {
      name: "redirect-http without TLS",
      text: '[proxy]\nredirect-http = "127.0.0.1:8081"',
      says: /redirect-http needs tls-cert and tls-key/,
    },
    {
      name: "eject-time longer than max-eject-time",
      text: '[health]\neject-time = "10m"\nmax-eject-time = "1m"',
      says: /eject-time must not be longer than max-eject-time/,
    },
    {
      name: "max-ejected-percent above 100",
      text: "[health]\nmax-ejected-percent = 150",
      says: /:2: \[health\] max-ejected-percent/,
    },
  ];
  for (const row of rejected) it(`rejects ${row.name}`, () => assert.match(errorOf(row.text), row.says));
});
