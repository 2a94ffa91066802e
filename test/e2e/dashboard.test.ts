import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";
import type { Browser } from "playwright-core";
import { CHROMIUM_PATH, launchChromium } from "../../scripts/chromium.js";
import { adminUrl } from "../helpers/admin.js";
import { freePort, startBackend, type TestBackend } from "../helpers/backend.js";
import { runCliAsync, serveConfig, startServe, workspace } from "../helpers/cli.js";
import { request } from "../helpers/http.js";
import { waitFor } from "../helpers/wait.js";

/** Where to save the screenshot; `npm run screenshot` points it at docs/dashboard.png. */
const SCREENSHOT = process.env.DASHBOARD_SCREENSHOT;

describe("dashboard in a real browser", () => {
  it("loads without console errors, shows every backend, draws charts from real samples and picks up a new backend", async () => {
    assert.ok(
      existsSync(CHROMIUM_PATH),
      `${CHROMIUM_PATH} is missing: apt-get install chromium (.ci/run does)`,
    );
    const port = await freePort();
    const ws = workspace(
      serveConfig(port, { proxy: 'strategy = "latency"', inventory: 'flush-interval = "250ms"' }),
    );
    const backends: TestBackend[] = [];
    for (const [name, delay] of [
      ["web-a", 5],
      ["web-b", 12],
      ["web-c", 30],
    ] as const) {
      backends.push(await startBackend({ name, delayMs: () => delay + Math.random() * delay }));
    }
    const serve = await startServe(ws);
    let browser: Browser | undefined;
    let traffic = true;
    try {
      browser = await launchChromium();
      const admin = await adminUrl(serve);
      for (const [i, b] of backends.entries()) {
        const weight = i === 0 ? ["--weight", "2"] : [];
        assert.equal(
          (await runCliAsync(ws, ["droplets", "add", "--address", b.address, ...weight])).status,
          0,
        );
      }
      // Traffic in the background for the whole test (bounded), so the charts have samples.
      const load = Promise.all(
        Array.from({ length: 4 }, async () => {
          const stopAt = Date.now() + 60_000;
          while (traffic && Date.now() < stopAt) await request(port, "/page").catch(() => undefined);
        }),
      );

      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      const problems: string[] = [];
      page.on("console", (msg) => {
        if (msg.type() === "error") problems.push(msg.text());
      });
      page.on("pageerror", (error) => problems.push(error.message));
      await page.goto(admin);
      await page.waitForFunction(
        () => document.querySelectorAll("#backends tbody tr").length === 3,
        undefined,
        { timeout: 15_000 },
      );
      const addresses = await page.$$eval("#backends tbody tr td:nth-child(3)", (cells) =>
        cells.map((c) => c.textContent),
      );
      assert.deepEqual(addresses.sort(), backends.map((b) => b.address).sort());
      const weights = await page.$$eval("#backends tbody tr", (rows) =>
        rows.map((row) => [row.children[2]?.textContent, row.children[5]?.textContent]),
      );
      assert.deepEqual(
        weights.sort(),
        backends.map((b, i) => [b.address, i === 0 ? "2" : "1"]).sort(),
        "the weight column",
      );

      // Charts are drawn from real samples: the series hold traffic and the canvases have ink.
      await page.waitForFunction(
        () => {
          const d = (
            window as unknown as {
              __doproxy: { charts: Record<string, { data: Array<Array<number | null>> }> };
            }
          ).__doproxy;
          return (
            d.charts.rps?.data[1]?.some((v) => (v ?? 0) > 0) &&
            d.charts.latency?.data[1]?.some((v) => (v ?? 0) > 0)
          );
        },
        undefined,
        { timeout: 20_000 },
      );
      const inked = await page.$$eval(".uplot canvas", (canvases) =>
        canvases.map((c) => {
          const ctx = (c as HTMLCanvasElement).getContext("2d");
          if (!ctx) return 0;
          const { data } = ctx.getImageData(
            0,
            0,
            (c as HTMLCanvasElement).width,
            (c as HTMLCanvasElement).height,
          );
          let painted = 0;
          for (let i = 3; i < data.length; i += 4) if ((data[i] as number) > 0) painted++;
          return painted;
        }),
      );
      assert.equal(inked.length, 4, "four charts");
      assert.ok(
        inked.every((n) => n > 100),
        `every chart has drawn something: ${inked}`,
      );

      // A backend added from the command line shows up without a reload.
      const extra = await startBackend({ name: "web-d", delayMs: 8 });
      backends.push(extra);
      assert.equal((await runCliAsync(ws, ["droplets", "add", "--address", extra.address])).status, 0);
      await page.waitForFunction(
        (address) =>
          Array.from(document.querySelectorAll("#backends tbody tr td:nth-child(3)")).some(
            (c) => c.textContent === address,
          ),
        extra.address,
        {
          timeout: 10_000,
        },
      );
      const events = await page.$$eval("#events li", (items) => items.map((i) => i.textContent ?? ""));
      assert.ok(
        events.some((e) => e.includes(extra.address)),
        "the new backend's events are listed",
      );

      await waitFor(
        async () => (await page.$$eval("#backends tbody tr", (rows) => rows.length)) === 4,
        "four rows",
      );
      if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT, fullPage: true });

      // Still usable with 50 backends: every row renders and the page keeps refreshing.
      for (let i = backends.length; i < 50; i++) {
        const b = await startBackend({ name: `web-${i}`, delayMs: 2 });
        backends.push(b);
        const added = await runCliAsync(ws, ["droplets", "add", "--no-wait", "--address", b.address]);
        assert.equal(added.status, 0, added.stderr);
      }
      await page.waitForFunction(
        () => document.querySelectorAll("#backends tbody tr").length === 50,
        undefined,
        { timeout: 20_000 },
      );
      const refreshed = await page.evaluate(
        () => (window as unknown as { __doproxy: { lastRefresh: number } }).__doproxy.lastRefresh,
      );
      await page.waitForFunction(
        (before) =>
          (window as unknown as { __doproxy: { lastRefresh: number } }).__doproxy.lastRefresh > before,
        refreshed,
        { timeout: 10_000 },
      );
      assert.deepEqual(problems, [], "no console errors");
      traffic = false;
      await load;
    } finally {
      traffic = false;
      await browser?.close();
      await serve.stop();
      await Promise.all(backends.map((b) => b.close()));
      ws.cleanup();
    }
  });
});
