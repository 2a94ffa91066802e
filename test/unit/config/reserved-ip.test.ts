import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfigText } from "../../../src/config/load.js";
import { ConfigError } from "../../../src/errors.js";

describe("[digitalocean] reserved-ip and droplet-id", () => {
  it("are off by default; the droplet id comes from the metadata service unless set", () => {
    const { digitalocean } = parseConfigText("", undefined, {});
    assert.equal(digitalocean.reservedIp, undefined);
    assert.equal(digitalocean.dropletId, "metadata");
  });

  it("reads both", () => {
    const { digitalocean } = parseConfigText(
      '[digitalocean]\nreserved-ip = "203.0.113.10"\ndroplet-id = 123456\n',
      undefined,
      {},
    );
    assert.deepEqual([digitalocean.reservedIp, digitalocean.dropletId], ["203.0.113.10", 123456]);
  });

  for (const [text, says] of [
    [
      'reserved-ip = "example.com"',
      /doproxy\.toml:2: \[digitalocean\] reserved-ip = "example\.com": expected an IPv4 address/,
    ],
    ["droplet-id = -3", /doproxy\.toml:2: \[digitalocean\] droplet-id = -3: expected a droplet id/],
  ] as const) {
    it(`rejects ${text} with its line`, () => {
      assert.throws(
        () => parseConfigText(`[digitalocean]\n${text}\n`, "/etc/doproxy/doproxy.toml", {}),
        (error: unknown) => error instanceof ConfigError && says.test(error.message),
      );
    });
  }
});
