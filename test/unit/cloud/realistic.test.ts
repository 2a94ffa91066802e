import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { afterFailure, BACKOFF_MAX_MS, inBackoff, NO_BACKOFF } from "../../../src/autoscale/backoff.js";
import { resolveBackend } from "../../../src/cli/resolve-backend.js";
import { classify } from "../../../src/cloud/digitalocean.js";
import { ownershipTag } from "../../../src/cloud/provider.js";
import { DEFAULT_RETRY, decideRetry } from "../../../src/cloud/retry.js";
import { BOOT_POLL_MAX_MS, BOOT_POLL_MIN_MS, nextBootPollMs } from "../../../src/cloud/watcher.js";
import { isValidTag } from "../../../src/config/digitalocean-rules.js";
import { UsageError } from "../../../src/errors.js";
import { openInventory } from "../../../src/inventory/open.js";

describe("boot polling backs off from 5 s to 30 s", () => {
  const cases: Array<[number, boolean, number]> = [
    [BOOT_POLL_MIN_MS, false, 10_000],
    [10_000, false, 20_000],
    [20_000, false, BOOT_POLL_MAX_MS],
    [BOOT_POLL_MAX_MS, false, BOOT_POLL_MAX_MS],
    [BOOT_POLL_MAX_MS, true, BOOT_POLL_MIN_MS],
    [0, false, BOOT_POLL_MIN_MS],
  ];
  for (const [previous, changed, next] of cases)
    it(`${previous} ms, ${changed ? "a droplet moved" : "nothing moved"} -> ${next} ms`, () =>
      assert.equal(nextBootPollMs(previous, changed), next));
});

describe("backoff after a failed scaling action", () => {
  const now = 1_000_000;
  it("doubles from 15 s, capped at 10 minutes, and remembers why", () => {
    let backoff = NO_BACKOFF;
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      backoff = afterFailure(backoff, "droplet-limit", now);
      delays.push(backoff.retryAt - now);
    }
    assert.deepEqual(delays, [
      15_000,
      30_000,
      60_000,
      120_000,
      240_000,
      480_000,
      BACKOFF_MAX_MS,
      BACKOFF_MAX_MS,
    ]);
    assert.equal(backoff.reason, "droplet-limit");
  });
  it("holds until retryAt and not after", () => {
    const backoff = afterFailure(NO_BACKOFF, "server", now);
    assert.equal(inBackoff(backoff, now + 14_999), true);
    assert.equal(inBackoff(backoff, now + 15_000), false);
    assert.equal(inBackoff(NO_BACKOFF, now), false);
  });
});

describe("429: retry-after first, then ratelimit-reset", () => {
  const now = 1_800_000_000_000;
  it("waits what retry-after says (the burst limit)", () => {
    const decision = decideRetry(
      { status: 429, rateLimitReset: now / 1000 + 3000, retryAfter: 2 },
      1,
      DEFAULT_RETRY,
      now,
      () => 0,
    );
    assert.ok(
      decision.retry && decision.delayMs === 2000 && /retry-after/.test(decision.reason),
      JSON.stringify(decision),
    );
  });
  it("falls back to ratelimit-reset, bounded", () => {
    assert.deepEqual(
      decideRetry({ status: 429, rateLimitReset: now / 1000 + 3000 }, 1, DEFAULT_RETRY, now, () => 0),
      {
        retry: false,
      },
    );
  });
});

describe("API failures as reason codes", () => {
  const cases: Array<[number | undefined, string, string]> = [
    [422, "creating this/these droplet(s) will exceed your droplet limit", "droplet-limit"],
    [422, "Size is not available in this region.", "size-unavailable"],
    [422, "You specified an invalid image for Droplet creation.", "invalid"],
    [401, "Unable to authenticate you.", "auth"],
    [429, "API Rate limit exceeded.", "rate-limited"],
    [503, "Server was unable to give you a response.", "server"],
    [undefined, "ECONNRESET", "network"],
  ];
  for (const [status, message, reason] of cases)
    it(`${status} ${message} -> ${reason}`, () => assert.equal(classify({ status, message }), reason));
});

describe("pool identity and backends named by id, droplet id or name", () => {
  it("keeps one identity whose ownership tag is a valid DigitalOcean tag", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "doproxy-pool-"));
    const inventory = await openInventory({ path: path.join(dir, "doproxy.db") });
    try {
      const pools = inventory.pool;
      const first = await pools.identity();
      assert.deepEqual(await pools.identity(), first, "created once, then the same");
      assert.equal(isValidTag(ownershipTag(first.poolId)), true);

      const backends = inventory.backends;
      const adopted = await backends.addDroplet(555_000_111, "web-a", null, "test", {
        origin: "manual",
        autoscale: false,
      });
      await backends.addDroplet(555_000_222, "twin", null, "test", { origin: "reconciled", autoscale: true });
      await backends.addDroplet(555_000_333, "twin", null, "test", { origin: "reconciled", autoscale: true });
      assert.equal((await resolveBackend(backends, String(adopted.id))).id, adopted.id);
      assert.equal((await resolveBackend(backends, "555000111")).id, adopted.id);
      assert.equal((await resolveBackend(backends, "web-a")).id, adopted.id);
      assert.equal((await resolveBackend(backends, "web-a")).autoscale, false);
      await assert.rejects(
        () => resolveBackend(backends, "twin"),
        (e) => e instanceof UsageError && /2 backends are named twin/.test(e.message),
      );
      await assert.rejects(() => resolveBackend(backends, "nope"), UsageError);
      await assert.rejects(() => resolveBackend(backends, "999"), UsageError);
    } finally {
      await inventory.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
