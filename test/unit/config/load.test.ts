import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfigText } from "../../../src/config/load.js";
import { ConfigError } from "../../../src/errors.js";
import { parseDuration } from "../../../src/util/duration.js";

function errorOf(text: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseConfigText(text, "/etc/doproxy/doproxy.toml", env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    assert.equal(error.exitCode, 2);
    return error.message;
  }
  assert.fail("expected the configuration to be rejected");
}

describe("durations", () => {
  for (const [text, ms] of [
    ["250ms", 250],
    ["2s", 2000],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["7d", 604_800_000],
    ["1h30m", 5_400_000],
    ["1.5s", 1500],
  ] as const) {
    it(`parses ${text}`, () => assert.equal(parseDuration(text), ms));
  }
  for (const text of ["", "5", "fast", "5 m", "-1s", "1w"]) {
    it(`rejects ${JSON.stringify(text)}`, () => assert.equal(parseDuration(text), undefined));
  }
});

describe("configuration", () => {
  it("fills every documented default from an empty file", () => {
    const config = parseConfigText("", undefined, {});
    assert.deepEqual(config.proxy.listen, { host: "0.0.0.0", port: 8080 });
    assert.equal(config.proxy.strategy, "round-robin");
    assert.equal(config.proxy.retries, 1);
    assert.equal(config.proxy.connectTimeoutMs, 2000);
    assert.equal(config.proxy.timeoutMs, 60_000);
    assert.equal(config.proxy.drainTimeoutMs, 30_000);
    assert.equal(config.health.path, "/health");
    assert.equal(config.health.intervalMs, 1000);
    assert.equal(config.health.timeoutMs, 500);
    assert.equal(config.health.healthyAfter, 2);
    assert.equal(config.health.unhealthyAfter, 3);
    assert.equal(config.inventory.flushIntervalMs, 1000);
    assert.equal(config.inventory.retentionMs, 7 * 86_400_000);
    assert.deepEqual(config.admin.listen, { host: "127.0.0.1", port: 9090 });
    assert.equal(config.autoscale.enabled, false);
    assert.equal(config.autoscale.evaluate, "*/5 * * * * *");
  });

  it("resolves relative paths against the configuration file's folder", () => {
    const config = parseConfigText('[inventory]\npath = "data/x.db"', "/etc/doproxy/doproxy.toml", {});
    assert.equal(config.inventory.path, "/etc/doproxy/data/x.db");
  });

  it("replaces ${NAME} with the environment variable", () => {
    const config = parseConfigText(
      '[digitalocean]\ntoken = "${DO_TEST_TOKEN}"\n[proxy]\nlisten = "127.0.0.1:${PORT}"',
      undefined,
      {
        DO_TEST_TOKEN: "secret-value",
        PORT: "9999",
      },
    );
    assert.equal(config.digitalocean.token, "secret-value");
    assert.equal(config.proxy.listen.port, 9999);
    assert.match(config.digitalocean.tokenSource, /environment variable DO_TEST_TOKEN/);
    assert.doesNotMatch(config.digitalocean.tokenSource, /secret-value/);
  });

  it("names file, line and key of an unknown key", () => {
    const message = errorOf('[proxy]\nlisten = "127.0.0.1:80"\ntimeot = "1s"\n');
    assert.match(message, /doproxy\.toml:3: \[proxy\] unknown key "timeot"/);
  });

  it("names file, line, key and value of a bad value", () => {
    const message = errorOf('[proxy]\nlisten = "127.0.0.1:80"\n\n[health]\npath = "/h"\ninterval = "fast"\n');
    assert.match(message, /doproxy\.toml:6: \[health\] interval = "fast": expected a duration/);
    assert.equal(message.split("\n").length, 1, "one message per problem");
  });

  it("rejects an unknown strategy and a bad address", () => {
    assert.match(errorOf('[proxy]\nstrategy = "random"'), /:2: \[proxy\] strategy = "random"/);
    assert.match(errorOf('[proxy]\nlisten = "8080"'), /:2: \[proxy\] listen = "8080": expected HOST:PORT/);
  });

  it("reports TOML syntax errors with line and column", () => {
    assert.match(errorOf("[proxy]\nlisten = \n"), /doproxy\.toml:2:\d+: invalid TOML/);
  });

  it("requires tls-cert and tls-key together", () => {
    assert.match(errorOf('[proxy]\ntls-cert = "c.pem"'), /tls-cert and tls-key must be set together/);
  });

  it("rejects min above max and points into schedule entries", () => {
    assert.match(
      errorOf("[autoscale]\nmin = 6\nmax = 5"),
      /:2: \[autoscale\] min = 6: min must not be greater than max/,
    );
    assert.match(
      errorOf(
        '[autoscale]\nmin = 1\n[[autoscale.schedule]]\ncron = "0 8 * * *"\nmin = 2\n[[autoscale.schedule]]\ncron = "0 9 * * *"\nmin = -1\n',
      ),
      /:8: \[autoscale\] schedule\.1\.min = -1/,
    );
  });

  it("accepts the shipped doproxy.toml", async () => {
    const { readFileSync } = await import("node:fs");
    const text = readFileSync(new URL("../../../doproxy.toml", import.meta.url), "utf8");
    const config = parseConfigText(text, "/x/doproxy.toml", {});
    assert.equal(config.proxy.strategy, "round-robin");
    assert.equal(config.digitalocean.token, "");
  });
});
