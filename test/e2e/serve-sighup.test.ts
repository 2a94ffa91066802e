import assert from "node:assert/strict";
import { utimesSync } from "node:fs";
import { describe, it } from "node:test";
import { freePort, startBackend } from "../helpers/backend.js";
import { cleanupAll, runCliAsync, serveConfig, startServe, workspace } from "../helpers/cli.js";
import { tallyByBackend } from "../helpers/http.js";

describe("doproxy serve: SIGHUP (systemctl reload)", () => {
  it("reloads an edited configuration on SIGHUP even when the file watcher sees no change", async () => {
    const port = await freePort();
    // Both versions have the same length, so that with the old mtime put back the file's
    // metadata is unchanged and only the signal can trigger the reload.
    const roundRobin = serveConfig(port, { proxy: 'strategy = "round-robin"' });
    const latency = serveConfig(port, { proxy: 'strategy = "latency"    ' });
    assert.equal(roundRobin.length, latency.length);
    const ws = workspace(roundRobin);
    const fixedTime = 1_700_000_000; // whole seconds: survives the round trip through utimes exactly
    utimesSync(ws.configFile, fixedTime, fixedTime);
    const fast = await startBackend({ name: "fast", delayMs: 1 });
    const slow = await startBackend({ name: "slow", delayMs: 60 });
    const serve = await startServe(ws);
    try {
      for (const backend of [fast, slow])
        assert.equal((await runCliAsync(ws, ["droplets", "add", "--address", backend.address])).status, 0);
      ws.writeConfig(latency);
      utimesSync(ws.configFile, fixedTime, fixedTime);
      const rr = await tallyByBackend(port, 200, 8);
      assert.ok(Math.abs((rr.fast ?? 0) - (rr.slow ?? 0)) <= 8, `still round-robin: ${JSON.stringify(rr)}`);
      assert.equal(serve.logs().filter((l) => l.msg === "configuration reloaded").length, 0);

      serve.child.kill("SIGHUP");
      await serve.waitForLog((l) => l.msg === "configuration reloaded", "the reload after SIGHUP");
      const lat = await tallyByBackend(port, 400, 4);
      assert.ok(
        (lat.fast ?? 0) > 4 * (lat.slow ?? 0),
        `latency favours the fast backend: ${JSON.stringify(lat)}`,
      );

      // A broken file on SIGHUP: reported, and the process keeps serving.
      ws.writeConfig(serveConfig(port, { proxy: 'strategy = "random"' }));
      serve.child.kill("SIGHUP");
      await serve.waitForLog(
        (l) => l.msg === "configuration reload failed; keeping the last good configuration",
        "the broken edit reported",
      );
      const still = await tallyByBackend(port, 100, 4);
      assert.equal((still.fast ?? 0) + (still.slow ?? 0), 100);
      assert.equal(await serve.stop(), 0);
    } finally {
      await serve.stop();
      await Promise.all([fast.close(), slow.close()]);
      cleanupAll(ws);
    }
  });
});
