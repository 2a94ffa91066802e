import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parse as parseToml } from "smol-toml";
import { parseConfigText } from "../../../src/config/load.js";
import { ConfigError } from "../../../src/errors.js";
import { parseDuration } from "../../../src/util/duration.js";

function errorOf(text: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseConfigText(text, "/etc/doproxy/doproxy.toml", env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    return error.message;
  }
  assert.fail(`expected the configuration to be rejected:\n${text}`);
}

/** Every duration key of the project's doproxy.toml, which lists every key with its default. */
function durationKeys(): Array<[string, string]> {
  const example = parseToml(readFileSync(new URL("../../../doproxy.toml", import.meta.url), "utf8"));
  const keys: Array<[string, string]> = [];
  for (const [section, values] of Object.entries(example)) {
    if (typeof values !== "object" || values === null || Array.isArray(values)) continue;
    for (const [key, value] of Object.entries(values))
      if (typeof value === "string" && parseDuration(value) !== undefined) keys.push([section, key]);
  }
  return keys;
}

/** Keys compared against timestamps (windows, cooldowns, retention), never turned into a timer. */
const WINDOWS = new Set([
  "inventory.retention",
  "autoscale.scale-up-after",
  "autoscale.scale-up-cooldown",
  "autoscale.scale-down-after",
  "autoscale.scale-down-cooldown",
  "autoscale.replace-unhealthy-after",
  // A cookie's Max-Age and a rate's refill window: sent to browsers or divided by, never a timer.
  "proxy.sticky-max-age",
  "rate-limit.per",
  "inventory.raw-retention",
  "inventory.minute-retention",
  // How far ahead of a predicted peak the floor rises: a span of history, never a timer.
  "autoscale.predictive-margin",
]);

/** Tiers must not outlive the next one: a long finer tier needs long coarser ones beside it. */
function companions(key: string): string {
  if (key === "raw-retention") return 'minute-retention = "3650d"\nretention = "3650d"\n';
  if (key === "minute-retention") return 'retention = "3650d"\n';
  return "";
}

/** Keys where zero is a setting of its own: no drain wait, no slow start, no preflight caching. */
const ZERO_MEANS_SOMETHING = new Set(["proxy.drain-timeout", "proxy.slow-start", "cors.max-age"]);

describe("every duration has a range the runtime can honour", () => {
  const keys = durationKeys();
  it("finds the duration keys of doproxy.toml", () => assert.ok(keys.length >= 16, `${keys.length} keys`));
  for (const [section, key] of keys) {
    const name = `${section}.${key}`;
    if (WINDOWS.has(name)) {
      it(`${name} accepts a month but not a decade and more`, () => {
        parseConfigText(`[${section}]\n${key} = "30d"\n${companions(key)}`, undefined, {});
        assert.match(errorOf(`[${section}]\n${key} = "4000d"\n`), new RegExp(`\\[${section}\\] ${key}`));
      });
      continue;
    }
    it(`${name} = "30d" (over a timer's 2^31 ms) is refused, naming the key and line`, () => {
      const message = errorOf(`# comment\n[${section}]\n${key} = "30d"\n`);
      assert.match(message, new RegExp(`doproxy\\.toml:3: \\[${section}\\] ${key} = "30d"`));
    });
    it(`${name} = "0ms" is refused unless zero means something`, () => {
      if (ZERO_MEANS_SOMETHING.has(name)) parseConfigText(`[${section}]\n${key} = "0ms"\n`, undefined, {});
      else assert.match(errorOf(`[${section}]\n${key} = "0ms"\n`), /expected a duration from/);
    });
  }
});

describe("values that used to pass config check and break serve", () => {
  const refused: Array<[string, string, RegExp]> = [
    ["health path with a space", '[health]\npath = "/he alth"', /\[health\] path/],
    ["health path with CR/LF", '[health]\npath = "/health\\r\\nX: 1"', /\[health\] path/],
    ["health path without /", '[health]\npath = "health"', /\[health\] path/],
    ["listen host 256.1.1.1", '[proxy]\nlisten = "256.1.1.1:80"', /\[proxy\] listen/],
    ["listen host with a bad name", '[proxy]\nlisten = "bad_host!:80"', /\[proxy\] listen/],
    ["listen on a bracketed non-IPv6", '[proxy]\nlisten = "[nope]:80"', /\[proxy\] listen/],
    ["api-url with ftp", '[digitalocean]\napi-url = "ftp://x"', /\[digitalocean\] api-url/],
    ["no tags", "[digitalocean]\ntags = []", /\[digitalocean\] tags/],
    ["a tag with a space", '[digitalocean]\ntags = ["my pool"]', /\[digitalocean\] tags/],
    [
      "a name prefix DigitalOcean refuses",
      '[digitalocean]\nname-prefix = "web_"',
      /\[digitalocean\] name-prefix/,
    ],
    ["a name prefix starting with -", '[digitalocean]\nname-prefix = "-web"', /\[digitalocean\] name-prefix/],
    ["a header limit too small", "[proxy]\nmax-header-bytes = 10", /\[proxy\] max-header-bytes/],
    [
      "an admin listener on the network without a token",
      '[admin]\nlisten = "0.0.0.0:9090"',
      /non-loopback admin listener needs \[admin\] token/,
    ],
    [
      "an admin token from an empty variable",
      '[admin]\nlisten = "0.0.0.0:9090"\ntoken = "${ADMIN_TOKEN}"',
      /non-loopback admin listener needs \[admin\] token/,
    ],
  ];
  for (const [name, text, pattern] of refused) {
    it(`refuses ${name}`, () => assert.match(errorOf(text, { ADMIN_TOKEN: "" }), pattern));
  }
  it("accepts what the runtime can honour", () => {
    const config = parseConfigText(
      [
        "[proxy]",
        'listen = "[::1]:8080"',
        'timeout = "24d"',
        "[health]",
        'path = "/health?deep=1"',
        "[admin]",
        'listen = "0.0.0.0:9090"',
        'token = "${ADMIN_TOKEN}"',
        "[digitalocean]",
        'api-url = "http://127.0.0.1:4010"',
        'tags = ["web:prod", "team_a-1"]',
        'name-prefix = "web.prod-"',
      ].join("\n"),
      undefined,
      { ADMIN_TOKEN: "t0ken" },
    );
    assert.equal(config.proxy.timeoutMs, 24 * 86_400_000);
    assert.equal(config.admin.token, "t0ken");
    assert.deepEqual(config.proxy.listen, { host: "::1", port: 8080 });
  });
});
