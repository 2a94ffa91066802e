import assert from "node:assert/strict";
import { describe, it, mock } from "node:test";
import {
  type DeadlineClock,
  DeadlineSweeper,
  expiredDeadline,
  type Sweepable,
  sweepIntervalMs,
} from "../../../../src/proxy/forward/deadlines.js";

const settings = { connectTimeoutMs: 100, timeoutMs: 1000, bodyIdleTimeoutMs: 500 };
const idle: DeadlineClock = { connectingSince: 0, waitingSince: 0, bodyLastAt: 0 };

describe("request deadlines", () => {
  const cases: Array<[string, Partial<DeadlineClock>, number, ReturnType<typeof expiredDeadline>]> = [
    ["nothing running", {}, 10_000, undefined],
    ["connecting, within the connect timeout", { connectingSince: 1000 }, 1099, undefined],
    ["connecting too long", { connectingSince: 1000 }, 1100, "connect"],
    ["waiting for headers, within the timeout", { waitingSince: 1000 }, 1999, undefined],
    ["waiting for headers too long", { waitingSince: 1000 }, 2000, "response"],
    ["body still arriving", { bodyLastAt: 1000 }, 1499, undefined],
    ["body stalled", { bodyLastAt: 1000 }, 1500, "body-idle"],
    // A long upload is not a response timeout: that clock starts only when the body has arrived.
    ["slow upload longer than the response timeout", { bodyLastAt: 5000 }, 5400, undefined],
  ];
  for (const [name, clock, now, expected] of cases) {
    it(name, () => assert.equal(expiredDeadline({ ...idle, ...clock }, settings, now), expected));
  }
  it("sweeps at a quarter of the shortest deadline, within 5..250 ms", () => {
    assert.equal(sweepIntervalMs(settings), 25);
    assert.equal(
      sweepIntervalMs({ connectTimeoutMs: 2000, timeoutMs: 60_000, bodyIdleTimeoutMs: 60_000 }),
      250,
    );
    assert.equal(sweepIntervalMs({ connectTimeoutMs: 1, timeoutMs: 1, bodyIdleTimeoutMs: 1 }), 5);
  });
  it("fires from one interval that runs only while requests are tracked (fake timers)", () => {
    mock.timers.enable({ apis: ["setInterval", "Date"], now: 1_000_000 });
    try {
      const expired: string[] = [];
      const sweeper = new DeadlineSweeper<Sweepable & { name: string }>(
        settings,
        (item, which) => {
          expired.push(`${item.name}:${which}`);
          item.waitingSince = 0;
        },
        () => Date.now(),
      );
      const start = Date.now();
      const a = { name: "a", connectingSince: 0, waitingSince: start, bodyLastAt: 0, sweepSlot: -1 };
      sweeper.track(a);
      mock.timers.tick(975);
      assert.deepEqual(expired, []);
      mock.timers.tick(50);
      assert.deepEqual(expired, ["a:response"]);
      sweeper.untrack(a);
      assert.equal(sweeper.size, 0);
      const b = { name: "b", connectingSince: 0, waitingSince: Date.now(), bodyLastAt: 0, sweepSlot: -1 };
      mock.timers.tick(5000);
      assert.deepEqual(expired, ["a:response"], "an untracked request never fires");
      sweeper.track(b);
      mock.timers.tick(25);
      assert.deepEqual(expired, ["a:response", "b:response"]);
      sweeper.stop();
    } finally {
      mock.timers.reset();
    }
  });
  it("keeps every tracked request in the sweep when others leave, even during a sweep", () => {
    const expired: string[] = [];
    const request = (name: string) => ({
      name,
      connectingSince: 0,
      waitingSince: 0,
      bodyLastAt: 0,
      sweepSlot: -1,
    });
    const [a, b, d, e] = [request("a"), request("b"), request("d"), request("e")];
    const items = [a, b, request("c"), d, e];
    const sweeper = new DeadlineSweeper<Sweepable & { name: string }>(
      settings,
      (item, which) => {
        expired.push(`${item.name}:${which}`);
        sweeper.untrack(item);
        // a's expiry also ends d (as a retry that gives up ends its exchange): d must not fire.
        if (item === a) sweeper.untrack(d);
      },
      () => 0,
      false,
    );
    for (const item of items) sweeper.track(item);
    sweeper.track(b); // tracking twice is harmless
    assert.equal(sweeper.size, 5);
    sweeper.untrack(b); // from the middle: the others stay tracked
    sweeper.untrack(b);
    assert.equal(sweeper.size, 4);
    for (const item of items) item.waitingSince = 1;
    sweeper.sweep(2000);
    assert.deepEqual(expired.sort(), ["a:response", "c:response", "e:response"]);
    assert.equal(sweeper.size, 0);
    assert.ok(items.every((item) => item.sweepSlot === -1));
    sweeper.track(e);
    assert.equal(sweeper.size, 1, "a request untracked by a sweep can be tracked again");
  });
});
