import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfigText } from "../../../src/config/load.js";
import { ACME_DIRECTORIES } from "../../../src/config/schema.js";
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

describe("[tls] automatic certificates", () => {
  it("is off by default and names Let's Encrypt production", () => {
    const { tls } = parseConfigText("", undefined, {});
    assert.equal(tls.acme, false);
    assert.equal(tls.directory, ACME_DIRECTORIES.production);
    assert.equal(tls.challenge, "both");
    assert.equal(tls.keyEncryptionKey, undefined);
  });

  it("reads every key, the key-encryption-key from the environment", () => {
    const { tls, proxy } = parseConfigText(
      `[proxy]
listen = "0.0.0.0:443"
redirect-http = "0.0.0.0:80"
[tls]
acme = true
email = "ops@example.com"
domains = ["Example.com", "www.example.com", "example.com"]
directory = "staging"
eab-kid = "kid-1"
eab-hmac-key = "\${EAB}"
key-encryption-key = "\${KEK}"
`,
      "/etc/doproxy/doproxy.toml",
      { EAB: "aGVsbG8", KEK: "0123456789abcdef0123" },
    );
    assert.equal(proxy.redirectHttp?.port, 80);
    assert.deepEqual(tls.domains, ["example.com", "www.example.com"]);
    assert.equal(tls.directory, ACME_DIRECTORIES.staging);
    assert.equal(tls.eabHmacKey, "aGVsbG8");
    assert.equal(tls.keyEncryptionKey, "0123456789abcdef0123");
    const other = parseConfigText(
      '[tls]\nacme = true\ndomains = ["a.example"]\nchallenge = "tls-alpn-01"\ndirectory = "https://ca.example/dir"',
      undefined,
      {},
    );
    assert.equal(other.tls.directory, "https://ca.example/dir");
  });

  for (const { name, text, says } of [
    { name: "acme without domains", text: "[tls]\nacme = true", says: /acme = true needs domains/ },
    {
      name: "http-01 without a plain listener",
      text: '[tls]\nacme = true\ndomains = ["a.example"]',
      says: /needs \[proxy\] redirect-http/,
    },
    {
      name: "acme beside certificate files",
      text: '[proxy]\ntls-cert = "c.pem"\ntls-key = "k.pem"\n[tls]\nacme = true\nchallenge = "tls-alpn-01"\ndomains = ["a.example"]',
      says: /keep one/,
    },
    { name: "a wildcard", text: '[tls]\ndomains = ["*.example.com"]', says: /expected a DNS name/ },
    {
      name: "a directory that is no URL",
      text: '[tls]\ndirectory = "prod"',
      says: /"production", "staging"/,
    },
    {
      name: "a short key-encryption-key",
      text: '[tls]\nkey-encryption-key = "short"',
      says: /16 characters/,
    },
    { name: "eab-kid alone", text: '[tls]\neab-kid = "k"', says: /eab-kid and eab-hmac-key/ },
  ]) {
    it(`refuses ${name}`, () => assert.match(errorOf(text), says));
  }
});
